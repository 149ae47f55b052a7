"""The server's domain, wired from its parts. The transport (servicers.py, with codec.py and streams.py) calls the
parts with plain records (records.py) and they answer with plain records or raise the errors of munet_serve.errors:

- `tasks` (tasks.py): register, show, delete a task; its dataset; the evolver's status of it.
- `versions` (versions.py): publish a path as a task's next version, roll back, list the versions.
- `components` (components.py): upload, list and read components; the root.
- `predictor` (prediction.py): predictions on the tasks' live routes, in shared batches.
- `live` (live.py): the live routes and every change to them, in the one order it describes.
- `events` (events.py): the task events WatchTasks streams.
- `repository` (repository.py): every task's serving state; taking one out of service and back (unload, load).
- `statistics` (statistics.py): the inference statistics of every task's versions.
- `files` (integrity.py): stored files, each checked against its content address before it is read.
"""

from __future__ import annotations

from .batching import Batcher
from .components import Components
from .config import ServerConfig
from .events import EventHub
from .integrity import StoredFiles
from .live import LiveRoutes
from .metrics import ServerMetrics
from .ort_env import OrtEnvironment
from .prediction import Predictor, batch_metrics
from .registry import Registry
from .repository import Repository
from .sessions import SessionPool
from .statistics import Statistics
from .tasks import Tasks
from .values import value_ops
from .versions import Versions


class ServeCore:
    """The parts of one server over one registry; `start` loads what was current, `close` lets go of everything."""

    def __init__(self, config: ServerConfig, env: OrtEnvironment, metrics: ServerMetrics) -> None:
        self.config = config
        self.env = env
        self.metrics = metrics
        self.registry = Registry(config.data_dir)
        self.events = EventHub()
        ops = value_ops(env)
        self.files = StoredFiles(self.registry, metrics)
        self.live = LiveRoutes(self.registry, SessionPool(env, self.files.onnx), ops, metrics,
                               env.providers, fuse_segments=config.fuse_segments,
                               max_versions=config.max_loaded_versions)
        self.statistics = Statistics()
        self.predictor = Predictor(self.registry, self.live, Batcher(config.batching, ops, batch_metrics(metrics)),
                                   self.statistics)
        self.tasks = Tasks(config, self.registry, self.files, self.live, self.events, self.statistics)
        self.repository = Repository(self.registry, self.live)
        self.versions = Versions(self.registry, self.files, self.live, self.tasks, self.events)
        self.components = Components(env, self.registry, self.files, self.live)

    def start(self) -> None:
        """Loads the current version of every task, so a restarted server serves exactly what was current."""
        self.live.start()

    def close(self) -> None:
        self.events.close()
        self.predictor.close()
        with self.live.changes:
            self.live.close()
            self.registry.close()
