"""The serving benchmark of issue 5 (in progress): what a user would deploy instead of munet-serve.

So far: the two per-task baselines' models, built from a task's published path (`models.py`), and the closed-loop
load generator (`load.py`).
"""
