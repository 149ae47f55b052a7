"""The ONNX Runtime environment of the process: its providers (CUDA when a GPU is present), one global thread pool
and one shared memory arena, and the options every session gets.

Measured on this project's 2-core machines: per-session spinning thread pools made a chain of per-component sessions
up to 10x slower than one whole-model session, and per-session memory arenas held 10 GiB for 56 block sessions. So
every session here uses one global thread pool and one shared arena; with both, a chain costs little more than the
whole model (and segments.py fuses the runs of components that every path goes through together into one session).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from munet_serve.errors import InvalidArgumentError

from .cuda import cuda_device_count

logger = logging.getLogger(__name__)

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
MIB = 1024 * 1024


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


def check_loadable(env: OrtEnvironment, onnx: bytes, component_id: str) -> None:
    """Raises InvalidArgumentError when ONNX Runtime cannot load the graph."""
    try:
        env.create_session(onnx)
    except Exception as e:  # noqa: BLE001
        raise InvalidArgumentError(f"component {component_id}: ONNX graph not loadable: {e}") from e
