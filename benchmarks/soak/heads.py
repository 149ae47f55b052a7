"""The pool of heads the publisher cycles through, made before the clock starts so that no torch runs during the
soak: each task's current head is downloaded from the server, rebuilt as a module, and reweighted with seeded noise
(`benchmarks.serving.fleet.reweighted`, which rewrites the stored graph's initializers and checks parity, so no
module is exported again). Works on any data directory whose paths end in a head."""

from __future__ import annotations

from benchmarks.serving.fleet import reweighted
from benchmarks.serving.models import current_version
from munet_serve.artifacts import ComponentKind
from munet_serve.clients import Client
from munet_serve.clients.types import ComponentArtifact
from munet_serve.evolver.export import fresh_lineage, load_module

__all__ = ["head_pool"]


def head_pool(client: Client, task: str, count: int, seed: int = 0) -> list[ComponentArtifact]:
    """`count` heads of the shape of the task's current head, each with weights of its own (distinct ids)."""
    last = current_version(client, task).components[-1]
    stored = client.get_component(last.id, include_onnx=True)
    if stored.info.kind != ComponentKind.HEAD or not stored.onnx:
        raise ValueError(f"the path of {task!r} does not end in a head with a graph: {stored.info.kind}")
    module = load_module(stored)
    lineage = fresh_lineage(task, last.name)
    heads = [reweighted(module, stored.onnx, lineage, seed=1000 * seed + k)[0] for k in range(count)]
    if len({h.id for h in heads}) != count:
        raise RuntimeError(f"the reweighted heads of {task!r} are not distinct")
    return heads
