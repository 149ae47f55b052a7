"""The per-task models the serving benchmark compares munet-serve with (issue 5), built from a published path.

- Baseline A: one whole-model ONNX graph per task, as Triton's ONNX Runtime backend would serve it: the task's
  component graphs chained into one graph (no weight sharing between tasks).
- Baseline B: PyTorch eager, one model per task: the path's component modules, loaded from their safetensors files.

Both compute exactly the chain the server runs; tests check their logits against the server's answers.
"""

from __future__ import annotations

from typing import Any

import onnx

from munet_serve.clients import Client
from munet_serve.clients.types import PathVersion
from munet_serve.server.segments import fuse

__all__ = ["ComponentCache", "current_version", "eager_path_module", "whole_path_graph"]


def current_version(client: Client, task: str) -> PathVersion:
    """The task's current published version (with its components in execution order)."""
    for version in client.list_versions(task):
        if version.current:
            return version
    raise LookupError(f"task {task!r} has no current version")


class ComponentCache:
    """Component files fetched from a server once each (a fleet's tasks share most of their components)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._onnx: dict[str, bytes] = {}
        self._weights: dict[str, bytes] = {}

    def onnx(self, cid: str) -> bytes:
        if cid not in self._onnx:
            artifact = self.client.get_component(cid, include_onnx=True)
            if artifact.onnx is None:
                raise ValueError(f"component {cid} came without its ONNX graph")
            self._onnx[cid], self._weights[cid] = artifact.onnx, artifact.weights
        return self._onnx[cid]

    def weights(self, cid: str) -> bytes:
        if cid not in self._weights:
            self._weights[cid] = self.client.get_component(cid).weights
        return self._weights[cid]


def whole_path_graph(client: Client, task: str, cache: ComponentCache | None = None) -> onnx.ModelProto:
    """The task's current path as one ONNX graph, as an exporter of the whole model would give it: the components'
    graphs chained by the server's `fuse`, with ONNX Runtime free to fuse operators across the joins."""
    cache = cache or ComponentCache(client)
    version = current_version(client, task)
    merged = fuse([onnx.load_from_string(cache.onnx(c.id)) for c in version.components], name=task, exact=False)
    merged.doc_string = f"{task} v{version.version}"
    return merged


def eager_path_module(client: Client, task: str, cache: ComponentCache | None = None) -> Any:
    """The task's current path as a PyTorch module (evaluation mode, no gradients), for baseline B."""
    from munet_serve.evolver.export import load_module
    from munet_serve.evolver.path import PathModule

    cache = cache or ComponentCache(client)
    version = current_version(client, task)
    modules = [(c.name, load_module(cache.weights(c.id))) for c in version.components]
    module = PathModule(modules).eval()
    module.requires_grad_(False)
    return module
