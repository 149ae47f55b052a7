"""`munet-serve up`: the server and a co-located evolver as two processes; Ctrl-C stops both cleanly.

With `--demo` it also registers the built-in demo task, waits for its version 1 and prints a prediction.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .client import Client
from .errors import AlreadyExistsError, MunetError
from .render import console

DEMO_EVOLVER_ARGS = ["--root-preset", "dinov2-s14-imgfocus", "--budget", "small"]  # the default offline root
STOP_TIMEOUT_S = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MUNET_SERVE_DATA_DIR", "munet-data")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--tokens-file", type=Path, default=os.environ.get("MUNET_SERVE_TOKENS_FILE") or None,
                        help="serve with bearer tokens (munet-serve tokens); up gives its evolver a token of its own")
    parser.add_argument("--insecure", action="store_true", help="passed to the server: no auth beyond loopback")
    parser.add_argument("--tls-cert", type=Path, default=None, help="passed to the server: TLS on its ports")
    parser.add_argument("--tls-key", type=Path, default=None, help="passed to the server: the key of --tls-cert")
    parser.add_argument("--tls-ca", type=Path, default=None, dest="up_tls_ca",
                        help="the CA up and its evolver trust (default: --tls-cert itself, as for a self-signed one)")
    parser.add_argument("--http-port", type=int, default=None,
                        help="serve the KServe v2 HTTP/REST protocol on this port too (conventionally 8000)")
    parser.add_argument("--demo", action="store_true",
                        help="register the built-in demo task (scikit-learn digits), wait for version 1, predict")
    parser.add_argument("--exit-after-demo", action="store_true", help="stop both processes once the demo is done")


UP_TOKEN, UP_EVOLVER_TOKEN = "up", "up-evolver"  # the tokens up makes for itself and for its evolver


def _fresh_token(path: Path, name: str, roles: tuple[str, ...]) -> str:
    """A new token named `name` in the tokens file (the one of an earlier run revoked): up's own, or its evolver's."""
    from munet_serve.tokens import TokensFile

    tokens = TokensFile(path)
    if any(entry.name == name for entry in tokens.read()):
        tokens.revoke(name)
    return tokens.create(name, roles)


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    # Own process group: a Ctrl-C reaches us once, and we stop the children in order.
    return subprocess.Popen([sys.executable, "-m", *argv], start_new_session=True, env=env)


def _stop(process: subprocess.Popen, name: str) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{name} did not stop in {STOP_TIMEOUT_S:.0f} s; terminating[/]")
            process.kill()
            process.wait()
    return process.returncode


def run(args: argparse.Namespace, evolver_args: list[str]) -> int:
    target = f"{args.host}:{args.port}"
    server_argv = ["munet_serve.server", "--data-dir", str(args.data_dir), "--host", args.host,
                   "--port", str(args.port), "--device", args.device]
    if args.metrics_port is not None:
        server_argv += ["--metrics-port", str(args.metrics_port)]
    if args.http_port is not None:
        server_argv += ["--http-port", str(args.http_port)]
    if args.insecure:
        server_argv += ["--insecure"]
    own_token, evolver_env, tls_ca = None, dict(os.environ), None
    if args.tokens_file is not None:
        server_argv += ["--tokens-file", str(args.tokens_file)]
        own_token = _fresh_token(args.tokens_file, UP_TOKEN, ("manage", "predict"))
        evolver_env["MUNET_SERVE_TOKEN"] = _fresh_token(args.tokens_file, UP_EVOLVER_TOKEN, ("evolver",))
    if args.tls_cert is not None or args.tls_key is not None:
        if args.tls_cert is None or args.tls_key is None:
            console.print("[red]TLS needs both --tls-cert and --tls-key[/]")
            return 2
        server_argv += ["--tls-cert", str(args.tls_cert), "--tls-key", str(args.tls_key)]
        tls_ca = args.up_tls_ca or args.tls_cert
        evolver_env["MUNET_SERVE_TLS_CA"] = str(tls_ca)
    if args.demo and not evolver_args:
        evolver_args = DEMO_EVOLVER_ARGS
    if "--cache-dir" not in evolver_args:
        evolver_args = [*evolver_args, "--cache-dir", str(args.data_dir / "evolver-cache")]
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = _spawn(server_argv)
    evolver: subprocess.Popen | None = None
    code = 0
    try:
        with Client(target, token=own_token, tls_ca=tls_ca) as client:
            client.wait_ready(timeout=120)
            console.print(f"server ready on {target} (data in {args.data_dir})")
            evolver = _spawn(["munet_serve.evolver", "--server", target, *evolver_args], evolver_env)
            if args.demo:
                code = _demo(client, stop, server, evolver)
                if args.exit_after_demo:
                    stop.set()
            if not stop.is_set():
                console.print("server and evolver running; Ctrl-C stops both")
            while not stop.wait(0.5):
                for name, p in (("server", server), ("evolver", evolver)):
                    if p.poll() is not None:
                        console.print(f"[red]{name} exited with code {p.returncode}; stopping[/]")
                        code = code or 1
                        stop.set()
    except MunetError as e:
        console.print(f"[red]{e.describe()}[/]")
        code = 1
    finally:
        console.print("stopping evolver and server ...")
        evolver_code = _stop(evolver, "evolver") if evolver is not None else 0
        server_code = _stop(server, "server")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print(f"stopped (evolver exit {evolver_code}, server exit {server_code})")
    return code


def _demo(client: Client, stop: threading.Event, *processes: subprocess.Popen) -> int:
    from .datasets import demo_digits

    upload = demo_digits()
    try:
        client.register(upload)
        console.print(f"registered demo task {upload.name!r} ({len(upload.images)} images)")
    except AlreadyExistsError:
        console.print(f"demo task {upload.name!r} already registered")
    with console.status("waiting for the evolver to publish version 1 ...") as status:
        while not stop.is_set():
            task = client.get_task(upload.name)
            if task.current_version >= 1:
                break
            if any(p.poll() is not None for p in processes):
                return 1
            e = task.evolution
            status.update(f"waiting for version 1 of {upload.name!r}: {e.phase or 'queued'} {e.message}".strip())
            time.sleep(0.5)
    if stop.is_set():
        return 0
    console.print(
        f"{task.name} version {task.current_version}: validation accuracy {task.metrics.validation_accuracy:.3f}, "
        f"test accuracy {task.metrics.test_accuracy:.3f}"
    )
    indices = [0, 1, 2, 3, 4]
    result = client.predict(upload.name, [upload.images[i] for i in indices], top_k=3)
    for i, p in zip(indices, result.predictions, strict=True):
        truth = upload.labels[upload.label_ids[i]]
        console.print(f"prediction: image {i} (true {truth}) -> {p.label} ({p.top[0].score:.3f}) "
                      f"from version {result.version}")
    return 0
