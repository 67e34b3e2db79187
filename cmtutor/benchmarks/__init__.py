"""Benchmarks: scripts that measure what the README's tables report (run with ``python -m``)."""
