"""The soak itself: one munet-serve server process on its own data directory, then, on one clock, for the whole run:

- `clients` closed-loop predict threads (benchmarks.serving.load.closed_loop), one image per request, Zipf traffic
  over every serving task;
- a publish every `publish_interval_s` (publisher.py), the publishing tasks in turn;
- a task registration every `register_interval_s` (registrar.py), deleted again at the next one or not;
- the server's VmRSS and CPU time read every `sample_interval_s` (memory.py).

Setup (the fleet or the copy of a data directory, the server's start, the head pool) and a warm-up with uniform
traffic come before the clock. A request fails if its call raised, whichever of the three kinds it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.serving.load import closed_loop
from benchmarks.serving.models import current_version
from benchmarks.serving.run import Images, Profile, System, running, start_munet
from munet_serve.clients import Client
from munet_serve.clients.types import ComponentArtifact, PathVersion

from .config import SoakConfig
from .datadir import SOAK, prepare
from .heads import head_pool
from .memory import AnswerCounter, Sample, Sampler
from .publisher import Published, Publisher
from .registrar import Registrar
from .ticker import Ticker, call_stats

logger = logging.getLogger(__name__)

__all__ = ["SoakRun", "run"]

_PROBLEM = re.compile(r"\b(ERROR|CRITICAL|Traceback)\b")


@dataclass
class SoakRun:
    """What one soak measured (report.py turns it into the targets, the table and the JSON).

    `predicts` is the closed loop's summary (requests, failed, throughput_rps, p50_ms, p99_ms, p99.9_ms) with its
    first errors; `publishes` and `registrations` are call_stats of their tickers, with what each made;
    `samples` every memory sample, the first at the clock's start and the last after the load ended.
    """

    profile: dict[str, Any]
    config: dict[str, Any]
    source: str  # the data directory copied, or "fleet" when the profile's fleet was built
    tasks: list[str]
    publishing: list[str]
    setup_s: float = 0.0
    seconds: float = 0.0
    predicts: dict[str, Any] = field(default_factory=dict)
    publishes: dict[str, Any] = field(default_factory=dict)
    registrations: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    sampler_failures: int = 0
    server_problems: list[str] = field(default_factory=list)  # ERROR, CRITICAL and Traceback lines of its log
    load_average: dict[str, list[float]] = field(default_factory=dict)  # the machine's, at the clock's start and end
    published: list[Published] = field(default_factory=list)


def run(profile: Profile, config: SoakConfig, workdir: Path | None = None, source: Path | None = None) -> SoakRun:
    """Prepares the data directory (the profile's fleet, or a copy of `source`), starts the server, soaks it."""
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="munet-soak-")))
        workdir.mkdir(parents=True, exist_ok=True)
        prepare(workdir, profile, source)
        server = stack.enter_context(running(start_munet(workdir, profile, SOAK)))
        with Client(server.target, timeout=300) as client:
            tasks = sorted(t.name for t in client.list_tasks() if t.state == "serving")
            if not tasks:
                raise ValueError("the data directory has no serving task")
            root = client.get_root()
            if root is None:
                raise ValueError("the data directory has no root")
            publishing = tasks[:config.publish_tasks or None]
            logger.info("%d serving tasks; making %d heads for each of %d", len(tasks), config.heads_per_task,
                        len(publishing))
            pools = {t: head_pool(client, t, config.heads_per_task, config.seed + i) for i, t in enumerate(publishing)}
            current = {t: current_version(client, t) for t in publishing}
        images = Images(root.input.image_size)
        closed_loop(server.target, tasks, images, concurrency=config.clients, duration_s=config.warmup_s,
                    zipf_exponent=0.0)  # every task's sessions built and warm
        result = SoakRun(profile={**asdict(profile), "root": asdict(profile.root)}, config=asdict(config),
                         source=str(source) if source else "fleet", tasks=tasks, publishing=publishing,
                         setup_s=time.perf_counter() - began)
        logger.info("soaking for %.1f min", config.minutes)
        _soak(result, server, tasks, images, pools, current, config, root.input.image_size)
        server.stop()
        result.server_problems = [line for line in server.log.read_text(errors="replace").splitlines()
                                  if _PROBLEM.search(line)]
    return result


def _soak(result: SoakRun, server: System, tasks: list[str], images: Images, pools: dict[str, list[ComponentArtifact]],
          current: dict[str, PathVersion], config: SoakConfig, image_size: int) -> None:
    """The measured part: every load on one clock, then the checks that need the server still up."""
    answers = AnswerCounter()
    with Client(server.target, timeout=120) as publish_client, Client(server.target, timeout=120) as register_client:
        publisher = Publisher(publish_client, pools, current)
        registrar = Registrar(register_client, image_size, config.register_examples, config.delete_registered,
                              config.seed)
        start = time.perf_counter()
        deadline = start + config.duration_s
        sampler = Sampler(server, answers, start, time.perf_counter)
        sampler()
        result.load_average["start"] = list(os.getloadavg())
        tickers = [Ticker("publisher", config.publish_interval_s, publisher, start, deadline),
                   Ticker("registrar", config.register_interval_s, registrar, start, deadline),
                   Ticker("sampler", config.sample_interval_s, sampler, start, deadline)]
        for ticker in tickers:
            ticker.begin()
        load = closed_loop(server.target, tasks, images, concurrency=config.clients, duration_s=config.duration_s,
                           zipf_exponent=config.zipf_exponent, seed=config.seed, on_answer=answers)
        for ticker in tickers:
            ticker.join(timeout=600)
        sampler()  # the end of the run
        result.load_average["end"] = list(os.getloadavg())
        result.seconds = time.perf_counter() - start
        publish_ticker, register_ticker, sample_ticker = tickers
        finish = _finish(registrar)
        final = _current_versions(publish_client, publisher.tasks)
    result.predicts = {**load.summary(), "errors": load.errors[:5]}
    answered = {(t, v) for t, vs in answers.versions.items() for v in vs}
    result.published = publisher.published
    result.publishes = {
        **call_stats(publish_ticker.outcomes),
        "did_not_raise_version": sum(1 for p in publisher.published if p.version <= p.previous or not p.current),
        "answered_by_a_predict": sum(1 for p in publisher.published if (p.task, p.version) in answered),
        "final_versions_match": final == publisher.last_versions(),
    }
    registrations = call_stats(register_ticker.outcomes)
    if finish is not None:  # the last deletion, after the clock: a failed request like any other
        registrations["failed"] += 1
        registrations["errors"] = [*registrations["errors"], finish][:5]
    result.registrations = {**registrations, "registered": len(registrar.registered),
                            "deleted": len(registrar.deleted),
                            "left_registered": len(registrar.registered) - len(registrar.deleted)}
    result.samples = sampler.samples
    result.sampler_failures = sum(1 for o in sample_ticker.outcomes if o.error)


def _current_versions(client: Client, tasks: list[str]) -> dict[str, int] | None:
    """Each task's current version as the server has it now; None if it cannot say."""
    try:
        return {t: client.get_task(t).current_version for t in tasks}
    except Exception:
        logger.exception("the server could not list the publishing tasks' versions")
        return None


def _finish(registrar: Registrar) -> str | None:
    """Deletes the registrar's last task; its error, if the call raised."""
    try:
        registrar.finish()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None
