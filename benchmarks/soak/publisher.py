"""The publisher: at each call, the next of its tasks (in turn) gets a new version, its current path with the next
head of the task's pool in place of the last component. A head travels with the first publish that names it; later
publishes name it by id only (the server has it stored), so after the first round a publish costs the server a new
path, a route swap and a registry transaction, but no upload. The soak is the only writer of these tasks, so the
current path is kept here from each publish's answer instead of being listed again."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from munet_serve.clients import Client
from munet_serve.clients.types import ComponentArtifact, PathComponent, PathRef, PathVersion

__all__ = ["Published", "Publisher"]


@dataclass(frozen=True)
class Published:
    """One publish that returned: the task, its current version before, and the version the publish made."""

    task: str
    previous: int
    version: int
    current: bool


class Publisher:
    """Call it with the tick number (1, 2, ...) to publish the next task's next version."""

    def __init__(self, client: Client, pools: dict[str, list[ComponentArtifact]],
                 current: dict[str, PathVersion]) -> None:
        if not pools or set(pools) != set(current):
            raise ValueError("every publishing task needs a head pool and its current version")
        if any(len(p) < 2 for p in pools.values()):
            raise ValueError("a pool needs at least two heads, so that every publish changes the path")
        self._client = client
        self._pools = pools
        self._tasks = sorted(pools)
        self._current = dict(current)
        self._turns = dict.fromkeys(self._tasks, 0)
        self._stored: set[str] = set()
        self._lock = threading.Lock()
        self.published: list[Published] = []

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    def last_versions(self) -> dict[str, int]:
        """Each task's version as this publisher last made (or found) it."""
        with self._lock:
            return {t: v.version for t, v in self._current.items()}

    def __call__(self, tick: int) -> None:
        task = self._tasks[(tick - 1) % len(self._tasks)]
        pool = self._pools[task]
        head = pool[self._turns[task] % len(pool)]
        self._turns[task] += 1
        base = self._current[task]
        components = [*base.components[:-1], PathComponent(base.components[-1].name, head.id)]
        version = self._client.publish_path(
            task, components, hparams=base.hparams, metrics=base.metrics, input=base.input,
            parent=PathRef(task, base.version), new_components=[] if head.id in self._stored else [head],
        )
        self._stored.add(head.id)
        with self._lock:
            self._current[task] = version
            self.published.append(Published(task, base.version, version.version, version.current))
