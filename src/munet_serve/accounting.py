"""Parameters accounted to a path (docs/evolution.md §6), shared by the evolver's score and the server's live figures.

A component counts |c| / n_c, where n_c is the number of tasks whose current path uses it (the path's own task
included), so components shared with other tasks cost a fraction; summed over all tasks this gives the system's
distinct parameters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["accounted_params", "count_users"]


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
