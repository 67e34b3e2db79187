"""Benchmarks and reproducible studies (each runnable as `python -m cmtutor.benchmarks.<name>`)."""
