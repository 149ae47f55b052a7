"""Which offline root transfers best to the built-in tasks (issue 4): python -m benchmarks.roots [--quick]."""
