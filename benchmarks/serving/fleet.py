"""A fleet of served tasks for the serving benchmark: one root and N tasks whose paths share it as muNet's do.

Every task's path is the root's embedding, class token, position embedding and blocks, with its own encoder norm and
head; every `own_block_every`-th task (the first, the third, ...) also owns a clone of the top block, so that the
fleet mixes paths that share the whole root body with paths that part from it one block earlier. The weights need
not be trained to measure serving, but each owned component has weights of its own (a distinct component id and
its own session), so memory and batching behave as with evolved paths.

Exporting a module with the dynamo exporter takes seconds, so each kind of owned component (top block, norm, head)
is exported once as a template; a task's copy perturbs the parameters that appear by name among the template
graph's initializers and rewrites exactly those initializers. Every copy is checked for parity against its module
before it is published, as the evolver checks its exports.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from munet_serve.clients import Client
from munet_serve.clients.types import ComponentArtifact, Metrics, PathComponent, PathRef, PathVersion, RootInfo
from munet_serve.evolver.components import Component, Head
from munet_serve.evolver.config import RootConfig
from munet_serve.evolver.export import (
    PARITY_TOLERANCE,
    check_parity,
    clone_lineage,
    export_component,
    fresh_lineage,
    root_lineage,
    serialize_weights,
)
from munet_serve.evolver.root import build_root
from munet_serve.imaging import InputSpec

logger = logging.getLogger(__name__)

__all__ = ["Fleet", "FleetSpec", "reweighted", "top_block"]


@dataclass(frozen=True)
class FleetSpec:
    """The fleet's shape.

    Attributes:
        root: the root's architecture and weights.
        num_classes: classes of every task's head.
        own_block_every: every k-th task owns a clone of the top block (0: no task does).
        seed: seed of the owned components' weights.
    """

    root: RootConfig
    num_classes: int = 10
    own_block_every: int = 2
    seed: int = 0


def reweighted(module: Component, onnx_bytes: bytes, lineage: dict, seed: int, scale: float = 0.02
               ) -> tuple[ComponentArtifact, Component]:
    """A copy of an exported module with new weights: each parameter that is a graph initializer under its own
    name gets seeded noise, in the module and in the graph, and keeps it if the graph still matches the module
    (a parameter the exporter also folded into other constants does not). Raises ValueError if none can change."""
    clone = copy.deepcopy(module)
    model = onnx.load_from_string(onnx_bytes)
    initializers = {i.name: i for i in model.graph.initializer}
    generator = torch.Generator().manual_seed(seed)
    changed = 0
    with torch.no_grad():
        for name, tensor in clone.state_dict().items():
            init = initializers.get(name)
            if init is None or tuple(init.dims) != tuple(tensor.shape):
                continue
            before, before_init = tensor.clone(), copy.deepcopy(init)
            tensor.add_(torch.randn(tensor.shape, generator=generator) * scale)
            init.CopyFrom(numpy_helper.from_array(tensor.numpy().astype(np.float32), name))
            error, size = check_parity(clone, model.SerializeToString())
            if error <= PARITY_TOLERANCE * max(1.0, size):
                changed += 1
            else:
                tensor.copy_(before)
                init.CopyFrom(before_init)
    if not changed:
        raise ValueError(f"no parameter of the {module.kind.value} component can be reweighted in its graph")
    graph = model.SerializeToString()
    error, _ = check_parity(clone, graph)
    return ComponentArtifact.create(serialize_weights(clone, lineage), graph, error), clone.eval()


def top_block(names: list[str]) -> str:
    """The last encoder block of a path's slot names in execution order (encoderblock_11 comes after _9)."""
    blocks = [n for n in names if n.startswith("encoderblock_")]
    if not blocks:
        raise ValueError(f"no encoder block among {names}")
    return blocks[-1]


class Fleet:
    """Builds the root once, then publishes tasks on any server: `upload_root`, `add_task`, `new_head`."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        built = build_root(spec.root)
        self.input: InputSpec = built.input
        self.names = [name for name, _ in built.components]
        self.root_params = built.params
        self._root_source = built.source
        self._root_config = built.describe()
        self.root_artifacts = [export_component(m, root_lineage(n)) for n, m in built.components]
        modules = dict(built.components)
        self._top = top_block(self.names)
        self._templates: dict[str, tuple[Component, bytes]] = {}
        for name in (self._top, "encoder_norm"):
            index = self.names.index(name)
            self._templates[name] = (modules[name], self.root_artifacts[index].onnx or b"")
        dim = int(self._root_config["embed_dim"])
        head = Head(dim, spec.num_classes)
        torch.nn.init.normal_(head.fc.weight, std=0.02, generator=torch.Generator().manual_seed(spec.seed))
        head_artifact = export_component(head, fresh_lineage("fleet", "head"))
        self._templates["head"] = (head, head_artifact.onnx or b"")

    @property
    def image_size(self) -> int:
        return self.input.image_size

    def upload_root(self, client: Client) -> RootInfo:
        client.upload_components(self.root_artifacts)
        return client.set_root(RootInfo(
            source=self._root_source,
            components=[PathComponent(n, a.id) for n, a in zip(self.names, self.root_artifacts, strict=True)],
            config=self._root_config,
            params=self.root_params,
            input=self.input,
        ))

    def owned(self, index: int) -> list[str]:
        """Names of the components task `index` (0-based) owns."""
        every = self.spec.own_block_every
        block = [self._top] if every and index % every == 0 else []
        return [*block, "encoder_norm", "head"]

    def add_task(self, client: Client, name: str, index: int) -> PathVersion:
        """Registers task `name` (a small dataset of random images) and publishes its version 1."""
        rng = np.random.default_rng([self.spec.seed, index])
        size = self.image_size
        labels = [f"class-{k}" for k in range(self.spec.num_classes)]
        images = list(rng.integers(0, 256, (4 * len(labels), size, size, 3), dtype=np.uint8))
        client.register_task(name, labels, images, [k % len(labels) for k in range(len(images))])
        own = {n: self._copy(n, name, 1000 * index + i) for i, n in enumerate(self.owned(index))}
        return self._publish(client, name, own)

    def new_head(self, task: str, seed: int) -> ComponentArtifact:
        """A head of the same shape with other weights, to publish as a task's next version."""
        return self._copy("head", task, 10**6 + seed)

    def publish_head(self, client: Client, task: str, head: ComponentArtifact) -> PathVersion:
        """Publishes the task's current path with `head` as its next version."""
        current = next(v for v in client.list_versions(task) if v.current)
        ids = {c.name: c.id for c in current.components}
        return self._publish(client, task, {"head": head}, ids, PathRef(task, current.version))

    def _copy(self, name: str, task: str, seed: int) -> ComponentArtifact:
        module, graph = self._templates[name]
        lineage = fresh_lineage(task, name) if name == "head" else clone_lineage(None, task, name)
        artifact, _ = reweighted(module, graph, lineage, seed)
        return artifact

    def _publish(self, client: Client, task: str, own: dict[str, ComponentArtifact],
                 base: dict[str, str] | None = None, parent: PathRef | None = None) -> PathVersion:
        ids = dict(base or zip(self.names, (a.id for a in self.root_artifacts), strict=True))
        ids.update({n: a.id for n, a in own.items()})
        order = [*self.names, "head"]
        return client.publish_path(
            task,
            [PathComponent(n, ids[n]) for n in order],
            hparams={"num_classes": self.spec.num_classes},
            metrics=Metrics(new_params=sum(a.info.num_params for a in own.values())),
            input=self.input,
            parent=parent or PathRef("", 0),
            new_components=list(own.values()),
        )
