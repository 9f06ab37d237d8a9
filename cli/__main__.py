"""`python -m lockgate.cli`: the same as the `lockgate` command."""

from lockgate.cli.entry import main

main()
