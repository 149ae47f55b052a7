"""The evolver's training speed (issue 14): candidate-steps per second of one child against a bare PyTorch loop,
and of a generation with and without its shared frozen prefix run once per batch.

    python -m benchmarks.evolver            # the quick profile, about 4 minutes on 2 cores
"""

from .run import PROFILES, Profile, Report, run

__all__ = ["PROFILES", "Profile", "Report", "run"]
