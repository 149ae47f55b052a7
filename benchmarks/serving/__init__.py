"""The serving benchmark (issue 5): munet-serve against per-task models on one machine and one workload.

- `fleet.py`: a root and N tasks whose paths share it as muNet's do, published on a real server.
- `models.py`: each task's path as one whole ONNX graph (baseline A) or a PyTorch eager module (baseline B).
- `per_task.py`: the baselines as servers behind the same Predict RPC, batched within a task.
- `load.py`: closed- and open-loop load generators over the real gRPC API with Zipf task traffic.
- `run.py`, `report.py`: the runs side by side, resident memory, hot swaps under load; table and JSON.

Run `python -m benchmarks.serving --quick`.
"""
