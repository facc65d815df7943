"""Multi-step tasks (flows): slots, steps, repair, routing."""
