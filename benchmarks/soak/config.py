"""The soak's settings: what load it puts on the server, for how long, and the targets it reports against."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.serving.run import PROFILES as SERVING_PROFILES
from benchmarks.serving.run import Profile

__all__ = ["PROFILES", "SoakConfig"]

# The fleets the soak can build, by the serving benchmark's profile names: its root, task count and the server's
# batching and threading flags. "quick" is ViT-S/14 at 28 px with 16 tasks, "mini" the tiny test root with 3.
PROFILES: dict[str, Profile] = {name: SERVING_PROFILES[name] for name in ("quick", "mini", "gpu")}


@dataclass(frozen=True)
class SoakConfig:
    """One soak run.

    Attributes:
        minutes: length of the measured run (the clock starts after setup, the head pool and the warm-up).
        clients: closed-loop predict threads, each with its own channel, one image per request.
        zipf_exponent: how the predicts pick tasks (rank k ~ 1 / k^a; 0: uniform).
        publish_interval_s: a new version of one task every this many seconds (tasks taken in turn).
        publish_tasks: how many of the serving tasks get new versions (0: all of them).
        heads_per_task: heads exported per publishing task before the clock starts; publishes cycle through them,
            so after the first round every publish names an already-stored head in a new path.
        register_interval_s: a new (pending) task is registered every this many seconds.
        delete_registered: delete each registered task when the next one is registered (and the last at the end),
            so that the registry holds at most one of them; otherwise they all stay.
        register_examples: examples per class of a registered task's dataset (random images, 4 classes).
        sample_interval_s: the server's VmRSS is read this often.
        warmup_s: uniform load before the clock, so that every task's sessions are built and warm.
        reference_fraction: the memory reference is the sample at this fraction of the run (minute 2 of 10).
        max_rss_growth: the target: RSS at the end at most this times the reference.
        seed: seed of the heads, the registered datasets and the predicts' task choice.
    """

    minutes: float = 10.0
    clients: int = 8
    zipf_exponent: float = 1.0
    publish_interval_s: float = 1.0
    publish_tasks: int = 0
    heads_per_task: int = 4
    register_interval_s: float = 30.0
    delete_registered: bool = True
    register_examples: int = 6
    sample_interval_s: float = 1.0
    warmup_s: float = 5.0
    reference_fraction: float = 0.2
    max_rss_growth: float = 1.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.clients < 1 or self.heads_per_task < 2:
            raise ValueError("minutes must be positive, clients >= 1 and heads_per_task >= 2 (a publish must change "
                             "the path)")
        if min(self.publish_interval_s, self.register_interval_s, self.sample_interval_s) <= 0:
            raise ValueError("every interval must be positive")
        if not 0 < self.reference_fraction < 1:
            raise ValueError("reference_fraction must be in (0, 1)")

    @property
    def duration_s(self) -> float:
        return self.minutes * 60.0
