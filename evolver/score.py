"""Scoring (§6): a path's score is its quality scaled down by the parameters accounted to it.

score = quality x s ^ (accounted_params / P_root), where accounted_params sums each component's size divided by
the number of tasks that use it (this task included), so components shared with other tasks cost a fraction.
"""

from __future__ import annotations

from munet_serve.accounting import accounted_params, count_users

__all__ = ["accounted_params", "count_users", "score", "size_factor"]


def size_factor(accounted: float, root_params: int, scale: float) -> float:
    """s ^ (accounted / P_root); 1 when s = 1."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale factor must be in (0, 1], got {scale}")
    if root_params <= 0:
        raise ValueError(f"root params must be positive, got {root_params}")
    return 1.0 if scale == 1.0 else scale ** (accounted / root_params)


def score(quality: float, accounted: float, root_params: int, scale: float = 1.0) -> float:
    """quality x s ^ (accounted / P_root)."""
    return quality * size_factor(accounted, root_params, scale)
