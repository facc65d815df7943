"""The ``kefu`` command line: one module per command group."""
