"""ONNX Runtime for the server: the process-wide environment and the pool of segment sessions.

Measured on this project's 2-core machines (shared/reference/offline-data-and-cpu.md §3.3-3.4): per-session spinning
thread pools made a chain of per-component sessions up to 10x slower than one whole-model session, and per-session
memory arenas held 10 GiB for 56 block sessions. So every session here uses one global thread pool and one shared
arena; with both, a chain costs little more than the whole model, and segments.py fuses the runs of components
that every path goes through together into one session.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from munet_serve.artifacts import ComponentKind
from munet_serve.errors import InvalidArgumentError

from .segments import fuse

logger = logging.getLogger(__name__)

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
MIB = 1024 * 1024


def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 when there is no driver or no GPU (asks libcuda, not torch)."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if libcuda.cuInit(0) != 0 or libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def release_free_heap() -> None:
    """Hands freed heap memory back to the OS (glibc's malloc_trim; a no-op elsewhere).

    Creating a session parses the component's whole ONNX file and frees the parse again; without a trim those pages
    stay resident, and a server that loads many components looks as if each took a third more memory than it holds.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


HEAP_MMAP_THRESHOLD = 256 * 1024  # bytes: larger allocations get pages of their own (tune_heap)
HEAP_ARENAS = 2
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # glibc's mallopt parameters


def tune_heap(mmap_threshold: int = HEAP_MMAP_THRESHOLD, arenas: int = HEAP_ARENAS) -> bool:
    """Sets glibc's heap for a process that loads and unloads many graphs; call it at the entry point, before the
    serving threads start. Each allocation of `mmap_threshold` bytes or more (a weight matrix) gets pages of its own
    and returns them when freed, instead of glibc raising the threshold as it frees them and packing later weights
    into its arenas, where freed pages stay resident between live ones; and the gRPC threads share `arenas` arenas
    instead of up to eight per core. Measured on the serving benchmark's memory sequence (16 -> 64 tasks): memory
    added per task 1.10-1.36x its own components' bytes from run to run without this, 1.08-1.10x with it, and 445
    instead of 496-542 MiB with 64 tasks. Returns whether it took effect (False where glibc is absent)."""
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    threshold_set = _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    arenas_set = _LIBC.mallopt(_M_ARENA_MAX, arenas)
    return bool(threshold_set and arenas_set)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


@dataclass(frozen=True)
class OrtEnvironment:
    """The providers in use and the session options every component session gets."""

    providers: tuple[str, ...]
    provider_options: tuple[dict[str, str], ...]
    shared_pool: bool
    shared_arena: bool

    def session_options(self) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if self.shared_pool:
            so.use_per_session_threads = False
        else:
            so.intra_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.shared_arena:
            so.add_session_config_entry("session.use_env_allocators", "1")
        return so

    def create_session(self, onnx: Path | bytes) -> ort.InferenceSession:
        """A session of the graph in a file or in memory. A graph in memory larger than 1 MiB is written to a
        temporary file first: a session made from bytes keeps the parsed graph's weights beside its own copies
        (measured: twice the resident memory of the same graph loaded from a file)."""
        if isinstance(onnx, bytes) and len(onnx) > MIB:
            with tempfile.NamedTemporaryFile(prefix="munet-graph-", suffix=".onnx") as file:
                file.write(onnx)
                file.flush()
                return self.create_session(Path(file.name))
        return ort.InferenceSession(
            onnx if isinstance(onnx, bytes) else str(onnx),
            sess_options=self.session_options(),
            providers=list(self.providers),
            provider_options=list(self.provider_options),
        )


_environment: OrtEnvironment | None = None
_environment_lock = threading.Lock()


def ort_environment(device: str = "auto", intra_op_threads: int = 0) -> OrtEnvironment:
    """Sets up ONNX Runtime for this process once (global thread pool, shared CPU arena, providers)."""
    global _environment
    with _environment_lock:
        if _environment is not None:
            return _environment
        use_cuda = _want_cuda(device)
        threads = intra_op_threads or os.cpu_count() or 1
        try:
            ort.set_global_thread_pool_sizes(threads, 1)
            shared_pool = True
        except Exception as e:  # noqa: BLE001 - already created by someone else in this process
            logger.warning("global ONNX Runtime thread pool unavailable (%s); sessions will not spin", e)
            shared_pool = False
        try:
            memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))
            shared_arena = True
        except Exception as e:  # noqa: BLE001
            logger.warning("shared ONNX Runtime arena unavailable (%s); sessions keep their own", e)
            shared_arena = False
        if use_cuda:
            providers: tuple[str, ...] = (CUDA, CPU)
            options: tuple[dict[str, str], ...] = (
                {"device_id": "0", "arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "HEURISTIC"},
                {},
            )
        else:
            providers, options = (CPU,), ({},)
        _environment = OrtEnvironment(providers, options, shared_pool, shared_arena)
        logger.info("ONNX Runtime %s: providers %s, %d intra-op threads, shared pool %s, shared arena %s",
                    ort.__version__, ", ".join(providers), threads, shared_pool, shared_arena)
        return _environment


def _want_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    gpus = cuda_device_count()
    available = CUDA in ort.get_available_providers()
    if device == "cuda" and not (gpus and available):
        raise RuntimeError(
            f"device 'cuda' asked for, but {'no GPU was found' if not gpus else 'ONNX Runtime has no CUDA provider'}"
        )
    if gpus and available:
        try:
            ort.preload_dlls()  # CUDA/cuDNN libraries from the nvidia-* wheels, if installed
        except Exception as e:  # noqa: BLE001
            logger.warning("onnxruntime.preload_dlls failed: %s", e)
        return True
    return False


@dataclass
class LoadedSegment:
    """One ONNX Runtime session for one component, or for a segment of components fused into one graph
    (segments.py), shared by every route that runs through it."""

    components: tuple[tuple[str, ComponentKind], ...]  # (id, kind) of each component it runs, in order
    session: ort.InferenceSession
    refs: int = 0
    id: str = field(init=False)  # the component's id, or "<first id>+<n>:<digest of all>" for a fused segment
    input_name: str = field(init=False)
    output_name: str = field(init=False)  # the last output (a fused graph also outputs the values at its joins)

    def __post_init__(self) -> None:
        self.id = segment_id(self.component_ids)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[-1].name

    @property
    def component_ids(self) -> tuple[str, ...]:
        return tuple(cid for cid, _ in self.components)

    @property
    def kind(self) -> ComponentKind:
        """The first component's kind (metrics count a fused segment under it)."""
        return self.components[0][1]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


def segment_id(component_ids: Sequence[str]) -> str:
    if len(component_ids) == 1:
        return component_ids[0]
    digest = hashlib.sha256("\n".join(component_ids).encode()).hexdigest()[:16]
    return f"{component_ids[0][:12]}+{len(component_ids) - 1}:{digest}"


Segment = Sequence[tuple[str, ComponentKind]]  # the (id, kind) of a run of components, fused into one session


class SessionPool:
    """segment id -> session, loaded once, reference-counted by live routes, unloaded at zero.

    A segment of several components gets one session of their fused graph; one that cannot be fused (or whose fused
    graph ONNX Runtime rejects) is remembered and comes back as one session per component.
    """

    def __init__(self, env: OrtEnvironment, onnx_path: Callable[[str], Path]):
        self._env = env
        self._onnx_path = onnx_path
        self._loaded: dict[str, LoadedSegment] = {}
        self._unfusable: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def acquire(self, segments: Sequence[Segment]) -> list[LoadedSegment]:
        """Returns the sessions of the segments in order, loading the missing ones; each is counted once more in
        use. Raises InvalidArgumentError if a component cannot be loaded."""
        acquired: list[LoadedSegment] = []
        try:
            for segment in segments:
                ids = tuple(cid for cid, _ in segment)
                pieces = [[c] for c in segment] if ids in self._unfusable else [segment]
                while pieces:
                    piece = tuple(pieces.pop(0))
                    try:
                        acquired.append(self._acquire_one(piece))
                    except _Unfusable as e:
                        logger.warning("segment %s runs unfused: %s", segment_id(ids), e)
                        self._unfusable.add(ids)
                        pieces = [[c] for c in piece] + pieces
        except BaseException:
            self.release([s.id for s in acquired])
            raise
        return acquired

    def _acquire_one(self, segment: tuple[tuple[str, ComponentKind], ...]) -> LoadedSegment:
        key = segment_id([cid for cid, _ in segment])
        with self._lock:
            loaded = self._loaded.get(key)
        if loaded is None:
            loaded = self._load(segment)
        with self._lock:
            loaded = self._loaded.setdefault(key, loaded)
            loaded.refs += 1
        return loaded

    def release(self, ids: Sequence[str]) -> None:
        """Counts the segments (by id) once less in use; unloads those no route uses."""
        with self._lock:
            for sid in ids:
                loaded = self._loaded.get(sid)
                if loaded is None:
                    continue
                loaded.refs -= 1
                if loaded.refs <= 0:
                    del self._loaded[sid]
                    logger.debug("unloaded segment %s", sid[:12])

    def loaded(self) -> list[LoadedSegment]:
        with self._lock:
            return list(self._loaded.values())

    def _load(self, segment: tuple[tuple[str, ComponentKind], ...]) -> LoadedSegment:
        if len(segment) == 1:
            cid = segment[0][0]
            try:
                session = self._env.create_session(self._onnx_path(cid))
            except Exception as e:  # noqa: BLE001 - ORT raises several types
                raise InvalidArgumentError(f"component {cid} could not be loaded by ONNX Runtime: {e}") from e
        else:
            try:
                graph = fuse([onnx.load(str(self._onnx_path(cid))) for cid, _ in segment]).SerializeToString()
                session = self._env.create_session(graph)
            except Exception as e:  # noqa: BLE001 - FuseError, protobuf's 2 GiB limit, ORT's several types
                raise _Unfusable(str(e)) from e
        logger.debug("loaded segment of %d components %s", len(segment), segment[0][0][:12])
        return LoadedSegment(components=segment, session=session)


class _Unfusable(Exception):
    pass


def check_loadable(env: OrtEnvironment, onnx: bytes, component_id: str) -> None:
    """Raises InvalidArgumentError when ONNX Runtime cannot load the graph."""
    try:
        env.create_session(onnx)
    except Exception as e:  # noqa: BLE001
        raise InvalidArgumentError(f"component {component_id}: ONNX graph not loadable: {e}") from e
