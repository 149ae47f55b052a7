"""The quality benchmark: muNet and mu2Net on built-in tasks against the fine-tuning baselines
(docs/evolution.md §8.6), at equal training steps per task, on several seeds.

    python -m benchmarks.quality --standard   # decides the claim; docs/benchmarks.md has its run time
    python -m benchmarks.quality --quick      # a smoke run: under 20 minutes on 2 cores
    python -m benchmarks.quality --full       # the full profile, for a GPU
"""

from .profiles import PROFILES, Ablation, QualityProfile, profile
from .run import QualityReport, run_quality

__all__ = ["PROFILES", "Ablation", "QualityProfile", "QualityReport", "profile", "run_quality"]
