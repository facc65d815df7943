"""People in the loop: handoff, the agent desk, webhooks."""
