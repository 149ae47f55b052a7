"""Exceptions the evolver raises: a root that cannot be built, a failed export check, a stop request."""

from __future__ import annotations


class EvolverError(Exception):
    """Base class of the evolver's own errors."""


class RootUnavailableError(EvolverError):
    """No weights could be had for the root: no usable checkpoint, the hub failed, and random init was not asked."""


class UnsupportedRootError(EvolverError):
    """The timm model is a ViT variant that cannot be cut into muNet components."""


class CheckpointError(EvolverError):
    """A root checkpoint file is missing, unreadable or does not fit the model."""


class ParityError(EvolverError):
    """An exported ONNX graph disagrees with its PyTorch module beyond the tolerance."""


class StopRequested(EvolverError):
    """The worker was asked to stop; raised between training steps so no half-trained candidate is published."""
