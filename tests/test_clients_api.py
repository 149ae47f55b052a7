"""`Client` and `AsyncClient` have the same calls (clients/calls.py describes each once), and the multi-step calls
(register_task, download_dataset, wait_for_version) behave alike on both, against a real server."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from munet_serve.artifacts import sha256_file
from munet_serve.clients import AsyncClient, Client
from munet_serve.clients.errors import MunetError, NotFoundError
from munet_serve.clients.streams import DatasetDownload
from munet_serve.proto.v1 import evolution_pb2, types_pb2

from serving_fixtures import TASK, Served


def calls(cls: type) -> dict[str, Callable[..., Any]]:
    return {name: getattr(cls, name) for name in dir(cls) if not name.startswith("_")}


def test_both_clients_have_the_same_calls_with_the_same_parameters() -> None:
    sync, aio = calls(Client), calls(AsyncClient)
    assert sorted(sync) == sorted(aio)
    assert {"register_task", "wait_for_version", "download_dataset", "publish_path", "watch_tasks"} <= set(aio)
    for name in sync:
        ours, theirs = inspect.signature(sync[name]), inspect.signature(aio[name])
        assert ours.parameters == theirs.parameters, name
        assert sync[name].__doc__ == aio[name].__doc__, name
        if name not in ("watch_tasks", "close"):  # a TaskWatch or an async iterator; close is the channel's own
            assert ours.return_annotation == theirs.return_annotation, name
            assert sync[name].__doc__, name


def test_async_calls_are_coroutines_and_the_watch_an_async_iterator() -> None:
    for name, method in calls(AsyncClient).items():
        if name == "watch_tasks":
            assert inspect.isasyncgenfunction(method)
        else:
            assert inspect.iscoroutinefunction(method), name
    assert not any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m) for m in calls(Client).values())


class Threaded:
    """The sync client's calls as coroutines, each run in a thread, so one scenario drives either client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


async def register_download_and_wait(client: Any, cache: Path) -> None:
    images = [np.full((8, 8), 20 * i, np.uint8) for i in range(12)]
    progress: list[tuple[int, int]] = []
    task = await client.register_task("pairs", ["even", "odd"], images, [i % 2 for i in range(12)],
                                      description="twelve", progress=lambda done, total: progress.append((done, total)))
    assert (task.name, task.labels, task.state, task.description) == ("pairs", ["even", "odd"], "pending", "twelve")
    assert progress[-1] == (12, 12)

    info, path = await client.download_dataset("pairs", cache)
    assert path == cache / f"{info.id}.npz" and sha256_file(path) == info.id
    assert info == (await client.get_task("pairs")).dataset
    assert info.train_examples + info.validation_examples + info.test_examples == 12
    assert list(cache.iterdir()) == [path]  # no partial file left behind
    written = path.stat().st_mtime_ns
    assert await client.download_dataset("pairs", cache) == (info, path)
    assert path.stat().st_mtime_ns == written  # the verified copy is kept, not downloaded again

    assert (await client.wait_for_version(TASK, 1)).current_version == 1  # already there
    (v1,) = await client.list_versions(TASK)
    waiting = asyncio.ensure_future(client.wait_for_version(TASK, 2, timeout=60))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    published = await client.publish_path(TASK, v1.components, hparams=v1.hparams, metrics=v1.metrics,
                                          input=v1.input, parent=None)
    reached = await asyncio.wait_for(waiting, 30)
    assert published.version == 2 and (reached.name, reached.current_version) == (TASK, 2)

    waiting = asyncio.ensure_future(client.wait_for_version("pairs", 1, timeout=60))
    await asyncio.sleep(0.5)
    await client.delete_task("pairs")
    with pytest.raises(NotFoundError, match="task 'pairs' was deleted while waiting for version 1"):
        await asyncio.wait_for(waiting, 30)

    with pytest.raises(MunetError, match=f"task '{TASK}' did not reach version 9 within 1 s") as failed:
        await client.wait_for_version(TASK, 9, timeout=1.0)
    assert failed.type is MunetError


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_register_download_and_wait_for_version(kind: str, start_server, served_dir: Path,
                                                served_template: Served, tmp_path: Path) -> None:
    server = start_server(served_dir)

    async def scenario() -> None:
        if kind == "async":
            async with AsyncClient(server.target, timeout=60) as client:
                await client.wait_ready()
                await register_download_and_wait(client, tmp_path / "cache")
        else:
            with Client(server.target, timeout=60) as client:
                client.wait_ready()
                await register_download_and_wait(Threaded(client), tmp_path / "cache")

    asyncio.run(scenario())


def test_a_download_that_does_not_match_its_id_leaves_no_file(tmp_path: Path) -> None:
    download = DatasetDownload("t", tmp_path)
    info = types_pb2.DatasetInfo(id="0" * 64, train_examples=1, image_shape=[8, 8], size_bytes=2)
    assert download.add(evolution_pb2.DatasetPart(info=info)) is False
    assert download.add(evolution_pb2.DatasetPart(chunk=b"xy")) is False
    with pytest.raises(MunetError, match="downloaded bytes do not match id 0{64}"):
        download.result()
    download.discard()
    assert list(tmp_path.iterdir()) == []

    cut = DatasetDownload("t", tmp_path)
    cut.add(evolution_pb2.DatasetPart(info=info))
    cut.discard()  # the stream failed midway
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MunetError, match="dataset stream of 't' did not start with its info"):
        DatasetDownload("t", tmp_path).add(evolution_pb2.DatasetPart(chunk=b"xy"))
