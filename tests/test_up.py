"""`munet-serve up`: server and evolver as two processes, the built-in demo, and Ctrl-C stopping both cleanly."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from munet_serve.clients import Client
from munet_serve.clients.errors import UnavailableError
from munet_serve.tokens import TokensFile

from tls_fixtures import Certificates

CLI = str(Path(sys.executable).with_name("munet-serve"))
TINY = ["--root-preset", "tiny-test", "--budget", "tiny", "--threads", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_up(data_dir: Path, *args: str, port: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, "up", "--data-dir", str(data_dir), "--port", str(port or free_port()), *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "COLUMNS": "200"},
    )


def read_until(proc: subprocess.Popen, marker: str) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"'{marker}' never printed; output was:\n{''.join(lines)}")


@pytest.mark.parametrize(
    "evolver_args",
    [
        # Slow: on a machine whose cache lacks the pretrained chars root, the README's demo first pretrains it
        # (about 5 minutes on 2 cores).
        pytest.param((), id="readme-default-root", marks=pytest.mark.slow),
        pytest.param(tuple(TINY), id="tiny-root"),
    ],
)
def test_demo_prints_a_prediction_and_ctrl_c_stops_both(tmp_path: Path, evolver_args: tuple[str, ...]) -> None:
    """The README's command (`munet-serve up --demo`; default demo root and budget, or the tiny root), stopped with
    SIGINT while the evolver keeps evolving."""
    proc = start_up(tmp_path / "data", "--demo", *evolver_args)
    try:
        lines = read_until(proc, "server and evolver running")
        proc.send_signal(signal.SIGINT)
        lines += proc.stdout.readlines()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    output = "".join(lines)
    assert "registered demo task 'digits'" in output
    assert "digits version 1: validation accuracy" in output
    assert output.count("prediction: image") == 5 and "from version 1" in output
    assert "stopped (evolver exit 0, server exit 0)" in output


def test_interrupted_while_seeding_then_resumed(tmp_path: Path) -> None:
    port = free_port()
    proc = start_up(tmp_path / "data", "--demo", "--budget", "small", "--root-preset", "tiny-test", port=port)
    try:
        read_until(proc, "registered demo task")
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while client.get_task("digits").evolution.phase != "seeding":  # root uploaded, a candidate training
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            rest = "".join(proc.stdout.readlines())
            assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert "stopped (evolver exit 0, server exit 0)" in rest
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite3") as db:  # stopped before publishing anything
        assert db.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0

    again = start_up(tmp_path / "data", "--demo", "--exit-after-demo", *TINY)
    try:
        output = "".join(again.stdout.readlines())
        assert again.wait(timeout=300) == 0, output
    finally:
        again.kill()
    assert "demo task 'digits' already registered" in output
    assert "prediction: image 0" in output and "stopped (evolver exit 0, server exit 0)" in output


def test_up_serves_with_tls_and_tokens_and_gives_its_evolver_both(tmp_path: Path, certificates: Certificates) -> None:
    """`up --tls-cert --tls-key --tls-ca --tokens-file`: the server gets TLS and the tokens; up's own calls and its
    evolver's connect with the CA and tokens of their own, and the demo runs to its prediction."""
    port = free_port()
    tokens = tmp_path / "tokens.json"
    admin = TokensFile(tokens).create("admin", ("admin",))
    proc = start_up(tmp_path / "data", "--demo", "--tls-cert", str(certificates.server.cert),
                    "--tls-key", str(certificates.server.key), "--tls-ca", str(certificates.ca), "--tokens-file",
                    str(tokens), *TINY, port=port)
    try:
        lines = read_until(proc, "server and evolver running")
        with Client(f"127.0.0.1:{port}", timeout=30, tls_ca=certificates.ca, token=admin) as client:
            assert client.get_task("digits").current_version >= 1
        with Client(f"127.0.0.1:{port}", timeout=5, token=admin) as plaintext, pytest.raises(UnavailableError):
            plaintext.list_tasks()
        proc.send_signal(signal.SIGINT)
        lines += proc.stdout.readlines()
        assert proc.wait(timeout=120) == 0, "".join(lines)
    finally:
        proc.kill()
    output = "".join(lines)
    assert "prediction: image 0" in output and "stopped (evolver exit 0, server exit 0)" in output
    assert {e.name for e in TokensFile(tokens).read()} == {"admin", "up", "up-evolver"}
