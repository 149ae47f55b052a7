"""ONNX Runtime for the server: the process-wide environment and the pool of component sessions.

Measured on this project's 2-core machines (shared/reference/offline-data-and-cpu.md §3.3-3.4): per-session spinning
thread pools made a chain of per-component sessions up to 10x slower than one whole-model session, and per-session
memory arenas held 10 GiB for 56 block sessions. So every session here uses one global thread pool and one shared
arena; with both, a chain costs what the whole model costs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from munet_serve.artifacts import ComponentKind

from .errors import InvalidArgument

logger = logging.getLogger(__name__)

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


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
class LoadedComponent:
    """One ONNX Runtime session for one component, shared by every route that uses the component."""

    id: str
    kind: ComponentKind
    session: ort.InferenceSession
    refs: int = 0
    input_name: str = field(init=False)
    output_name: str = field(init=False)

    def __post_init__(self) -> None:
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class SessionPool:
    """component id -> session, loaded once, reference-counted by live routes, unloaded at zero."""

    def __init__(self, env: OrtEnvironment, onnx_path: Callable[[str], Path]):
        self._env = env
        self._onnx_path = onnx_path
        self._loaded: dict[str, LoadedComponent] = {}
        self._lock = threading.Lock()

    def acquire(self, components: Sequence[tuple[str, ComponentKind]]) -> list[LoadedComponent]:
        """Returns the sessions of (id, kind) pairs, loading the missing ones; each is counted once more in use."""
        acquired: list[LoadedComponent] = []
        try:
            for cid, kind in components:
                with self._lock:
                    component = self._loaded.get(cid)
                if component is None:
                    component = self._load(cid, kind)
                with self._lock:
                    component = self._loaded.setdefault(cid, component)
                    component.refs += 1
                acquired.append(component)
        except BaseException:
            self.release([c.id for c in acquired])
            raise
        return acquired

    def release(self, ids: Sequence[str]) -> None:
        with self._lock:
            for cid in ids:
                component = self._loaded.get(cid)
                if component is None:
                    continue
                component.refs -= 1
                if component.refs <= 0:
                    del self._loaded[cid]
                    logger.debug("unloaded component %s", cid[:12])

    def loaded(self) -> list[LoadedComponent]:
        with self._lock:
            return list(self._loaded.values())

    def _load(self, cid: str, kind: ComponentKind) -> LoadedComponent:
        try:
            session = self._env.create_session(self._onnx_path(cid))
        except Exception as e:  # noqa: BLE001 - ORT raises several types
            raise InvalidArgument(f"component {cid} could not be loaded by ONNX Runtime: {e}") from e
        logger.debug("loaded component %s", cid[:12])
        return LoadedComponent(id=cid, kind=kind, session=session)


def check_loadable(env: OrtEnvironment, onnx: bytes, component_id: str) -> None:
    """Raises InvalidArgument when ONNX Runtime cannot load the graph."""
    try:
        env.create_session(onnx)
    except Exception as e:  # noqa: BLE001
        raise InvalidArgument(f"component {component_id}: ONNX graph not loadable: {e}") from e
