"""`python -m entropy`: the same as the `entropy` command."""

from .cli import main

if __name__ == "__main__":  # not when a spawned child (a full re-sync) imports it again
    main(prog_name="entropy")
