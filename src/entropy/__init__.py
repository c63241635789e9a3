"""Entropy: audit a fleet of hosts on schedule and repair what the audits find."""

__version__ = "0.1.0"
