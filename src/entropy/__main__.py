"""`python -m entropy`: the same as the `entropy` command."""

from .cli import main

main(prog_name="entropy")
