"""The `entropy` command: one module per command group; each parses, calls the service, prints.

Nothing imports this package but the console script (`entropy = "entropy.cli:main"`).
"""

from .root import main

__all__ = ["main"]
