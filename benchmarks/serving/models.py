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
import onnx.helper

from munet_serve.clients import Client
from munet_serve.clients.types import PathVersion

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
    """The task's current path as one ONNX graph: each component's graph with its names prefixed (c0_, c1_, ...),
    its input fed by the previous one's output through an Identity node. Input and output keep the first and last
    component's tensor names (prefixed). Built in one pass, so a long path of large components stays fast."""
    cache = cache or ComponentCache(client)
    version = current_version(client, task)
    graphs = [onnx.load_from_string(cache.onnx(c.id)) for c in version.components]
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    opsets: dict[str, int] = {}
    for i, graph in enumerate(graphs):
        onnx.compose.add_prefix(graph, f"c{i}_", inplace=True)
        if i:
            nodes.append(onnx.helper.make_node(
                "Identity", [graphs[i - 1].graph.output[0].name], [graph.graph.input[0].name], name=f"link{i}"
            ))
        nodes.extend(graph.graph.node)
        initializers.extend(graph.graph.initializer)
        for opset in graph.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    merged = onnx.helper.make_model(
        onnx.helper.make_graph(nodes, task, [graphs[0].graph.input[0]], [graphs[-1].graph.output[0]], initializers),
        opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=graphs[0].ir_version,
    )
    for graph in graphs:
        for function in graph.functions:
            merged.functions.append(function)
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
