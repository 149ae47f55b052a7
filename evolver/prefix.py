"""The frozen components a generation's candidates start with, run once per batch for all of them.

Candidates of one generation often begin with the same frozen modules (the root's embedding and blocks, or another
task's published path) and depart from one another where the first of them has a trainable component. A
`PrefixTree` holds those leading frozen modules as a tree keyed by module identity: a node is one module applied to
its parent's output, and two candidates share a node exactly when their paths hold the same module objects up to
it. `run` computes every node once per batch, without gradients, and hands each candidate the tensor at its
departure point; the candidate computes only from there (with gradients where it trains).

Frozen modules are never trained, so running them once without gradients gives the very values each candidate
would have computed alone. With `bf16=True` the tree runs under CPU bf16 autocast and returns float32 tensors (the
candidates' own components always run in float32).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["PrefixTree", "cpu_has_native_bf16", "frozen_prefix_length"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (the avx512_bf16 or amx_bf16 flag of /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def frozen_prefix_length(trainable: Sequence[bool]) -> int:
    """How many leading slots are frozen: the index of the first trainable slot (all of them if none trains)."""
    return next((i for i, t in enumerate(trainable) if t), len(trainable))


@dataclass
class _Node:
    module: nn.Module
    children: list[int] = field(default_factory=list)
    departing: list[int] = field(default_factory=list)  # candidates whose frozen prefix ends here


class PrefixTree:
    """The leading frozen modules of several module chains, shared where the chains hold the same objects.

    Args:
        chains: per candidate, its frozen leading modules in execution order (may be empty).
        bf16: run the tree under bf16 autocast (CPU), returning float32.
    """

    def __init__(self, chains: Sequence[Sequence[nn.Module]], bf16: bool = False) -> None:
        self.bf16 = bf16
        self.size = len(chains)
        self._nodes: list[_Node] = []
        self._roots: list[int] = []
        self._at_input: list[int] = []  # candidates with no frozen prefix
        index: dict[tuple[int, int], int] = {}  # (parent node or -1, id(module)) -> node
        for c, chain in enumerate(chains):
            parent = -1
            for module in chain:
                key = (parent, id(module))
                node = index.get(key)
                if node is None:
                    node = len(self._nodes)
                    self._nodes.append(_Node(module))
                    index[key] = node
                    (self._roots if parent < 0 else self._nodes[parent].children).append(node)
                parent = node
            if parent < 0:
                self._at_input.append(c)
            else:
                self._nodes[parent].departing.append(c)

    @property
    def module_runs(self) -> int:
        """Modules run per batch by the tree (the sum of the chains' lengths when nothing is shared)."""
        return len(self._nodes)

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each candidate's input to its first trainable component: x after its frozen prefix."""
        out: list[torch.Tensor | None] = [None] * self.size
        for c in self._at_input:
            out[c] = x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            stack = [(node, x) for node in reversed(self._roots)]
            while stack:  # depth first, so only the outputs still needed are held
                i, value = stack.pop()
                node = self._nodes[i]
                y = node.module(value)
                if node.departing:
                    result = y.float() if self.bf16 else y
                    for c in node.departing:
                        out[c] = result
                stack.extend((child, y) for child in reversed(node.children))
        assert all(t is not None for t in out)
        return out  # type: ignore[return-value]
