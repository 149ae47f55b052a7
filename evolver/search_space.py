"""The hyperparameter search space (§3.1-3.2) and the neighbour rule of every mutation.

A mutation moves a value one step up or down its ordered list, with probability 1/2 each, clipped at the ends (so
at an end it stays put half the time). muNet mutates keys in the list's order; mu2Net sorts the keys, so its
per-path `_mu_` comes first and its new value drives the rest of the child's draws.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["SearchSpace", "is_mutable_here", "neighbour"]

MUNET_LR = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1)
MU2NET_LR = (*MUNET_LR, 0.2, 0.5)
WARMUP = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4)
MUNET_MOMENTUM = (None, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
MU2NET_MOMENTUM = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
COLOUR = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
AREA = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
ASPECT = (0.25, 0.5, 0.75, 1.0)
MU = tuple(round(0.10 + 0.02 * i, 2) for i in range(11))


def image_sizes(patch_size: int, root_image_size: int) -> tuple[int, ...]:
    """Multiples of 16 from 16 to 384 (§3.2) that the patch size divides; the root's own size is always in."""
    sizes = {s for s in range(16, 385, 16) if s % patch_size == 0}
    sizes.add(root_image_size)
    return tuple(sorted(sizes))


@dataclass(frozen=True)
class SearchSpace:
    """Ordered value lists per hyperparameter, in mutation order (a variant's strategy, evolver/strategy.py, makes
    its space from muNet's or mu2Net's lists here)."""

    ranges: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @classmethod
    def munet(cls, num_layers: int, patch_size: int, root_image_size: int) -> SearchSpace:
        """muNet auto-tune (§3.2), num_layers in [1..L]."""
        return cls(
            {
                "adapter_dim": (8, 16, 32, 64, 128),
                "opt_lr": MUNET_LR,
                "opt_lr_schedule": ("constant", "cosine", "restarts"),
                "opt_lr_warmup_ratio": WARMUP,
                "opt_momentum": MUNET_MOMENTUM,
                "opt_nesterov": (True, False),
                "ds_image_size": image_sizes(patch_size, root_image_size),
                "ds_area_range_min": AREA,
                "ds_aspect_ratio_range_min": ASPECT,
                "ds_flip_left_right": (True, False),
                "ds_brightness_delta": COLOUR,
                "ds_contrast_delta": COLOUR,
                "ds_saturation_delta": COLOUR,
                "ds_hue_delta": COLOUR,
                "num_layers": tuple(range(1, num_layers + 1)),
            }
        )

    @classmethod
    def mu2net(cls, num_layers: int, patch_size: int, root_image_size: int) -> SearchSpace:
        """mu2Net auto-tune v1 for the Ti/B configs: muNet's lists with the larger lr and momentum lists, plus
        the per-path `_mu_`; keys are mutated in sorted order."""
        ranges = dict(cls.munet(num_layers, patch_size, root_image_size).ranges)
        ranges["opt_lr"] = MU2NET_LR
        ranges["opt_momentum"] = (None, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
        ranges["_mu_"] = MU
        return cls(dict(sorted(ranges.items())))

    def keys(self) -> list[str]:
        return list(self.ranges)


def is_mutable_here(key: str) -> bool:
    """Keys mutated per child (§2.2 step 2); ds_* keys draw here but mutate once per generation instead."""
    return key in ("num_layers", "adapter_dim", "_mu_") or key.startswith("opt_")


def _index(value: Any, values: Sequence[Any]) -> int:
    for i, v in enumerate(values):
        if v == value and (v is None) == (value is None):
            return i
    # Not in the list (e.g. a root image size outside it): start from the nearest entry.
    numeric = [(i, v) for i, v in enumerate(values) if isinstance(v, int | float) and not isinstance(v, bool)]
    if value is None or not numeric or isinstance(value, bool):
        raise ValueError(f"value {value!r} is not in the search list {list(values)}")
    nearest = min(numeric, key=lambda iv: abs(iv[1] - value))[0]
    logger.debug("value %r not in %s; mutating from the nearest entry %r", value, list(values), values[nearest])
    return nearest


def neighbour(value: Any, values: Sequence[Any], rng: random.Random) -> Any:
    """One step up or down the ordered list (1/2 each), clipped at the ends."""
    i = _index(value, values)
    step = 1 if rng.random() < 0.5 else -1
    return values[min(max(i + step, 0), len(values) - 1)]
