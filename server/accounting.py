"""Parameters accounted to each task's current path, live, and the system's parameters per task (muNet §6).

accounted(task) = sum over the distinct components c of the task's current path of |c| / n_c, where n_c is the
number of tasks whose current path uses c (this task included). Summed over all tasks this is the number of
distinct parameters of the system, each shared component counted once; divided by the number of tasks it is the
"parameters per task" muNet reports. The evolver scores candidates with the same formula at publish time
(Metrics.accounted_params); the figures here move as other tasks start or stop sharing components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from munet_serve.accounting import accounted_params, count_users


@dataclass(frozen=True)
class ParamAccount:
    """The accounted parameters of every serving task and the system figures, from one registry state."""

    accounted: dict[str, int]  # task name -> accounted parameters of its current path (pending tasks absent)
    distinct_params: int
    root_params: int

    @property
    def serving_tasks(self) -> int:
        return len(self.accounted)

    @property
    def params_per_task(self) -> float:
        return self.distinct_params / self.serving_tasks if self.serving_tasks else 0.0


def account(paths: Mapping[str, Sequence[str]], params: Mapping[str, int], root_params: int = 0) -> ParamAccount:
    """Accounts parameters for the current paths (task -> component ids) given each component's parameter count.

    A component repeated within one path counts once; a component missing from params counts 0.
    """
    users = count_users(paths.values())
    accounted = {
        task: round(accounted_params([(cid, params.get(cid, 0)) for cid in ids], {c: users[c] - 1 for c in ids}))
        for task, ids in paths.items()
    }
    return ParamAccount(
        accounted=accounted,
        distinct_params=sum(params.get(cid, 0) for cid in users),
        root_params=root_params,
    )
