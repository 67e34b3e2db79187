"""Benchmarks: scripts that measure what the README and the notebooks report (each runnable as
``python -m cmtutor.benchmarks.<name>``; each prints the command, the hardware and the figures)."""
