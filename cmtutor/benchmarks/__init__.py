"""Benchmarks: scripts that reproduce the course's measured tables, run as ``python -m cmtutor.benchmarks.<name>``."""
