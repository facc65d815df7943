"""``python -m kefu`` = the ``kefu`` command."""

from kefu.cli.main import main

main()
