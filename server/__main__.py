"""`python -m munet_serve.server` / `munet-serve serve`: run the server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from .config import ServerConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MUNET_SERVE_DATA_DIR", "munet-data")),
                        help="registry directory (default: ./munet-data or $MUNET_SERVE_DATA_DIR)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50051, help="gRPC port (default 50051; 0 picks a free one)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="ONNX Runtime device: CUDA when a GPU is present (auto), or forced")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (default: one per core)")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    parser.add_argument("--http-port", type=int, default=None,
                        help="serve the KServe v2 HTTP/REST protocol (and /metrics) on this port (conventionally 8000;"
                             " default off)")
    parser.add_argument("--tokens-file", type=Path, default=os.environ.get("MUNET_SERVE_TOKENS_FILE") or None,
                        help="bearer tokens with roles (munet-serve tokens create); reread on SIGHUP. Without one the "
                             "server is open and binds only loopback addresses")
    parser.add_argument("--tls-cert", type=Path, default=None,
                        help="PEM certificate chain: TLS on the gRPC and HTTP ports")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", type=Path, default=None,
                        help="PEM CA certificates: mutual TLS (clients must show a certificate this CA signed)")
    parser.add_argument("--insecure", action="store_true",
                        help="serve beyond loopback without a tokens file (anyone reaching the port may change it)")
    parser.add_argument("--max-loaded-versions", type=int, default=4,
                        help="non-current versions kept loaded for requests that name one (default 4)")
    parser.add_argument("--max-workers", type=int, default=32, help="gRPC worker threads")
    parser.add_argument("--max-batch", type=int, default=64,
                        help="images one component run may take, across requests and tasks (default 64)")
    parser.add_argument("--batch-delay-ms", type=float, default=0.0,
                        help="how long a new request may wait for others to batch with (default 0: it runs with "
                             "whatever queued while the previous batch ran)")
    parser.add_argument("--batch-workers", type=int, default=1, help="threads running component batches (default 1)")
    parser.add_argument("--no-fuse", dest="fuse_segments", action="store_false",
                        help="one session per component, even where every path runs a stretch of them together")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        device=args.device,
        intra_op_threads=args.threads,
        metrics_port=args.metrics_port,
        http_port=args.http_port,
        tokens_file=args.tokens_file,
        insecure=args.insecure,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        max_loaded_versions=args.max_loaded_versions,
        max_workers=args.max_workers,
        max_batch_images=args.max_batch,
        batch_delay_ms=args.batch_delay_ms,
        batch_workers=args.batch_workers,
        fuse_segments=args.fuse_segments,
    )


def run(args: argparse.Namespace) -> int:
    from .app import serve_until_signalled
    from .heap import tune_heap

    tune_heap()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve_until_signalled(config_from_args(args), stop)
    except (ValueError, OSError) as e:  # a bad setting, an unreadable TLS file, a port taken, no auth beyond loopback
        logging.getLogger(__name__).error("cannot serve: %s", e)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="munet-serve serve", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
