"""``kefu test``: scripted conversations (YAML) run against a bot directory in process."""
