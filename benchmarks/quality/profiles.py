"""The quality benchmark's profiles: which tasks, root, budgets, variants, scale factors, baselines, seeds and
ablations a run uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from munet_serve.builtin import SplitSizes
from munet_serve.evolver.config import RootConfig, SearchBudget, TrainBudget, budget_preset, root_preset, search_preset

__all__ = ["PROFILES", "Ablation", "QualityProfile", "profile"]


@dataclass(frozen=True)
class Ablation:
    """The better variant at s = 1 with one knob changed, run on the first seed (the answer where a target is
    missed: which knob gives what).

    Attributes:
        label: what changed, as the table shows it.
        mutation_probability: mu.
        search: candidates per generation and per task iteration (and iterations).
        train: steps per candidate (K, V) and the rest of the training budget.
        validation_per_class: keep only this many validation examples of each class.
        variant: the other variant (an ablation of the variant itself).
        ds_mutation_probability: mu of the dataset hyperparameters.
        transfer_ds: whether a new task starts from the last task's augmentation.
    """

    label: str
    mutation_probability: float | None = None
    ds_mutation_probability: float | None = None
    transfer_ds: bool | None = None
    search: SearchBudget | None = None
    train: TrainBudget | None = None
    validation_per_class: int | None = None
    variant: str | None = None


@dataclass(frozen=True)
class QualityProfile:
    """One benchmark configuration.

    Attributes:
        tasks: built-in dataset names, registered in this order (each one after the previous finished evolving).
        sizes: examples per class per split for every task (None: each dataset's defaults).
        root_preset: the evolver root preset every system starts from.
        train, search: the evolution's budgets; baselines get the same steps per task (docs/evolution.md §8.6).
        variants: evolution variants run at s = 1 ("munet", "mu2net").
        scale_factors: the better variant at s = 1 (by average test accuracy over the seeds) runs again at each of
            these (s < 1 penalises added parameters, §6); with one variant, that one.
        mutation_probability: mu of every evolution run.
        ds_mutation_probability: mu of the dataset hyperparameters (None: mutation_probability).
        transfer_ds: a new task starts from the most recent task's augmentation (EvolverConfig.transfer_ds).
        baselines: BaselineSpec texts (``L`` stands for the root's block count), each run as §8.6 does:
            children_per_generation replicas, each with the steps of the longest lineage.
        long_baselines: BaselineSpec texts run once with all the steps in one run (the strongest form).
        baseline_replicas: replicas of `baselines` (None: children_per_generation, as §8.6).
        seeds: every system runs once per seed (data order, augmentation, mutations, fresh weights).
        ablations: run on the first seed only, after everything else.
        threads: torch threads (None: all cores).
    """

    name: str
    tasks: tuple[str, ...]
    sizes: SplitSizes | None
    root_preset: str
    train: TrainBudget
    search: SearchBudget
    variants: tuple[str, ...] = ("munet",)
    scale_factors: tuple[float, ...] = (0.5, 0.2)
    mutation_probability: float = 0.1
    ds_mutation_probability: float | None = None
    transfer_ds: bool = False
    baselines: tuple[str, ...] = ("finetune-all", "freeze-bottom:L", "adapters:16")
    long_baselines: tuple[str, ...] = ()
    baseline_replicas: int | None = None
    seeds: tuple[int, ...] = (0,)
    ablations: tuple[Ablation, ...] = ()
    threads: int | None = None
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("a profile needs at least one variant")
        if not self.seeds:
            raise ValueError("a profile needs at least one seed")
        if any(not 0 < s < 1 for s in self.scale_factors):
            raise ValueError(f"scale factors beyond s = 1 must be in (0, 1), got {self.scale_factors}")

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

_STANDARD_TASKS = (
    "chars/latin-upper",
    "chars/greek",
    "chars/cyrillic",
    "chars/digits",
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

# The standard profile's evolution budget: 18 candidates per task (2 per generation, 9 generations; a task gets at
# most 6 seeds: the 5 other tasks' paths and the root) of 2 validations K <= 12 steps apart, so a lineage can train up
# to 9 candidates' steps (216 at K = 12); the §8.6 baselines train 2 replicas of that, the long fine-tune one run of
# all 18 candidates' steps.
_STANDARD_TRAIN = TrainBudget(batch_size=32, max_steps_between_validations=12, validations=2,
                              max_validation_examples=1024)
_STANDARD_SEARCH = SearchBudget(children_per_generation=2, samples_per_task=18, task_iterations=1)

PROFILES: dict[str, QualityProfile] = {
    # The profile that decides the issue-14 claim on 2 cores (40.6 min on 2026-12-02 with its three ablations; the
    # issue asks <= 60): 6 tasks, 16 validation examples per class, muNet and mu2Net, the size-scaled curve, the §8.6
    # baselines and the long fine-tune, two seeds, mu 0.3 (the ablations measure mu 0.1, fewer and longer candidates,
    # and half the validation set).
    "standard": QualityProfile(
        name="standard",
        tasks=_STANDARD_TASKS,
        sizes=SplitSizes(train=30, validation=16, test=20),
        root_preset="chars-cjk",
        train=_STANDARD_TRAIN,
        search=_STANDARD_SEARCH,
        variants=("munet", "mu2net"),
        scale_factors=(0.5, 0.2),
        mutation_probability=0.3,
        ds_mutation_probability=0.3,
        transfer_ds=True,
        baselines=("finetune-all", "freeze-bottom:L", "adapters:16"),
        long_baselines=("finetune-all",),
        seeds=(0, 1),
        ablations=(
            Ablation("mu = 0.1", mutation_probability=0.1),
            Ablation("9 candidates of twice the steps", search=SearchBudget(2, 9, 1),
                     train=TrainBudget(32, 12, 4, 1024)),
            Ablation("8 validation examples per class", validation_per_class=8),
        ),
        notes="2-core CPU profile that decides the claim",
    ),
    # A smoke run on 2 cores in under 20 minutes: one seed, no long baseline, no ablations.
    "quick": QualityProfile(
        name="quick",
        tasks=_QUICK_TASKS[:6],
        sizes=SplitSizes(train=30, validation=16, test=12),
        root_preset="chars-cjk",
        train=TrainBudget(batch_size=32, max_steps_between_validations=10, validations=2, max_validation_examples=1024),
        search=SearchBudget(children_per_generation=2, samples_per_task=9, task_iterations=1),
        variants=("munet", "mu2net"),
        scale_factors=(0.5,),
        ds_mutation_probability=0.3,
        transfer_ds=True,
        baselines=("finetune-all", "freeze-bottom:L"),
        notes="2-core smoke profile",
    ),
    # The tasks and training budget `benchmarks/roots` compares the roots on (8 tasks; 4 candidate-trainings of 30
    # steps there, so 120 steps per task).
    "roots": QualityProfile(
        name="roots",
        tasks=_QUICK_TASKS,
        sizes=SplitSizes(train=30, validation=8, test=12),
        root_preset="chars-cjk",
        train=TrainBudget(batch_size=32, max_steps_between_validations=10, validations=3, max_validation_examples=400),
        search=SearchBudget(children_per_generation=2, samples_per_task=3, task_iterations=2),
        notes="the roots comparison's tasks and budgets",
    ),
    # For a GPU: every built-in task at its default size, the paper's chars budgets.
    "full": QualityProfile(
        name="full",
        tasks=_FULL_TASKS,
        sizes=None,
        root_preset="chars-cjk",
        train=budget_preset("paper-chars"),
        search=search_preset("paper-chars"),
        variants=("munet", "mu2net"),
        scale_factors=(0.5, 0.2, 0.05),
        baselines=("finetune-all", "freeze-bottom:0", "freeze-bottom:2", "freeze-bottom:L", "adapters:8",
                   "adapters:32", "adapters:128"),
        long_baselines=("finetune-all",),
        seeds=(0, 1),
        notes="GPU profile",
    ),
    # The test suite's miniature: two tasks, the tiny random root, a few steps, every kind of system.
    "mini": QualityProfile(
        name="mini",
        tasks=("chars/digits", "scans/digits"),
        sizes=SplitSizes(train=8, validation=3, test=3),
        root_preset="tiny-test",
        train=budget_preset("tiny"),
        search=SearchBudget(children_per_generation=2, samples_per_task=2, task_iterations=1),
        variants=("munet", "mu2net"),
        scale_factors=(0.5,),
        ds_mutation_probability=0.5,
        transfer_ds=True,
        baselines=("finetune-all", "freeze-bottom:L", "adapters:4"),
        long_baselines=("finetune-all",),
        seeds=(0, 1),
        ablations=(Ablation("mu = 0.5", mutation_probability=0.5), Ablation("2 validation examples per class",
                                                                             validation_per_class=2)),
        threads=2,
        notes="test-suite miniature",
    ),
}


def profile(name: str) -> QualityProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
