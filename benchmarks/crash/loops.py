"""The two crash loops: kill -9 of the server under load (requests and publishes in flight), and kill -9 of the
evolver in the middle of a publish. After every kill: a restart where needed, `munet-serve check` on the data dir,
and answers that are the same as before the kill or come from a newer committed version.

What "the same" means here: the first answer seen from each version is its reference, and every later answer from
that version, in any server life, must equal it bit for bit; a version's stored path must be the one its publish
sent; and the version a restarted server serves is never older than the last publish it acknowledged.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from benchmarks.serving.run import System, start_process
from munet_serve.clients import Client
from munet_serve.clients.errors import MunetError
from munet_serve.clients.types import ComponentArtifact, PathComponent, PathRef, PathVersion, PredictResult

CLI = str(Path(sys.executable).with_name("munet-serve"))
T = TypeVar("T")
Log = Callable[[str], None]

# The real evolver, its SDK's publish stream cut after `MUNET_DIE_AFTER` messages by a kill -9 of its own process.
EVOLVER_DIES_IN_PUBLISH = textwrap.dedent("""
    import os, signal, sys
    import munet_serve.clients.calls as sdk

    publish_requests = sdk.publish_requests
    after = int(os.environ["MUNET_DIE_AFTER"])

    def dies_midway(*args, **kwargs):
        for sent, request in enumerate(publish_requests(*args, **kwargs)):
            if sent == after:
                os.kill(os.getpid(), signal.SIGKILL)
            yield request
        os.kill(os.getpid(), signal.SIGKILL)  # the whole stream went out: die before it is closed

    sdk.publish_requests = dies_midway
    from munet_serve.evolver.__main__ import main
    sys.exit(main(sys.argv[1:]))
""")


def _logits(answer: PredictResult) -> np.ndarray:
    logits = [p.logits for p in answer.predictions]
    if any(row is None for row in logits):
        raise Mismatch("an answer came without the logits it was asked for")
    return np.stack([row for row in logits if row is not None])


class Mismatch(AssertionError):
    """An answer that is neither the one seen before from its version nor from a newer committed version."""


@dataclass
class Answers:
    """The reference answer of each version seen, and the newest version a publish was acknowledged for."""

    task: str
    images: np.ndarray
    references: dict[int, np.ndarray] = field(default_factory=dict)
    paths: dict[int, tuple[str, ...]] = field(default_factory=dict)  # version -> the component ids its publish sent
    acknowledged: int = 0
    checked: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def see(self, version: int, logits: np.ndarray, *, floor: int | None = None) -> None:
        """One answer: bit-identical to its version's reference, and (with `floor`) not older than it."""
        with self._lock:
            if floor is not None and version < floor:
                raise Mismatch(f"the server answers from version {version}, older than version {floor}, which a "
                               "publish had acknowledged")
            reference = self.references.setdefault(version, logits)
            if not np.array_equal(reference, logits):
                raise Mismatch(f"version {version} answered differently from its first answer")
            self.checked += 1

    def published(self, version: PathVersion) -> None:
        with self._lock:
            self.acknowledged = max(self.acknowledged, version.version)
            self.paths[version.version] = tuple(c.id for c in version.components)

    def check_server(self, client: Client) -> int:
        """After a restart: the current answer, and every stored version's path as its publish sent it."""
        answer = client.predict_batch(self.task, self.images, include_logits=True)
        self.see(answer.version, _logits(answer), floor=self.acknowledged)
        for stored in client.list_versions(self.task):
            sent = self.paths.get(stored.version)
            if sent is not None and sent != tuple(c.id for c in stored.components):
                raise Mismatch(f"version {stored.version} stores another path than its publish sent")
        return answer.version


@dataclass
class Kill:
    """One kill -9 and what followed it."""

    what: str  # "server" or "evolver"
    at_s: float  # seconds after the load started (server) or the evolver started
    in_flight: int  # requests (predicts and publishes) running when the process died
    failed_by_kill: int  # requests that failed because of it
    served_version: int  # the version answering after the restart
    check_ok: bool
    check_seconds: float
    restart_seconds: float


def run_check(data_dir: Path) -> tuple[bool, str]:
    """`munet-serve check` on the data dir, as a user runs it."""
    done = subprocess.run([CLI, "check", "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=600)
    return done.returncode == 0, done.stdout + done.stderr


def start_server(data_dir: Path, workdir: Path, name: str) -> System:
    return start_process(name, ["-m", "munet_serve.server", "--data-dir", str(data_dir), "--log-level", "WARNING"],
                         workdir)


@dataclass
class _Load:
    """Closed-loop predicts and back-to-back publishes against one server life, until it dies."""

    client: Client
    answers: Answers
    heads: list[ComponentArtifact]
    template: PathVersion
    clients: int
    rng: random.Random
    stop: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    failed: int = 0
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._predicts, daemon=True) for _ in range(self.clients)]
        threads.append(threading.Thread(target=self._publishes, daemon=True))
        for t in threads:
            t.start()
        return threads

    def _call(self, run: Callable[[], T]) -> T | None:
        with self._lock:
            self.in_flight += 1
        try:
            return run()
        except MunetError:  # the server died under it
            with self._lock:
                self.failed += 1
            self.stop.set()
            return None
        finally:
            with self._lock:
                self.in_flight -= 1

    def _predicts(self) -> None:
        try:
            while not self.stop.is_set():
                answer = self._call(lambda: self.client.predict_batch(self.answers.task, self.answers.images,
                                                                      include_logits=True))
                if answer is not None:
                    self.answers.see(answer.version, _logits(answer))
        except BaseException as e:  # noqa: BLE001 - a Mismatch, reported by the loop
            self.errors.append(e)

    def _publishes(self) -> None:
        body = list(self.template.components[:-1])
        while not self.stop.is_set():
            head = self.rng.choice(self.heads)
            version = self._call(functools.partial(
                self.client.publish_path, self.answers.task, [*body, PathComponent("head", head.id)],
                hparams=self.template.hparams, metrics=self.template.metrics, input=self.template.input,
                parent=PathRef(self.answers.task, 1), new_components=[head]))
            if version is not None:
                self.answers.published(version)


def server_kill_loop(data_dir: Path, workdir: Path, answers: Answers, heads: list[ComponentArtifact], *,
                     kills: int, clients: int = 4, seed: int = 0, log: Log = print) -> list[Kill]:
    """`kills` rounds of: start the server, check it answers as before, load it with predicts and publishes, kill -9
    it at a random moment, run munet-serve check. A last restart checks the answers after the last kill."""
    rng = random.Random(seed)
    records: list[Kill] = []
    template: PathVersion | None = None
    for round_ in range(kills + 1):
        started = time.monotonic()
        server = start_server(data_dir, workdir, f"server-{round_}")
        with Client(server.target, timeout=60) as client:
            client.wait_ready(timeout=120)
            restart_s = time.monotonic() - started
            served = answers.check_server(client)
            if records:
                records[-1].served_version, records[-1].restart_seconds = served, restart_s
            if round_ == kills:
                server.stop()
                break
            template = template or client.list_versions(answers.task)[0]
            load = _Load(client, answers, heads, template, clients, rng)
            threads = load.start()
            delay = rng.uniform(0.3, 1.5)
            time.sleep(delay)
            in_flight = load.in_flight
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            load.stop.set()
            for t in threads:
                t.join(timeout=120)
            if load.errors:
                raise load.errors[0]
        checked = time.monotonic()
        ok, output = run_check(data_dir)
        if not ok:
            raise AssertionError(f"munet-serve check failed after server kill {round_ + 1}:\n{output}")
        records.append(Kill("server", delay, in_flight, load.failed, 0, ok, time.monotonic() - checked, 0.0))
        log(f"server kill {round_ + 1}/{kills}: {in_flight} requests in flight, {load.failed} failed by the kill, "
            f"acknowledged version {answers.acknowledged}")
    return records


def evolver_kill_loop(target: str, data_dir: Path, cache: Path, answers: Answers, evolver_args: list[str], *,
                      kills: int, seed: int = 0, log: Log = print) -> list[Kill]:
    """`kills` rounds of: run the real evolver until it dies by kill -9 part-way through the stream of its publish
    (after a random number of messages), then munet-serve check and the answers. The server keeps running."""
    rng = random.Random(seed)
    records: list[Kill] = []
    with Client(target, timeout=60) as client:
        for round_ in range(kills):
            before = answers.check_server(client)
            env = {**os.environ, "MUNET_DIE_AFTER": str(rng.choice([1, 2, 3, 5, 8, 1000]))}
            started = time.monotonic()
            dying = subprocess.run([sys.executable, "-c", EVOLVER_DIES_IN_PUBLISH, "--server", target, "--cache-dir",
                                    str(cache), *evolver_args], capture_output=True, text=True, timeout=900, env=env)
            if dying.returncode != -signal.SIGKILL:
                raise AssertionError(f"the evolver did not die in its publish (exit {dying.returncode}):\n"
                                     f"{dying.stderr[-3000:]}")
            died_s = time.monotonic() - started
            checked = time.monotonic()
            ok, output = run_check(data_dir)
            if not ok:
                raise AssertionError(f"munet-serve check failed after evolver kill {round_ + 1}:\n{output}")
            check_s = time.monotonic() - checked
            served = answers.check_server(client)
            if served < before:
                raise Mismatch(f"after evolver kill {round_ + 1} the task went back from version {before} to {served}")
            records.append(Kill("evolver", died_s, 1, 1, served, ok, check_s, 0.0))
            log(f"evolver kill {round_ + 1}/{kills} after {env['MUNET_DIE_AFTER']} messages: serving version "
                f"{served} (was {before})")
    return records
