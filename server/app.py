"""Assembles a server: registry and sessions, the gRPC services (native and KServe v2, on one port), health,
reflection, metrics, the optional KServe v2 HTTP/REST endpoint; graceful stop."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from .auth import Authenticator, AuthInterceptor
from .config import ServerConfig
from .errors import ErrorMappingInterceptor
from .kserve.grpc_service import add_kserve_service
from .kserve.models import KServeModels
from .kserve.rest import RestServer, start_rest
from .metrics import ServerMetrics
from .ort_env import ort_environment
from .reflection import reflection_pool
from .service import ServeCore
from .servicers import FILES, add_servicers

logger = logging.getLogger(__name__)

@dataclass
class RunningServer:
    """A started server; `port` is the bound gRPC port (useful with port 0)."""

    config: ServerConfig
    core: ServeCore
    grpc_server: grpc.Server
    health: health.HealthServicer
    port: int
    metrics_port: int | None
    kserve: KServeModels
    auth: Authenticator
    rest: RestServer | None = None
    stopped: bool = False

    @property
    def http_port(self) -> int | None:
        """The bound port of the KServe v2 HTTP/REST endpoint, or None when it is off."""
        return self.rest.port if self.rest is not None else None

    @property
    def target(self) -> str:
        return f"{self.config.host}:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking requests, lets in-flight ones finish within `grace` seconds, then closes the registry."""
        if self.stopped:
            return
        self.stopped = True
        self.health.enter_graceful_shutdown()
        self.kserve.stopping()
        self.core.events.close()
        if self.rest is not None:
            self.rest.stop(grace)
        self.grpc_server.stop(grace).wait()
        self.core.metrics.stop_http()
        self.core.close()
        logger.info("server on port %d stopped", self.port)

    def wait(self) -> None:
        self.grpc_server.wait_for_termination()


def create_server(config: ServerConfig) -> RunningServer:
    """Opens the registry, loads every task's current version, and starts serving on config.host:config.port.
    Without a tokens file it binds only a loopback address, unless `config.insecure` says otherwise."""
    auth = Authenticator(config.tokens_file)
    if not auth.enabled and not config.loopback:
        if not config.insecure:
            raise PermissionError(
                f"refusing to serve on {config.host} without authentication: give a tokens file (--tokens-file; "
                f"`munet-serve tokens create` makes one) or, to serve an open server to the network, --insecure")
        logger.warning("SERVING %s WITHOUT AUTHENTICATION (--insecure): anyone who reaches the port may delete tasks, "
                       "roll them back and publish paths", config.host)
    credentials = server_credentials(config) if config.tls else None  # an unreadable file fails before anything opens
    env = ort_environment(config.device, config.intra_op_threads)
    metrics = ServerMetrics()
    core = ServeCore(config, env, metrics)
    core.start()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="munet-rpc"),
        interceptors=[ErrorMappingInterceptor(), AuthInterceptor(auth)],
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    kserve = KServeModels(core)
    service_names = (*add_servicers(core, server), add_kserve_service(kserve, server))
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.reflection:
        files = (*FILES, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR)
        reflection.enable_server_reflection((*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server,
                                            pool=reflection_pool(files))
    address = f"{config.host}:{config.port}"
    port = server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
    if port == 0:
        core.close()
        raise OSError(f"could not bind {config.host}:{config.port}")
    try:
        rest = None if config.http_port is None else start_rest(kserve, metrics, auth, config)
    except OSError:
        core.close()
        raise
    metrics_port = metrics.serve_http(config.host, config.metrics_port) if config.metrics_port is not None else None
    server.start()
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("serving on %s:%d%s (providers %s%s%s)", config.host, port, " with TLS" if config.tls else "",
                ", ".join(env.providers),
                f", metrics on :{metrics_port}" if metrics_port else "",
                f", KServe v2 HTTP on :{rest.port}" if rest else "")
    return RunningServer(config, core, server, health_servicer, port, metrics_port, kserve, auth, rest)


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    """TLS with the configured certificate and key; with a client CA, clients must show a certificate it signed."""
    assert config.tls_cert is not None and config.tls_key is not None
    ca = config.tls_client_ca.read_bytes() if config.tls_client_ca is not None else None
    return grpc.ssl_server_credentials([(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
                                       root_certificates=ca, require_client_auth=ca is not None)


def serve_until_signalled(config: ServerConfig, stop: threading.Event) -> None:
    """Runs a server until `stop` is set (the entry point sets it on SIGINT/SIGTERM)."""
    running = create_server(config)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: running.auth.reload())  # the tokens file, reread
    try:
        stop.wait()
    finally:
        running.stop()
