"""The registrar: at each call, registers a new task with a small dataset of random images at the root's input size.
With no evolver running it stays pending. With `delete`, the task registered at the call before is deleted right
after (and the last one by `finish`), so the registry holds at most one of them at a time."""

from __future__ import annotations

import numpy as np

from munet_serve.clients import Client

__all__ = ["Registrar"]

LABELS = ["a", "b", "c", "d"]


class Registrar:
    """Call it with the tick number (1, 2, ...) to register task `<prefix>-<tick>`."""

    def __init__(self, client: Client, image_size: int, per_class: int, delete: bool, seed: int = 0,
                 prefix: str = "soak-registered") -> None:
        rng = np.random.default_rng(seed)
        count = per_class * len(LABELS)
        self._images = list(rng.integers(0, 256, (count, image_size, image_size, 3), dtype=np.uint8))
        self._labels = [k % len(LABELS) for k in range(count)]
        self._client, self._delete, self._prefix = client, delete, prefix
        self.registered: list[str] = []
        self.deleted: list[str] = []

    def __call__(self, tick: int) -> None:
        name = f"{self._prefix}-{tick:04d}"
        self._client.register_task(name, LABELS, self._images, self._labels, description="soak benchmark")
        self.registered.append(name)
        if self._delete and len(self.registered) > 1:
            self._remove(self.registered[-2])

    def finish(self) -> None:
        """Deletes the last registered task (with `delete`)."""
        if self._delete and self.registered and self.registered[-1] not in self.deleted:
            self._remove(self.registered[-1])

    def _remove(self, name: str) -> None:
        self._client.delete_task(name)
        self.deleted.append(name)
