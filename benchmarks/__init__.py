"""Benchmarks: runnable from the repository root as `python -m benchmarks.<name>`; each prints a table and writes
JSON (and, where asked, Markdown and a plot) under benchmarks/results/."""
