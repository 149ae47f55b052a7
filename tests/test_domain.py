"""The server's domain without its transport: plain records in and out, as a second protocol would call it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from munet_serve.artifacts import Dataset
from munet_serve.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from munet_serve.evolver.components import Head
from munet_serve.evolver.export import export_component, fresh_lineage
from munet_serve.server.config import ServerConfig
from munet_serve.server.metrics import ServerMetrics
from munet_serve.server.ort_env import ort_environment
from munet_serve.server.records import (
    ComponentUpload,
    Example,
    InputFields,
    PathHeader,
    PredictInput,
    RootRecord,
    TaskSpec,
)
from munet_serve.server.service import ServeCore

from evolver_fixtures import ExportedRoot

LABELS = tuple(str(i) for i in range(10))


def _upload(artifact: Any) -> ComponentUpload:
    info = artifact.info
    return ComponentUpload(info.id, info.kind, info.lineage, info.parity_max_abs_error, artifact.weights,
                           artifact.onnx)


def _head(tiny_root: ExportedRoot, seed: int) -> Any:
    head = Head(int(tiny_root.root.describe()["embed_dim"]), len(LABELS))
    torch.nn.init.normal_(head.fc.weight, std=0.5, generator=torch.Generator().manual_seed(seed))
    return export_component(head, fresh_lineage("digits", "head"))


def test_a_task_is_registered_published_served_rolled_back_and_deleted_with_records(
    tmp_path: Path, tiny_root: ExportedRoot, digits: Dataset
) -> None:
    core = ServeCore(ServerConfig(data_dir=tmp_path / "data"), ort_environment(), ServerMetrics())
    core.start()
    try:
        ids = [a.id for a in tiny_root.artifacts]
        assert core.components.store(_upload(a) for a in tiny_root.artifacts).stored == ids
        assert core.components.store([_upload(tiny_root.artifacts[0])]).existing == ids[:1]
        spec = tiny_root.root.input
        root = core.components.set_root(RootRecord(
            source=tiny_root.root.source, components=tuple(zip([n for n, _ in tiny_root.root.components], ids,
                                                               strict=True)),
            params=tiny_root.root.params, input=spec,
        ))
        assert core.components.root() == root

        examples = (Example(image, int(label), int(split))
                    for image, label, split in zip(digits.images, digits.labels, digits.splits, strict=True))
        view = core.tasks.register(TaskSpec(name="digits", labels=LABELS), examples)
        assert view.task.state == "pending" and view.dataset.train + view.dataset.validation + view.dataset.test == len(
            digits.labels)
        assert core.tasks.dataset("digits").path.is_file()
        with pytest.raises(FailedPreconditionError, match="not servable yet"):
            core.predictor.predict("digits", PredictInput(pixels=[digits.images[0]]))

        heads = [_head(tiny_root, seed) for seed in (1, 2)]
        fields = InputFields(spec.image_size, spec.mean, spec.std)
        for version, head in enumerate(heads, start=1):
            header = PathHeader(task="digits", components=(*root.components, ("head", head.id)), hparams={},
                                metrics={"validation_accuracy": 0.5}, input=fields)
            assert core.versions.publish(header, [_upload(head)]).version == version
        with pytest.raises(InvalidArgumentError, match="must start with an embedding"):
            core.versions.publish(PathHeader("digits", (("head", heads[0].id),), {}, {}, fields), [])

        images = list(digits.images[:3])
        second = core.predictor.predict("digits", PredictInput(pixels=images))
        assert (second.task, second.version, second.labels, second.logits.shape) == ("digits", 2, LABELS, (3, 10))
        assert core.versions.rollback("digits", 1).task.current_version == 1
        first = core.predictor.predict("digits", PredictInput(pixels=images))
        assert first.version == 1 and not np.array_equal(first.logits, second.logits)
        task, versions = core.versions.history("digits")
        assert task.current_version == 1 and [v.version for v in versions] == [1, 2]

        info = core.live.serving_info()
        assert [(r.task, r.version, r.component_ids) for r in info.routes] == [("digits", 1, (*ids, heads[0].id))]
        assert {cid for s in info.sessions for cid in s.component_ids} == {*ids, heads[0].id}
        assert all(s.tasks == ["digits"] for s in info.sessions)

        core.tasks.delete("digits")
        assert core.live.serving_info().routes == [] and core.live.serving_info().sessions == []
        with pytest.raises(NotFoundError, match="not found"):
            core.predictor.predict("digits", PredictInput(pixels=images))
    finally:
        core.close()
