"""The serving benchmark's baselines as servers: one model per task behind the same Predict RPC as munet-serve.

- `--kind onnx` (baseline A): each task's whole path as one ONNX Runtime session (Triton's ONNX Runtime backend
  serves a model repository this way: no weight sharing between models). Best settings: the server's own
  process-wide thread pool and shared arena, and dynamic batching *within* a task by the server's own batcher —
  each task's model is its own component, so only requests of the same task ever share a run.
- `--kind torch` (baseline B): each task's path as a PyTorch eager module, batched the same way.

Run: `python -m benchmarks.serving.per_task --kind onnx --source HOST:PORT --tasks t0,t1 --port PORT`; the models
are built from the paths that the munet-serve server at --source currently serves.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from concurrent import futures
from typing import Any, cast

import grpc
import numpy as np

from munet_serve.artifacts import ComponentKind
from munet_serve.clients import Client
from munet_serve.imaging import to_model_input
from munet_serve.proto.v1 import inference_pb2, inference_pb2_grpc
from munet_serve.server import codec
from munet_serve.server.batching import Batcher, BatchingConfig
from munet_serve.server.heap import tune_heap
from munet_serve.server.metrics import ServerMetrics
from munet_serve.server.ort_env import OrtEnvironment, ort_environment
from munet_serve.server.routes import Route
from munet_serve.server.sessions import LoadedSegment
from munet_serve.server.values import HostValues

from .models import ComponentCache, current_version, eager_path_module, whole_path_graph

logger = logging.getLogger(__name__)

WHOLE_PATH = "whole_path"  # the component kind label of a baseline's runs in munet_batch_images


class _Port:
    def __init__(self, name: str) -> None:
        self.name = name


class EagerSession:
    """A PyTorch module behind the two calls the batcher's components make of an ONNX Runtime session."""

    def __init__(self, module: Any, device: str = "cpu") -> None:
        self.module = module.to(device)
        self.device = device

    def get_inputs(self) -> list[_Port]:
        return [_Port("x")]

    def get_outputs(self) -> list[_Port]:
        return [_Port("y")]

    def run(self, _outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            return [self.module(torch.from_numpy(feeds["x"]).to(self.device)).cpu().numpy()]


def load_routes(kind: str, source: str, tasks: list[str], env: OrtEnvironment, device: str = "cpu"
                ) -> dict[str, Route]:
    """One single-component route per task: its whole model, named after the task so no two tasks share runs."""
    routes: dict[str, Route] = {}
    with Client(source, timeout=600) as client:
        cache = ComponentCache(client)
        for task in tasks:
            version = current_version(client, task)
            labels = tuple(client.get_task(task).labels)
            if kind == "onnx":
                session = env.create_session(whole_path_graph(client, task, cache).SerializeToString())
            else:
                session = cast(Any, EagerSession(eager_path_module(client, task, cache), device))
            model = LoadedSegment(((f"{kind}:{task}", ComponentKind.HEAD),), session)
            routes[task] = Route(task, version.version, labels, version.input, (model,))
    return routes


class PerTaskInference(inference_pb2_grpc.InferenceServicer):
    def __init__(self, routes: dict[str, Route], batcher: Batcher, max_images: int = 256) -> None:
        self.routes = routes
        self.batcher = batcher
        self.max_images = max_images

    def Predict(self, request: inference_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        route = self.routes.get(request.task)
        if route is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"task {request.task!r} is not served here")
            raise AssertionError("abort raises")
        try:
            inputs = codec.predict_input(request, self.max_images)
            x = inputs.preprocessed if inputs.preprocessed is not None else to_model_input(inputs.pixels or [],
                                                                                           route.input)
        except Exception as e:  # noqa: BLE001 - a bad request (ImageError, a wrong tensor), reported as such
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise AssertionError("abort raises") from e
        logits = self.batcher.run(route, x)
        return inference_pb2.PredictResponse(
            task=request.task, version=route.version,
            results=codec.classifications(logits, route.labels, request.top_k, request.include_logits),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving.per_task", description=__doc__)
    parser.add_argument("--kind", choices=("onnx", "torch"), required=True)
    parser.add_argument("--source", required=True, help="the munet-serve server whose paths become the models")
    parser.add_argument("--tasks", required=True, help="comma-separated task names")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--batch-delay-ms", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (default: one per core)")
    parser.add_argument("--batch-workers", type=int, default=1, help="threads running batches")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--max-workers", type=int, default=64, help="gRPC worker threads")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics (munet_batch_images) here")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_heap()  # as the server's entry point does
    env = ort_environment(args.device, args.threads)
    if args.kind == "torch":
        import torch

        torch.set_num_threads(args.threads or torch.get_num_threads())
    started = time.perf_counter()
    routes = load_routes(args.kind, args.source, args.tasks.split(","), env, args.device)
    metrics = ServerMetrics()
    batcher = Batcher(BatchingConfig(args.max_batch, args.batch_delay_ms, args.batch_workers), HostValues(),
                      lambda _model, _tasks, images: metrics.batch_images.labels(WHOLE_PATH).observe(images))
    if args.metrics_port is not None:
        metrics.serve_http("127.0.0.1", args.metrics_port)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.max_workers))
    inference_pb2_grpc.add_InferenceServicer_to_server(PerTaskInference(routes, batcher), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    logger.info("baseline %s: %d task models loaded in %.1f s, serving on port %d", args.kind, len(routes),
                time.perf_counter() - started, args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(2).wait()
    batcher.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
