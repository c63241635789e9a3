"""Entropy's benchmarks: `python -m bench --help` from the repository root.

Not installed and never part of the test suite. Each scenario lives in
bench/scenarios/; bench.fleet writes the synthetic fleets they share.
"""
