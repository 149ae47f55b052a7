"""Segments: runs of components that every live path goes through together, run as one fused ONNX Runtime session.

Cross-task batching needs each shared component to stay a unit of its own only where paths part. Most of a path
never parts from the others (the root's embedding and its blocks up to the first one a task cloned), so the server
cuts the live paths into *segments*: component `a` and the component `b` after it are one segment when, in every live
path, `a` is followed by `b` and `b` comes after `a` (and neither ends or starts a path). Each component then lies in
exactly one segment, and two paths that share a component share its whole segment, so requests batch across tasks
exactly as they would component by component, with one session run per segment instead of one per component.
The server also never joins a root component with one of a task's own (`stable`): publishes replace a task's own
components and keep the root's, so the session of the root's body survives them (a task served alone would
otherwise have its whole path rebuilt by every publish). The cut is a function of the live paths and the root alone:
a restart cuts as the running server did.
Measured by `benchmarks/serving --quick` on 2 cores (16 tasks on ViT-S/14 paths): 1.08-1.33x the throughput of the
same server with one session per component (`--no-fuse`), in six runs.

`fuse` builds a segment's graph from its components' graphs: every name gets a per-component prefix and an Identity
joins each output to the next input. Each join also stays an output of the fused graph (never fetched), which keeps
ONNX Runtime's optimizers from fusing operators across it (they leave nodes that produce graph outputs alone, as they
must in the component's own session): so a fused segment computes bit for bit what the chain of its components does,
and re-cutting a path when another task arrives never changes its answers (a task's answers never depend on which
other tasks the server holds: the Invariants of docs/architecture.md; without the extra outputs the last block's
residual Add and the final norm became one SkipLayerNormalization, 1e-6 off). A chain that cannot be fused
(different opsets, local functions, over protobuf's 2 GiB) runs unfused.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence, Set
from typing import TypeVar

import onnx
from onnx import compose, helper

__all__ = ["FuseError", "Segments", "fuse", "segment_paths"]

Segments = tuple[tuple[str, ...], ...]  # a path cut into segments, each a run of component ids
K = TypeVar("K", bound=Hashable)


class FuseError(ValueError):
    """The graphs cannot be joined into one."""


def segment_paths(paths: Mapping[K, Sequence[str]], stable: Set[str] = frozenset()) -> dict[K, Segments]:
    """Cuts every path (key -> component ids) into the segments described above; no segment holds both components
    in `stable` and components outside it."""
    after: dict[str, set[str | None]] = {}
    before: dict[str, set[str | None]] = {}
    repeated: set[str] = set()
    for path in paths.values():
        seen: set[str] = set()
        for i, cid in enumerate(path):
            if cid in seen:
                repeated.add(cid)  # a component used twice in one path is never joined (no cycles)
            seen.add(cid)
            after.setdefault(cid, set()).add(path[i + 1] if i + 1 < len(path) else None)
            before.setdefault(cid, set()).add(path[i - 1] if i else None)

    def joined(a: str, b: str) -> bool:
        return (a not in repeated and b not in repeated and (a in stable) == (b in stable) and after[a] == {b}
                and before[b] == {a})

    cut: dict[K, Segments] = {}
    for task, path in paths.items():
        segments: list[list[str]] = []
        for i, cid in enumerate(path):
            if i and joined(path[i - 1], cid):
                segments[-1].append(cid)
            else:
                segments.append([cid])
        cut[task] = tuple(tuple(s) for s in segments)
    return cut


def fuse(models: Sequence[onnx.ModelProto], name: str = "segment", exact: bool = True) -> onnx.ModelProto:
    """One graph that runs `models` one after the other (each has one input and one output); modifies `models`.
    The input is the first model's and the last output the last model's (names prefixed "s0/", "s1/", ...).

    With `exact`, the joins are outputs too (see above); without, ONNX Runtime may fuse across them, as it would in
    a graph exported whole. Raises FuseError when they cannot be joined."""
    if len(models) == 1:
        return models[0]
    opsets: dict[str, int] = {}
    for model in models:
        if model.functions:
            raise FuseError("a component graph has local functions")
        for opset in model.opset_import:
            if opsets.setdefault(opset.domain, opset.version) != opset.version:
                raise FuseError(f"the component graphs use different versions of opset {opset.domain or 'ai.onnx'!r}")
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    sparse: list[onnx.SparseTensorProto] = []
    infos: list[onnx.ValueInfoProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    joins: list[onnx.ValueInfoProto] = []
    previous: onnx.ValueInfoProto | None = None
    for i, model in enumerate(models):
        compose.add_prefix(model, f"s{i}/", inplace=True)
        graph = model.graph
        constants = {t.name for t in graph.initializer}
        graph_inputs = [x for x in graph.input if x.name not in constants]
        if len(graph_inputs) != 1 or len(graph.output) != 1:
            raise FuseError(f"component graph {i} has {len(graph_inputs)} inputs and {len(graph.output)} outputs")
        if previous is None:
            inputs.append(graph_inputs[0])
        else:
            nodes.append(helper.make_node("Identity", [previous.name], [graph_inputs[0].name], name=f"join{i}"))
            if exact:
                joins.append(previous)
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        sparse.extend(graph.sparse_initializer)
        infos.extend(graph.value_info)
        previous = graph.output[0]
    fused = helper.make_graph(nodes, name, inputs, [*joins, models[-1].graph.output[0]], initializer=initializers,
                              sparse_initializer=sparse, value_info=infos)
    return helper.make_model(fused, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                             ir_version=max(m.ir_version for m in models), producer_name="munet-serve")
