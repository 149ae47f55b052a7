"""Scoring (§6): a path's score is its quality scaled down by the parameters accounted to it.

score = quality x s ^ (accounted_params / P_root), where accounted_params sums each component's size divided by
the number of tasks that use it (this task included), so components shared with other tasks cost a fraction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["accounted_params", "count_users", "score", "size_factor"]


def count_users(paths: Iterable[Iterable[str]]) -> Counter[str]:
    """How many of the given paths (one per task) use each component id; repeats within a path count once."""
    users: Counter[str] = Counter()
    for ids in paths:
        users.update(set(ids))
    return users


def accounted_params(components: Sequence[tuple[str, int]], other_users: Mapping[str, int]) -> float:
    """Parameters accounted to a path: sum of |c| / n_c with n_c = 1 + the other tasks using c.

    Args:
        components: (component id, number of parameters) of the path; new components may use any unique key.
        other_users: for each component id, the number of *other* tasks whose current path uses it.
    """
    seen: set[str] = set()
    total = 0.0
    for cid, n in components:
        if cid in seen:
            continue
        seen.add(cid)
        total += n / (1 + other_users.get(cid, 0))
    return total


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
