"""The quality benchmark of issue 4: muNet on built-in tasks against the fine-tuning baselines of §8.6.

    python -m benchmarks.quality --quick      # about 20 minutes on 2 cores
    python -m benchmarks.quality --full       # the full profile, for a GPU
"""

from .profiles import PROFILES, QualityProfile, profile
from .run import QualityReport, run_quality

__all__ = ["PROFILES", "QualityProfile", "QualityReport", "profile", "run_quality"]
