"""Business tools: HTTP calls declared in YAML and Python functions, behind :class:`kefu.tools.base.ToolCaller`."""
