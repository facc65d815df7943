"""The turn: accept a message, answer it, persist it. Pure logic over the store and model interfaces."""
