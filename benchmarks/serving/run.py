"""The serving benchmark (issue 5): munet-serve against per-task models, on one machine and one workload.

Every system runs in its own process behind the same Predict RPC, and one load generator drives each in turn:
- munet-serve: the real server (`python -m munet_serve.server`), its paths published by a `Fleet`;
- munet-serve unfused: the same server and paths with `--no-fuse` (one session per component, segments.py), in the
  closed-loop comparison only, to show what fusing the runs of components every path shares gives;
- baseline A: one whole-model ONNX Runtime session per task, batched within a task (`per_task.py --kind onnx`);
- baseline B: one PyTorch eager model per task, batched the same way (`per_task.py --kind torch`).

Measured: closed-loop throughput and latency with N tasks under Zipf traffic (and, in the `clients` profile, the
same traffic from fewer and more clients, for munet-serve and baseline A); the same traffic sent to a single task
(munet-serve and baseline A: at equal batches, what a path cut into sessions costs against one whole graph);
open-loop latency at one rate for every system (a fraction of baseline A's closed-loop throughput); resident memory
with 1, 4, 16 and 64 tasks for munet-serve and baseline A, and then their closed-loop throughput with all 64 tasks;
and a hot swap every second under load, in rounds interleaved with runs without swaps, on the profile's root and
again on the small test root. Ratios are taken to baseline A within the run. Each closed-loop run also records the
mean images per session run, by the kind of its first component, from each server's munet_batch_images metric, and
the server's CPU time per request; and one task's whole path is timed at every batch size, which bounds what
batching can gain on this machine (headroom.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from munet_serve.clients import Client
from munet_serve.clients.types import ComponentArtifact
from munet_serve.evolver.config import RootConfig, root_preset

from .fleet import Fleet, FleetSpec
from .headroom import BatchCost, measure_apart
from .load import LoadResult, closed_loop, open_loop

logger = logging.getLogger(__name__)

__all__ = ["PROFILES", "Profile", "clients_workload", "many_tasks_workload", "run"]

HOT_SWAP, STEADY, SMALL_ROOT = "hot swap", "steady between swaps", "small root, "  # workload names
UNFUSED = "munet_unfused"  # the system name of munet-serve with one session per component


@dataclass(frozen=True)
class Profile:
    """One benchmark setting.

    Attributes:
        root: the architecture every path is cut from (weights do not matter for serving speed).
        tasks: tasks under Zipf traffic in the throughput and hot-swap runs.
        memory_counts: task counts at which resident memory is measured.
        concurrency: closed-loop clients.
        duration_s: seconds of each measured run (warm-ups are shorter).
        zipf_exponent: traffic of rank k ~ 1 / k^a.
        open_rate_fraction: open-loop rate as a fraction of baseline A's closed-loop throughput.
        swap_duration_s: seconds of load during which a version is published every `swap_interval_s` (in `rounds`
            parts, each after a run of the same length without swaps).
        systems: which of "munet", "onnx" (baseline A), "torch" (baseline B) and "munet_unfused" (munet-serve with
            one session per component; closed loop only) run.
        max_batch, batch_delay_ms, threads, batch_workers: the batching and threading settings every system gets.
            On 2 cores the best for baseline A (measured: about 1.3x its throughput with one 2-thread worker) and for
            munet-serve is two batch workers with one intra-op thread each: ONNX Runtime's pool threads spin while
            they wait, which on 2 cores takes the CPU from the gRPC threads.
        request_images: images per request of the closed-loop runs; the first is the main workload (and the
            open loop's), the others add a closed-loop run of munet-serve and baseline A each.
        concurrencies: more closed-loop client counts at which munet-serve and baseline A run the N-task traffic
            (interleaved with the main comparison): how the ratio to A moves with the load on each task.
        headroom_s: seconds of timing one task's whole path at each batch size (headroom.py).
        small_swap_root: if set, the hot swap is measured again on a fleet cut from this (small) root, in a server
            of its own under the same load: the issue's publish-to-first-answer target is for the small test model.
        rounds: the closed-loop runs are split into this many rounds, interleaved between the systems (the
            machine's speed drifts; each system's throughput is the median over its rounds).
    """

    name: str
    root: RootConfig
    tasks: int = 16
    memory_counts: tuple[int, ...] = (1, 4, 16, 64)
    concurrency: int = 32
    duration_s: float = 15.0
    warmup_s: float = 3.0
    zipf_exponent: float = 1.0
    open_rate_fraction: float = 0.7
    swap_duration_s: float = 15.0
    swap_interval_s: float = 1.0
    systems: tuple[str, ...] = ("munet", "onnx", "torch", "munet_unfused")
    rounds: int = 3
    request_images: tuple[int, ...] = (1, 8)
    concurrencies: tuple[int, ...] = ()
    device: str = "cpu"
    max_batch: int = 64
    batch_delay_ms: float = 0.0
    threads: int = 1
    batch_workers: int = 2
    headroom_s: float = 0.8
    small_swap_root: RootConfig | None = None

    @property
    def most_clients(self) -> int:
        """The most closed-loop clients of any run (the servers get twice as many gRPC worker threads)."""
        return max((self.concurrency, *self.concurrencies))


# The default root's architecture (DINOv2 ViT-S/14 at 28 px, evolver preset dinov2-s14-imgfocus), randomly
# initialised so the benchmark needs no weight package; ViT-B/16 at 224 px for a GPU.
_S14 = RootConfig(model="vit_small_patch14_dinov2", image_size=28, random_init=True)
_B16 = RootConfig(model="vit_base_patch16_224", image_size=224, random_init=True)

_TINY = root_preset("tiny-test")

PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", _S14, small_swap_root=_TINY),
    "full": Profile("full", _S14, duration_s=60.0, swap_duration_s=60.0, concurrency=64, small_swap_root=_TINY),
    "gpu": Profile("gpu", _B16, device="cuda", concurrency=64, memory_counts=(1, 4, 16)),  # fits a 10-minute call
    # the quick profile's main comparison at 4 to 64 clients, without baseline B, the unfused server, 8-image
    # requests and the small root's hot swap (about 6.5 minutes)
    "clients": Profile("clients", _S14, concurrencies=(4, 8, 16, 64), systems=("munet", "onnx"),
                       request_images=(1,), memory_counts=(1, 16)),
    "mini": Profile("mini", _TINY, tasks=3, memory_counts=(1, 2, 4), concurrency=4, concurrencies=(2,),
                    duration_s=1.5, warmup_s=0.5, swap_duration_s=2.5, swap_interval_s=0.5, rounds=2, headroom_s=0.1),
}


# --- processes -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class System:
    name: str
    process: subprocess.Popen
    target: str
    log: Path
    metrics_url: str

    def batch_counts(self) -> dict[str, tuple[float, float]]:
        """Component runs and the images they took so far, by component kind (the munet_batch_images histogram)."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            text = response.read().decode()
        counts: dict[str, list[float]] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "munet_batch_images":
                continue
            for sample in family.samples:
                kind = sample.labels.get("kind", "")
                if sample.name.endswith("_count"):
                    counts.setdefault(kind, [0.0, 0.0])[0] = sample.value
                elif sample.name.endswith("_sum"):
                    counts.setdefault(kind, [0.0, 0.0])[1] = sample.value
        return {kind: (runs, images) for kind, (runs, images) in counts.items()}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @property
    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system, all threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_process(name: str, args: list[str], workdir: Path, ready_s: float = 600.0) -> System:
    """Starts a server process (python args --port P --metrics-port M), its output in workdir/NAME.log, and waits
    until its gRPC port accepts connections."""
    port, metrics_port = free_port(), free_port()
    log = workdir / f"{name}.log"
    process = subprocess.Popen([sys.executable, *args, "--port", str(port), "--metrics-port", str(metrics_port)],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with grpc.insecure_channel(target) as channel:
                grpc.channel_ready_future(channel).result(timeout=1)
            return System(name, process, target, log, f"http://127.0.0.1:{metrics_port}/metrics")
        except grpc.FutureTimeoutError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"{name} did not start within {ready_s:.0f} s") from None


def start_munet(workdir: Path, profile: Profile, name: str = "munet", fuse: bool = True) -> System:
    return start_process(name, ["-m", "munet_serve.server", "--data-dir", str(workdir / f"{name}-data"),
                                "--device", profile.device, "--max-workers", str(max(32, 2 * profile.most_clients)),
                                "--max-batch", str(profile.max_batch), "--batch-delay-ms", str(profile.batch_delay_ms),
                                "--threads", str(profile.threads), "--batch-workers", str(profile.batch_workers),
                                "--log-level", "WARNING", *([] if fuse else ["--no-fuse"])], workdir)


def start_per_task(kind: str, source: str, tasks: list[str], workdir: Path, profile: Profile) -> System:
    return start_process(f"{kind}-{len(tasks)}", ["-m", "benchmarks.serving.per_task", "--kind", kind, "--source",
                                                  source, "--tasks", ",".join(tasks), "--max-batch",
                                                  str(profile.max_batch), "--batch-delay-ms",
                                                  str(profile.batch_delay_ms), "--device", profile.device,
                                                  "--max-workers", str(max(32, 2 * profile.most_clients)),
                                                  "--threads", str(profile.threads), "--batch-workers",
                                                  str(profile.batch_workers)], workdir)


@contextlib.contextmanager
def running(system: System) -> Iterator[System]:
    try:
        yield system
    finally:
        system.stop()


# --- measurements --------------------------------------------------------------------------------------------------


class Workload(NamedTuple):
    """One closed-loop run's setting: the system, the workload's name in the report, the tasks loaded, images per
    request and closed-loop clients (None: the profile's)."""

    system: str
    name: str
    tasks: list[str]
    images: int = 1
    clients: int | None = None


@dataclass
class Run:
    """One load run's figures (latencies in ms, throughput in answered requests per second)."""

    system: str
    workload: str
    tasks: int
    requests: int
    failed: int
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: list[str] = field(default_factory=list)
    batches: dict[str, tuple[float, float]] = field(default_factory=dict)  # kind -> (component runs, images)
    server_cpu_ms: float | None = None  # the server process's CPU time per answered request

    def images_per_run(self, kind: str) -> float | None:
        runs, images = self.batches.get(kind, (0.0, 0.0))
        return images / runs if runs else None

    @classmethod
    def of(cls, system: str, workload: str, tasks: int, result: LoadResult) -> Run:
        s = result.summary()
        return cls(system, workload, tasks, int(s["requests"]), int(s["failed"]), float(s["throughput_rps"]),
                   float(s["p50_ms"]), float(s["p99_ms"]), float(s["p99.9_ms"]), result.errors[:5])


@dataclass
class Report:
    profile: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    memory: dict[str, dict[int, int]] = field(default_factory=dict)  # system -> tasks -> RSS bytes
    own_bytes: dict[int, int] = field(default_factory=dict)  # task count -> bytes of components tasks own, summed
    whole_model_bytes: int = 0  # one task's whole path as one graph
    batch_cost: BatchCost | None = None  # that graph's run time at each batch size (headroom.py)
    swap: dict[str, Any] = field(default_factory=dict)
    small_swap: dict[str, Any] = field(default_factory=dict)  # the hot swap on the small root's fleet, if measured
    seconds: float = 0.0

    def run(self, system: str, workload: str) -> Run | None:
        return next((r for r in self.runs if r.system == system and r.workload == workload), None)


class Images:
    """A pool of seeded random uint8 images per task, at the paths' input size."""

    def __init__(self, size: int, per_task: int = 64) -> None:
        self.size, self.per_task = size, per_task
        self._pools: dict[str, np.ndarray] = {}

    def __call__(self, task: str) -> np.ndarray:
        if task not in self._pools:
            rng = np.random.default_rng(zlib.crc32(task.encode()))
            self._pools[task] = rng.integers(0, 256, (self.per_task, self.size, self.size, 3), dtype=np.uint8)
        return self._pools[task]


def run(profile: Profile, workdir: Path | None = None) -> Report:
    """Runs the whole benchmark; returns its report (the caller writes it)."""
    started = time.perf_counter()
    report = Report(profile={**asdict(profile), "root": asdict(profile.root)})
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="munet-serving-")))
        workdir.mkdir(parents=True, exist_ok=True)
        logger.info("building the fleet (%s)", profile.root.model)
        fleet = Fleet(FleetSpec(profile.root))
        names = [f"task-{i:02d}" for i in range(max(*profile.memory_counts, profile.tasks))]
        images = Images(fleet.image_size)
        tasks = names[:profile.tasks]
        munet, client = stack.enter_context(_fleet_server(workdir, profile, fleet, tasks))
        logger.info("munet-serve: %d tasks published", len(tasks))
        _load(munet, tasks, images, profile, profile.warmup_s, zipf=0.0)  # every task's sessions warm
        _compare(report, profile, fleet, munet, tasks, images, workdir)
        whole = _whole_graph_bytes(client, names[0])
        report.whole_model_bytes = len(whole)
        _memory(report, profile, fleet, names, images, workdir)
        logger.info("timing one task's whole path at each batch size")
        report.batch_cost = measure_apart(whole, (3, fleet.image_size, fleet.image_size), profile.threads,
                                          profile.headroom_s, profile.device)
        if profile.small_swap_root is not None:
            report.small_swap = _small_swap(report, profile, profile.small_swap_root, names[:profile.tasks], workdir)
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def _fleet_server(workdir: Path, profile: Profile, fleet: Fleet, tasks: list[str], name: str = "munet",
                  fuse: bool = True) -> Iterator[tuple[System, Client]]:
    """A munet-serve server of its own with the fleet's root uploaded and `tasks` published, and a client of it."""
    with running(start_munet(workdir, profile, name, fuse)) as munet, Client(munet.target, timeout=600) as client:
        fleet.upload_root(client)
        for index, task in enumerate(tasks):
            fleet.add_task(client, task, index)
        yield munet, client


def _memory(report: Report, profile: Profile, fleet: Fleet, names: list[str], images: Images, workdir: Path) -> None:
    """Resident memory at each task count: munet-serve in a server of its own that gets the tasks one after another
    and nothing but a warm-up load after each count (a heavier run or a hot swap in between moves its allocators'
    high-water marks, which read as memory per task), and baseline A in a process per count, warmed the same way.
    With the most tasks, once both servers' memory is read, the two also run closed-loop Zipf traffic over all of
    them (if that is more tasks than the main comparison has), interleaved as in the main comparison: how the ratio
    to A moves as tasks are added."""
    root_ids = {a.id for a in fleet.root_artifacts}
    own_bytes, published = 0, 0
    with _fleet_server(workdir, profile, fleet, [], "munet-memory") as (munet, client):
        for count in sorted(profile.memory_counts):
            for index in range(published, count):
                version = fleet.add_task(client, names[index], index)
                owned = [c.id for c in version.components if c.id not in root_ids]
                own_bytes += sum(i.onnx_bytes for i in client.list_components(owned))
            published = count
            logger.info("munet-serve: memory with %d tasks", count)
            _load(munet, names[:count], images, profile, profile.warmup_s, zipf=0.0)  # every task's sessions warm
            report.memory.setdefault("munet", {})[count] = munet.rss
            report.own_bytes[count] = own_bytes
        if "onnx" in profile.systems:
            for count in profile.memory_counts:
                logger.info("baseline onnx: memory with %d tasks", count)
                with running(start_per_task("onnx", munet.target, names[:count], workdir, profile)) as a:
                    _load(a, names[:count], images, profile, profile.warmup_s, zipf=0.0)
                    report.memory.setdefault("onnx", {})[count] = a.rss
                    if count == published > profile.tasks:  # the most tasks, more than the main comparison's:
                        # both servers hold them all, memory is read
                        logger.info("measuring munet and onnx with %d tasks", count)
                        workload = many_tasks_workload(count)
                        _interleaved(report, profile, {"munet": munet, "onnx": a},
                                     [Workload(name, workload, names[:count]) for name in ("munet", "onnx")], images)


def many_tasks_workload(count: int) -> str:
    """The name of the closed-loop workload run with every task of the memory measurement."""
    return f"closed loop, {count} tasks"


def clients_workload(clients: int) -> str:
    """The name of the closed-loop workload run with the N tasks and `clients` clients (Profile.concurrencies)."""
    return f"closed loop, {clients} clients"


def _whole_graph_bytes(client: Client, task: str) -> bytes:
    from .models import whole_path_graph

    return whole_path_graph(client, task).SerializeToString()


def _load(system: System, tasks: list[str], images: Images, profile: Profile, duration: float | None = None,
          zipf: float | None = None, clients: int | None = None, **options: Any) -> LoadResult:
    return closed_loop(system.target, tasks, images, concurrency=clients or profile.concurrency,
                       duration_s=duration or profile.duration_s,
                       zipf_exponent=profile.zipf_exponent if zipf is None else zipf, **options)


def _compare(report: Report, profile: Profile, fleet: Fleet, munet: System, tasks: list[str], images: Images,
             workdir: Path) -> None:
    """The N-task runs of every system side by side: all servers up at once, closed-loop runs interleaved in
    `rounds` rounds (median throughput, pooled latencies), then open loop at one rate; then the hot swap."""
    n = len(tasks)
    with contextlib.ExitStack() as stack:
        systems = {"munet": munet}
        for kind in ("onnx", "torch"):
            if kind in profile.systems:
                systems[kind] = stack.enter_context(running(start_per_task(kind, munet.target, tasks, workdir,
                                                                           profile)))
        if UNFUSED in profile.systems:
            systems[UNFUSED], _ = stack.enter_context(_fleet_server(workdir, profile, fleet, tasks, UNFUSED, False))
        logger.info("measuring %s with %d tasks", ", ".join(systems), n)
        pair = [name for name in ("munet", "onnx") if name in systems]
        workloads = [Workload(name, "closed loop", tasks) for name in systems]
        workloads += [Workload(name, "single task", tasks[:1]) for name in pair]
        for k in profile.request_images[1:]:
            workloads += [Workload(name, f"closed loop, {k} images/request", tasks, k) for name in pair]
        for c in profile.concurrencies:
            workloads += [Workload(name, clients_workload(c), tasks, clients=c) for name in pair]
        _interleaved(report, profile, systems, workloads, images)
        if "onnx" in systems:
            closed_a = report.run("onnx", "closed loop")
            rate = profile.open_rate_fraction * closed_a.throughput_rps if closed_a else 0.0
            for name, system in systems.items():
                if name == UNFUSED:
                    continue
                opened = open_loop(system.target, tasks, images, rate=rate, duration_s=profile.duration_s,
                                   zipf_exponent=profile.zipf_exponent)
                report.runs.append(Run.of(name, f"open loop {rate:.0f}/s", n, opened))
    report.swap = _hot_swap(report, profile, fleet, munet, tasks, images)


def _interleaved(report: Report, profile: Profile, systems: dict[str, System], workloads: list[Workload],
                 images: Images) -> None:
    """Closed-loop runs of `workloads`, each warmed up, then in `profile.rounds` rounds interleaved between them
    (the machine's speed drifts); one Run each, with the median round's throughput, every latency, the images per
    session run and the server's CPU time per answered request."""
    for name, _, load_tasks, k, clients in workloads:
        _load(systems[name], load_tasks, images, profile, profile.warmup_s, batch=k, clients=clients)
    rounds: dict[tuple[str, str], list[LoadResult]] = {(w.system, w.name): [] for w in workloads}
    batches: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    cpu: dict[tuple[str, str], float] = {}
    for _ in range(profile.rounds):
        for name, workload, load_tasks, k, clients in workloads:
            before, cpu_before = systems[name].batch_counts(), systems[name].cpu_seconds()
            result = _load(systems[name], load_tasks, images, profile, profile.duration_s / profile.rounds,
                           batch=k, clients=clients)
            rounds[(name, workload)].append(result)
            cpu[(name, workload)] = cpu.get((name, workload), 0.0) + systems[name].cpu_seconds() - cpu_before
            total = batches.setdefault((name, workload), {})
            for kind, (runs, took) in systems[name].batch_counts().items():
                runs0, took0 = before.get(kind, (0.0, 0.0))
                sum_runs, sum_took = total.get(kind, (0.0, 0.0))
                total[kind] = (sum_runs + runs - runs0, sum_took + took - took0)
    loaded = {(w.system, w.name): len(w.tasks) for w in workloads}
    for (name, workload), results in rounds.items():
        run = Run.of(name, workload, loaded[(name, workload)], _merged(results))
        run.batches = batches[(name, workload)]
        answered = sum(len(r.latencies_ms) for r in results)
        run.server_cpu_ms = cpu[(name, workload)] * 1000 / answered if answered else None
        report.runs.append(run)


def _merged(results: list[LoadResult]) -> LoadResult:
    """Rounds of one workload as one result: the median round's throughput, every latency, every failure."""
    median = float(np.median([r.throughput for r in results]))
    merged = LoadResult(seconds=0.0, latencies_ms=[x for r in results for x in r.latencies_ms],
                        failed=sum(r.failed for r in results))
    for r in results:
        merged.per_task.update(r.per_task)
        merged.errors.extend(r.errors)
    merged.seconds = len(merged.latencies_ms) / median if median else 0.0  # so that .throughput is the median
    return merged


def _small_swap(report: Report, profile: Profile, root: RootConfig, tasks: list[str], workdir: Path
                ) -> dict[str, Any]:
    """The hot swap again with every task's path cut from a small root, in a munet-serve server of its own."""
    logger.info("hot swap on the small root %s", root.model)
    fleet = Fleet(FleetSpec(root))
    images = Images(fleet.image_size)
    with _fleet_server(workdir, profile, fleet, tasks, "munet-small-root") as (munet, _):
        _load(munet, tasks, images, profile, profile.warmup_s)
        return _hot_swap(report, profile, fleet, munet, tasks, images, SMALL_ROOT)


def _hot_swap(report: Report, profile: Profile, fleet: Fleet, munet: System, tasks: list[str], images: Images,
              prefix: str = "") -> dict[str, Any]:
    """Closed-loop runs during which the most popular task gets a new version every swap interval, interleaved in
    `rounds` rounds with runs of the same length without swaps (the steady state their p99 is compared with: this
    machine's speed drifts too much for a steady run taken minutes earlier). The two Runs are reported as
    `{prefix}hot swap every ...` and `{prefix}steady between swaps`."""
    task = tasks[0]
    segment = profile.swap_duration_s / profile.rounds
    per_round = max(1, int(segment / profile.swap_interval_s) - 1)
    with Client(munet.target, timeout=120) as client:
        heads = [fleet.new_head(task, k) for k in range(per_round * profile.rounds)]
        first_answer: dict[int, float] = {}
        lock = threading.Lock()

        def on_answer(t: str, version: int, at: float) -> None:
            if t == task:
                with lock:
                    first_answer.setdefault(version, at)

        published: list[tuple[int, float, float]] = []  # (version, publish started, publish returned)

        def publisher(batch: list[ComponentArtifact]) -> None:
            began = time.perf_counter()
            for k, head in enumerate(batch, 1):
                time.sleep(max(0.0, began + k * profile.swap_interval_s - time.perf_counter()))
                t0 = time.perf_counter()
                version = fleet.publish_head(client, task, head)
                published.append((version.version, t0, time.perf_counter()))

        steady, swapping = [], []
        for r in range(profile.rounds):
            steady.append(_load(munet, tasks, images, profile, segment))
            thread = threading.Thread(target=publisher, args=(heads[r * per_round:(r + 1) * per_round],))
            thread.start()
            swapping.append(_load(munet, tasks, images, profile, segment, on_answer=on_answer))
            thread.join()
    steady_run = Run.of("munet", f"{prefix}{STEADY}", len(tasks), _merged(steady))
    swap_run = Run.of("munet", f"{prefix}{HOT_SWAP} every {profile.swap_interval_s:g} s", len(tasks),
                      _merged(swapping))
    report.runs += [steady_run, swap_run]
    to_first = [(first_answer[v] - t0) * 1000 for v, t0, _ in published if v in first_answer]
    publish_ms = [(t1 - t0) * 1000 for _, t0, t1 in published]
    return {
        "root": fleet.spec.root.model,
        "task": task,
        "published": len(published),
        "answered_new_version": len(to_first),
        "failed": steady_run.failed + swap_run.failed,
        "p99_steady_ms": steady_run.p99_ms,
        "p99_swapping_ms": swap_run.p99_ms,
        "publish_call_ms_median": float(np.median(publish_ms)) if publish_ms else None,
        "publish_to_first_answer_ms_median": float(np.median(to_first)) if to_first else None,
        "publish_to_first_answer_ms_max": float(np.max(to_first)) if to_first else None,
    }

