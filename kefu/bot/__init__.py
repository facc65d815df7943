"""The bot directory: everything a team versions about its bot (prompts, texts, FAQ, flows, tools)."""
