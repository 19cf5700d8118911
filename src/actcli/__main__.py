"""``python -m actcli``: the command line (how ``--nproc`` starts each torchrun process)."""

from actcli.cli import main

main()
