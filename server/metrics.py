"""Prometheus metrics of one server (own CollectorRegistry, so several servers can live in one process)."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "munet_predict_requests", "Predict calls by task and status code", ["task", "code"], registry=self.registry
        )
        self.images = Counter("munet_predict_images", "Images classified", ["task"], registry=self.registry)
        self.latency = Histogram(
            "munet_predict_latency_seconds",
            "Predict latency inside the server",
            ["task"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.sessions = Gauge("munet_loaded_sessions", "ONNX Runtime sessions loaded (one per component)",
                              registry=self.registry)
        self.version = Gauge("munet_task_current_version", "Version each task serves", ["task"],
                             registry=self.registry)
        self.swaps = Counter("munet_swaps", "Route changes by kind and outcome", ["kind", "outcome"],
                             registry=self.registry)
        self.swap_seconds = Histogram(
            "munet_swap_load_seconds", "Time to load and warm a new route before the swap", registry=self.registry
        )
        self.batch_images = Histogram(
            "munet_batch_images", "Images per component run, by component kind", ["kind"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry,
        )
        self.batch_tasks = Histogram(
            "munet_batch_tasks", "Distinct tasks per component run (above 1: cross-task batching)", ["kind"],
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry,
        )
        self.corrupt_files = Counter(
            "munet_corrupt_files", "Stored files refused because they do not match their content address, by area",
            ["area"], registry=self.registry,
        )
        self._http: WSGIServer | None = None

    def serve_http(self, host: str, port: int) -> int:
        """Starts the /metrics endpoint; returns its port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_port

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
