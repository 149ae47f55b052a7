"""Clients over several servers (clients/transport.py `channel_target`): `Client("a:1,b:2")` balances its calls over
the replicas with gRPC's round_robin, the CLI takes the same list, and when one replica stops the calls go on to the
others. The replicas here are two real servers over copies of one data dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from munet_serve.clients import Client
from munet_serve.clients.errors import MunetError
from munet_serve.clients.transport import channel_target

from serving_fixtures import TASK, Served

CLI = str(Path(sys.executable).with_name("munet-serve"))


def _answered(server) -> float:  # noqa: ANN001 - a RunningServer
    value = server.core.metrics.registry.get_sample_value("munet_predict_requests_total", {"task": TASK, "code": "OK"})
    return value or 0.0


def test_targets_name_one_server_several_or_a_grpc_name() -> None:
    assert channel_target("127.0.0.1:50051")[0] == "127.0.0.1:50051"
    name, options = channel_target("127.0.0.1:1, 127.0.0.2:2")
    assert name == "ipv4:127.0.0.1:1,127.0.0.2:2" and ("grpc.lb_policy_name", "round_robin") in options
    assert channel_target("[::1]:1,[::1]:2")[0] == "ipv6:[::1]:1,[::1]:2"
    assert channel_target("localhost:7,127.0.0.1:8")[0] == "ipv4:127.0.0.1:7,127.0.0.1:8"
    assert ("grpc.lb_policy_name", "round_robin") in channel_target("dns:///replicas.example:50051")[1]
    for bad, message in (("127.0.0.1,127.0.0.2:1", "is not HOST:PORT"), ("127.0.0.1:1,[::1]:2", "mix IPv4 and IPv6"),
                         (",", "no server address"), ("127.0.0.1:1,nowhere.invalid:2", "does not resolve")):
        with pytest.raises(ValueError, match=message):
            channel_target(bad)


def test_calls_are_balanced_over_replicas_and_go_on_when_one_stops(start_server, served_dir: Path,
                                                                   served_template: Served, tmp_path: Path) -> None:
    shutil.copytree(served_dir, tmp_path / "replica")
    first, second = start_server(served_dir), start_server(tmp_path / "replica")
    images = served_template.test_images[:4]
    targets = f"127.0.0.1:{first.port},127.0.0.1:{second.port}"
    with Client(targets, timeout=30) as client:
        client.wait_ready(timeout=60)
        answers = [client.predict_batch(TASK, images, include_logits=True) for _ in range(20)]
        assert _answered(first) >= 5 and _answered(second) >= 5  # round robin: both replicas answer
        logits = [np.stack([p.logits for p in a.predictions]) for a in answers]
        assert all(np.array_equal(logits[0], other) for other in logits[1:])  # the same version on both

        shown = subprocess.run([CLI, "tasks", "list", "--server", targets], capture_output=True, text=True,
                               timeout=120)
        assert shown.returncode == 0 and TASK in shown.stdout, shown.stdout + shown.stderr

        second.stop(grace=1.0)
        before = _answered(first)
        deadline, done = time.monotonic() + 30, 0
        while done < 10:  # a call in flight on the stopped replica may fail; the next ones go to the other
            assert time.monotonic() < deadline, "calls did not move to the replica that is up"
            try:
                client.predict_batch(TASK, images)
                done += 1
            except MunetError:
                done = 0
        assert _answered(first) >= before + 10
