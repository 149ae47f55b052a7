"""Server settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class BatchingConfig:
    """How requests are batched.

    Attributes:
        max_batch_images: images one component run may take (requests are never split across runs).
        max_delay_ms: how long a new request may wait at its first component for others to join it (0: never waits;
            requests that queue while the workers are busy still batch).
        workers: threads that run component batches (each run uses ONNX Runtime's intra-op threads).
    """

    max_batch_images: int = 64
    max_delay_ms: float = 0.0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_images < 1:
            raise ValueError(f"max_batch_images must be >= 1, got {self.max_batch_images}")
        if not 0 <= self.max_delay_ms <= 1000:
            raise ValueError(f"max_delay_ms must be in [0, 1000], got {self.max_delay_ms}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server process.

    Size limits are deliberate: a single gRPC message may not exceed `max_message_bytes` (gRPC itself answers
    RESOURCE_EXHAUSTED beyond it), a predict request may carry at most `max_images_per_request` images, and the
    streamed uploads (datasets, components) are bounded in total by `max_dataset_bytes` / `max_upload_bytes`. The
    evolver state kept with a task's status may take at most `max_status_bytes` as JSON.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    max_workers: int = 32
    max_message_bytes: int = 64 * MIB
    max_images_per_request: int = 256
    max_dataset_bytes: int = 4096 * MIB  # decoded pixels of one registered dataset
    max_upload_bytes: int = 4096 * MIB  # component files streamed in one call
    max_status_bytes: int = 1 * MIB  # the evolver state of one task's status, as JSON
    max_labels: int = 10_000  # labels of one task (each needs training examples, and the head grows with them)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    intra_op_threads: int = 0  # 0: one per core
    max_batch_images: int = 64  # images one component run may take (dynamic and cross-task batching)
    batch_delay_ms: float = 0.0  # how long a new request may wait for others to batch with (0: takes what queued)
    batch_workers: int = 1  # threads running component batches
    fuse_segments: bool = True  # run each run of components every path goes through together as one session
    max_loaded_versions: int = 4  # non-current versions loaded on demand (requests naming one), across all tasks
    http_port: int | None = None  # the KServe v2 HTTP/REST endpoint (with /metrics); None: off, 0: a free port
    metrics_port: int | None = None  # Prometheus /metrics over HTTP; None: off, 0: a free port
    reflection: bool = True
    tokens_file: Path | None = None  # bearer tokens with roles (server/auth.py); None: auth off, loopback only
    insecure: bool = False  # allow binding beyond loopback without a tokens file
    tls_cert: Path | None = None  # PEM certificate chain: TLS on the gRPC and HTTP ports (with tls_key)
    tls_key: Path | None = None  # PEM private key
    tls_client_ca: Path | None = None  # PEM CA certificates: mutual TLS, clients must show a certificate it signed

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name in ("tokens_file", "tls_cert", "tls_key", "tls_client_ca"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        for name in ("max_workers", "max_message_bytes", "max_images_per_request", "max_dataset_bytes",
                     "max_upload_bytes", "max_status_bytes", "max_labels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_loaded_versions < 0:
            raise ValueError("max_loaded_versions must be >= 0")
        if self.http_port is not None and not 0 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be in [0, 65535], got {self.http_port}")
        if self.intra_op_threads < 0:
            raise ValueError("intra_op_threads must be >= 0")
        try:
            _ = self.batching
        except ValueError as e:
            raise ValueError(f"bad batching setting (max_batch_images / batch_delay_ms / batch_workers): {e}") from e

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        """Whether `host` reaches this machine alone."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def batching(self) -> BatchingConfig:
        return BatchingConfig(self.max_batch_images, self.batch_delay_ms, self.batch_workers)
