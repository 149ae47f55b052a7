"""Train locks (§1.3): which published components a task may not train.

Every task holds a lock on each component of its current path; the root's components (and position embeddings
derived from them) hold the root lock. A component is frozen for task T when anyone but T holds a lock on it, so a
revisit of T lifts only T's own lock: T's private components become trainable (always as copies), while everything
shared with another task or the root stays frozen. Published components are never trained in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["ROOT_LOCK", "Locks"]

ROOT_LOCK = "<root>"


@dataclass(frozen=True)
class Locks:
    """component id -> the tasks (and the root marker) holding a lock on it."""

    holders: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, root_ids: Iterable[str], current: Mapping[str, Iterable[str]]) -> Locks:
        """From the root's component ids and each task's current path (task -> component ids)."""
        holders: dict[str, set[str]] = {cid: {ROOT_LOCK} for cid in root_ids}
        for task, ids in current.items():
            for cid in ids:
                holders.setdefault(cid, set()).add(task)
        return cls({cid: frozenset(h) for cid, h in holders.items()})

    def frozen_for(self, component_id: str, task: str) -> bool:
        """True when someone other than `task` holds a lock: `task` may share it but never train it."""
        return bool(self.holders.get(component_id, frozenset()) - {task})

    def users(self, component_id: str) -> frozenset[str]:
        """The tasks whose current path uses the component (the root marker excluded)."""
        return self.holders.get(component_id, frozenset()) - {ROOT_LOCK}

    def other_users(self, task: str) -> dict[str, int]:
        """For the score (§6): per component, how many tasks other than `task` use it."""
        return {cid: len(self.users(cid) - {task}) for cid in self.holders}
