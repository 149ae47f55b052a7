"""The quality benchmark's profiles: which tasks, root, budgets, scale factors and baselines a run uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from munet_serve.builtin import SplitSizes
from munet_serve.evolver.config import RootConfig, SearchBudget, TrainBudget, budget_preset, root_preset, search_preset

__all__ = ["PROFILES", "QualityProfile", "profile"]


@dataclass(frozen=True)
class QualityProfile:
    """One benchmark configuration.

    Attributes:
        tasks: built-in dataset names, registered in this order (each one after the previous finished evolving).
        sizes: examples per class per split for every task (None: each dataset's defaults).
        root_preset: the evolver root preset every system starts from.
        train, search: the evolution's budgets; baselines get the same steps per task (§8.6).
        scale_factors: muNet runs, one per s (s = 1 scores by accuracy alone; smaller s penalises added params).
        baselines: BaselineSpec texts.
        baseline_replicas: replicas sharing a baseline's matched steps (None: children_per_generation, as §8.6;
            1: one run with all the steps, since replicas of zero-initialised heads on one batch stream are
            identical).
        threads: torch threads (None: all cores).
    """

    name: str
    tasks: tuple[str, ...]
    sizes: SplitSizes | None
    root_preset: str
    train: TrainBudget
    search: SearchBudget
    scale_factors: tuple[float, ...] = (1.0, 0.5, 0.2)
    baselines: tuple[str, ...] = ("finetune-all", "freeze-bottom:2", "adapters:16")
    baseline_replicas: int | None = 1
    threads: int | None = None
    seed: int = 0
    notes: str = field(default="", compare=False)

    @property
    def root(self) -> RootConfig:
        return root_preset(self.root_preset)


_QUICK_TASKS = (
    "chars/latin-upper",
    "chars/digits",
    "chars/greek",
    "chars/cyrillic",
    "chars/devanagari",
    "chars/georgian",
    "scans/digits",
    "scans/fashion-mnist",
)

_FULL_TASKS = (
    "chars/latin-upper",
    "chars/latin-lower",
    "chars/digits",
    "chars/greek",
    "chars/cyrillic",
    "chars/arabic",
    "chars/hebrew",
    "chars/devanagari",
    "chars/bengali",
    "chars/telugu",
    "chars/tamil",
    "chars/gujarati",
    "chars/hiragana",
    "chars/katakana",
    "chars/hangul",
    "chars/thai",
    "chars/georgian",
    "chars/armenian",
    "scans/digits",
    "scans/fashion-mnist",
)

PROFILES: dict[str, QualityProfile] = {
    # Two cores, under 20 minutes with the root's pretraining: 8 tasks, small splits, two task iterations of 3
    # candidates of 30 steps per task (the second iteration, a revisit, has no seed phase: its children mutate).
    "quick": QualityProfile(
        name="quick",
        tasks=_QUICK_TASKS,
        sizes=SplitSizes(train=30, validation=8, test=12),
        root_preset="chars-cjk",
        train=TrainBudget(batch_size=32, max_steps_between_validations=10, validations=3, max_validation_examples=400),
        search=SearchBudget(children_per_generation=2, samples_per_task=3, task_iterations=2),
        notes="2-core CPU profile",
    ),
    # For a GPU: every built-in task at its default size, the paper's chars budgets.
    "full": QualityProfile(
        name="full",
        tasks=_FULL_TASKS,
        sizes=None,
        root_preset="chars-cjk",
        train=budget_preset("paper-chars"),
        search=search_preset("paper-chars"),
        scale_factors=(1.0, 0.5, 0.2, 0.05),
        baselines=("finetune-all", "freeze-bottom:0", "freeze-bottom:2", "freeze-bottom:4", "adapters:8",
                   "adapters:32", "adapters:128"),
        baseline_replicas=None,
        notes="GPU profile",
    ),
    # The test suite's miniature: two tasks, the tiny random root, a few steps.
    "mini": QualityProfile(
        name="mini",
        tasks=("chars/digits", "scans/digits"),
        sizes=SplitSizes(train=8, validation=3, test=3),
        root_preset="tiny-test",
        train=budget_preset("tiny"),
        search=SearchBudget(children_per_generation=2, samples_per_task=2, task_iterations=1),
        scale_factors=(1.0, 0.5, 0.2),
        baselines=("finetune-all", "freeze-bottom:1", "adapters:4"),
        threads=2,
        notes="test-suite miniature",
    ),
}


def profile(name: str) -> QualityProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
