"""Publishing a path: export what the server does not hold yet, publish through the SDK, mark it published.

Components the path holds by reference are already on the server; fresh and cloned ones (and a root position
embedding resized for the path's image size) are exported to ONNX, checked for parity, and uploaded with the path.
The test accuracy published with the path is measured here, on the test split that selection never sees.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from munet_serve.artifacts import Split
from munet_serve.clients.types import ComponentArtifact, Metrics, PathComponent, PathVersion

from .data import TaskData
from .export import PARITY_TOLERANCE, clone_lineage, derived_lineage, export_component, fresh_lineage
from .path import Origin, Path
from .store import ComponentStore
from .train import TrainResult, evaluate_batches

if TYPE_CHECKING:
    from munet_serve.clients import Client

logger = logging.getLogger(__name__)

__all__ = ["publish"]


def _lineage(path: Path, name: str, origin: Origin, source_id: str | None, root_posembed_id: str) -> dict:
    if origin is Origin.FRESH:
        return fresh_lineage(path.task, name)
    if origin is Origin.CLONE:
        return clone_lineage(source_id, path.task, name)
    slot = path.slot(name)
    assert slot is not None
    return derived_lineage(root_posembed_id, name, slot.module.config["grid"])


def publish(
    client: Client,
    path: Path,
    data: TaskData,
    result: TrainResult,
    *,
    accounted_params: float,
    num_classes: int,
    store: ComponentStore,
    root_posembed_id: str,
    eval_batch_size: int = 256,
    parity_tolerance: float = PARITY_TOLERANCE,
) -> PathVersion:
    """Publishes `path` as its task's next version; afterwards its slots refer to the published components."""
    test_accuracy = evaluate_batches(path.module, data.eval_batches(Split.TEST, path.input, eval_batch_size))
    exported: dict[str, ComponentArtifact] = {}
    components = []
    for slot in path.slots:
        pid = slot.published_id
        if pid is None:
            lineage = _lineage(path, slot.name, slot.origin, slot.component_id, root_posembed_id)
            exported[slot.name] = export_component(slot.module, lineage, tolerance=parity_tolerance)
            pid = exported[slot.name].id
        components.append(PathComponent(slot.name, pid))
    metrics = Metrics(
        validation_accuracy=path.quality,
        test_accuracy=test_accuracy,
        score=path.score,
        accounted_params=round(accounted_params),
        new_params=sum(a.info.num_params for a in exported.values()),
        train_steps=result.steps,
        train_seconds=result.seconds,
    )
    version = client.publish_path(
        path.task,
        components,
        hparams={**path.hparams.to_dict(), "num_classes": num_classes},
        metrics=metrics,
        input=path.input,
        parent=path.parent,
        new_components=list(exported.values()),
    )
    for slot in path.slots:
        if slot.name in exported:
            artifact = exported[slot.name]
            store.add(artifact, slot.module)  # published: frozen from now on, children copy it
            slot.origin = Origin.DERIVED if slot.origin is Origin.DERIVED else Origin.SHARED
            slot.component_id = artifact.id
    path.version = version.version
    logger.info(
        "task %s: published v%d (%s): validation %.4f, test %.4f, score %.4f, %d new params, %d accounted",
        path.task, version.version, path.label, path.quality, test_accuracy, path.score, metrics.new_params,
        metrics.accounted_params,
    )
    return version
