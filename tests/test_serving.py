"""End to end on real parts: a task registered over gRPC, seeded by the real evolver, served by ONNX Runtime, and
compared with the PyTorch model of the same path; then the server restarts and answers identically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from munet_serve.clients import Client
from munet_serve.evolver.export import load_module
from munet_serve.evolver.path import PathModule
from munet_serve.imaging import encode_png, to_model_input

from serving_fixtures import TASK, Served

# ONNX Runtime and PyTorch differ by float32 rounding only; logits of this small path stay within 1e-4.
LOGIT_TOLERANCE = 1e-4


def torch_path(client: Client, task: str) -> PathModule:
    """The PyTorch model of the task's current path, rebuilt from the component weights the server holds."""
    (current,) = [v for v in client.list_versions(task) if v.current]
    modules = [(c.name, load_module(client.get_component(c.id))) for c in current.components]
    return PathModule.from_components(modules).eval()


def test_seeded_task_serves_the_same_answers_as_its_pytorch_path(
    start_server, served_dir: Path, served_template: Served
) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=60) as client:
        task = client.get_task(TASK)
        assert task.state == "serving" and task.current_version == 1
        assert 0.0 < task.metrics.validation_accuracy <= 1.0 and 0.0 < task.metrics.test_accuracy <= 1.0
        (v1,) = client.list_versions(TASK)
        assert v1.parent is not None and v1.parent.is_root and v1.metrics.train_steps > 0
        assert [c.name for c in v1.components][-1] == "head"

        x = to_model_input(list(served_template.test_images), task.input)
        with torch.no_grad():
            expected = torch_path(client, TASK)(torch.from_numpy(x)).numpy()
        served = client.predict_batch(TASK, x, include_logits=True, top_k=3)
        logits = np.stack([p.logits for p in served.predictions])
        assert served.version == 1 and logits.shape == (len(x), 10)
        assert np.abs(logits - expected).max() <= LOGIT_TOLERANCE
        assert [p.top[0].index for p in served.predictions] == expected.argmax(axis=1).tolist()

        # Encoded PNGs take the same preprocessing on the server: same top-1 labels as PyTorch.
        pngs = [encode_png(im[:, :, 0]) for im in served_template.test_images]
        by_png = client.predict(TASK, pngs, top_k=1)
        assert [p.label for p in by_png.predictions] == [str(i) for i in expected.argmax(axis=1)]
        accuracy = np.mean(expected.argmax(axis=1) == served_template.test_labels)
        assert abs(accuracy - task.metrics.test_accuracy) < 1e-9  # the published test accuracy is what is served

    server.stop()
    restarted = start_server(served_dir)
    with Client(restarted.target, timeout=60) as client:
        again = client.predict_batch(TASK, x, include_logits=True, top_k=3)
        assert again.version == 1
        assert np.array_equal(np.stack([p.logits for p in again.predictions]), logits)
        labels = [[s.label for s in p.top] for p in served.predictions]
        assert [[s.label for s in p.top] for p in again.predictions] == labels


def test_async_client_mirrors_the_sync_one(start_server, served_dir: Path, served_template: Served) -> None:
    import asyncio

    from munet_serve.clients import AsyncClient

    server = start_server(served_dir)

    async def scenario() -> None:
        async with AsyncClient(server.target, timeout=60) as client:
            await client.wait_ready()
            (task,) = await client.list_tasks()
            assert task.name == TASK and task.current_version == 1
            result = await client.predict(TASK, [served_template.test_images[0]], top_k=2)
            assert result.version == 1 and len(result.predictions[0].top) == 2
            versions = await client.list_versions(TASK)
            head = await client.get_component(versions[0].components[-1].id)
            assert head.info.kind.value == "head"
            async for event in client.watch_tasks(TASK, send_initial=True):
                assert event.type == "snapshot" and event.task.current_version == 1
                break

    asyncio.run(scenario())
