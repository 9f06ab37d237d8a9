"""`python -m lockgate.cli`: the same as the `lockgate` command."""

from lockgate.cli.main import main

main()
