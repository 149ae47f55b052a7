"""The per-task models the serving benchmark compares munet-serve with (issue 5), built from a published path.

- Baseline A: one whole-model ONNX graph per task, as Triton's ONNX Runtime backend would serve it: the task's
  component graphs chained into one graph with `onnx.compose` (no weight sharing between tasks).
- Baseline B: PyTorch eager, one model per task: the path's component modules, loaded from their safetensors files.

Both compute exactly the chain the server runs; tests check their logits against the server's answers.
"""

from __future__ import annotations

from typing import Any

import onnx
import onnx.compose

from munet_serve.clients import Client
from munet_serve.clients.types import PathVersion

__all__ = ["current_version", "eager_path_module", "whole_path_graph"]


def current_version(client: Client, task: str) -> PathVersion:
    """The task's current published version (with its components in execution order)."""
    for version in client.list_versions(task):
        if version.current:
            return version
    raise LookupError(f"task {task!r} has no current version")


def whole_path_graph(client: Client, task: str) -> onnx.ModelProto:
    """The task's current path as one ONNX graph: each component's graph, its names prefixed, output wired to the
    next one's input. Input and output keep the first and last component's tensor names (prefixed)."""
    version = current_version(client, task)
    graphs = []
    for i, component in enumerate(version.components):
        artifact = client.get_component(component.id, include_onnx=True)
        if artifact.onnx is None:
            raise ValueError(f"component {component.id} of {task!r} came without its ONNX graph")
        graphs.append(onnx.compose.add_prefix(onnx.load_from_string(artifact.onnx), f"c{i}_"))
    merged = graphs[0]
    for graph in graphs[1:]:
        io_map = [(merged.graph.output[0].name, graph.graph.input[0].name)]
        merged = onnx.compose.merge_models(merged, graph, io_map=io_map)
    merged.doc_string = f"{task} v{version.version}"
    onnx.checker.check_model(merged)
    return merged


def eager_path_module(client: Client, task: str) -> Any:
    """The task's current path as a PyTorch module (evaluation mode, no gradients), for baseline B."""
    from munet_serve.evolver.export import load_module
    from munet_serve.evolver.path import PathModule

    version = current_version(client, task)
    modules = [(c.name, load_module(client.get_component(c.id).weights)) for c in version.components]
    module = PathModule(modules).eval()
    module.requires_grad_(False)
    return module
