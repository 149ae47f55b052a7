"""A task's dataset as tensors: evaluation inputs exactly as the server preprocesses them, and the training stream.

Evaluation (validation and test) uses `munet_serve.imaging.to_model_input`, the server's own preprocessing, so a
published accuracy is what the served path achieves. Training batches follow the method (§10.1): Inception-style
random crop, horizontal flip, optional colour jitter, bilinear resize to the image size, scaling with the
InputSpec's mean/std and clipping; done on whole batches with one `grid_sample` call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from munet_serve.artifacts import Dataset, Split, read_dataset
from munet_serve.imaging import InputSpec, to_model_input

from .config import Hyperparameters

logger = logging.getLogger(__name__)

__all__ = ["Augmentation", "TaskData", "augment_batch", "sample_crop_boxes"]

_CROP_ATTEMPTS = 10


@dataclass(frozen=True)
class Augmentation:
    """The training-time preprocessing of one generation (the ds_* hyperparameters)."""

    image_size: int
    area_range_min: float = 0.05
    aspect_ratio_range_min: float = 0.75
    flip_left_right: bool = True
    brightness_delta: float = 0.0
    contrast_delta: float = 0.0
    saturation_delta: float = 0.0
    hue_delta: float = 0.0

    @classmethod
    def from_hparams(cls, h: Hyperparameters) -> Augmentation:
        return cls(
            image_size=h.ds_image_size,
            area_range_min=h.ds_area_range_min,
            aspect_ratio_range_min=h.ds_aspect_ratio_range_min,
            flip_left_right=h.ds_flip_left_right,
            brightness_delta=h.ds_brightness_delta,
            contrast_delta=h.ds_contrast_delta,
            saturation_delta=h.ds_saturation_delta,
            hue_delta=h.ds_hue_delta,
        )


def sample_crop_boxes(
    n: int, height: int, width: int, area_min: float, aspect_min: float, generator: torch.Generator
) -> torch.Tensor:
    """Inception-style crop boxes [n, 4] as (top, left, h, w) in whole pixels.

    Area fraction is uniform in [area_min, 1] and aspect ratio (w / h) uniform in [aspect_min, 1 / aspect_min];
    up to 10 attempts per box, then the whole image (as tf.image.sample_distorted_bounding_box).
    """
    if area_min >= 1.0:
        return torch.tensor([[0, 0, height, width]], dtype=torch.float32).repeat(n, 1)
    area = torch.empty(n, _CROP_ATTEMPTS).uniform_(area_min, 1.0, generator=generator) * (height * width)
    ratio = torch.empty(n, _CROP_ATTEMPTS).uniform_(aspect_min, 1.0 / aspect_min, generator=generator)
    w = torch.sqrt(area * ratio).round().clamp(min=1)
    h = torch.sqrt(area / ratio).round().clamp(min=1)
    ok = (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    rows = torch.arange(n)
    hh = torch.where(first >= 0, h[rows, first.clamp(min=0)], torch.full((n,), float(height)))
    ww = torch.where(first >= 0, w[rows, first.clamp(min=0)], torch.full((n,), float(width)))
    top = torch.floor(torch.rand(n, generator=generator) * (height - hh + 1))
    left = torch.floor(torch.rand(n, generator=generator) * (width - ww + 1))
    return torch.stack([top, left, hh, ww], dim=1)


def _rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _uniform(n: int, delta: float, generator: torch.Generator) -> torch.Tensor:
    return torch.empty(n, 1, 1, 1).uniform_(-delta, delta, generator=generator)


def _colour_jitter(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    if aug.brightness_delta > 0:
        x = x + _uniform(n, aug.brightness_delta, generator)
    if aug.contrast_delta > 0:
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = (x - mean) * (1 + _uniform(n, aug.contrast_delta, generator)) + mean
    if aug.saturation_delta > 0:
        grey = _rgb_to_grey(x)
        x = grey + (x - grey) * (1 + _uniform(n, aug.saturation_delta, generator))
    if aug.hue_delta > 0:  # rotate the chroma plane of YIQ by 2 pi delta
        theta = _uniform(n, aug.hue_delta, generator).view(n, 1, 1) * (2 * math.pi)
        to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        cos, sin = torch.cos(theta), torch.sin(theta)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rot = torch.cat(
            [torch.cat([one, zero, zero], 2), torch.cat([zero, cos, -sin], 2), torch.cat([zero, sin, cos], 2)], 1
        )
        m = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # [n, 3, 3]
        x = torch.einsum("nij,njhw->nihw", m, x)
    return x


def augment_batch(
    images: torch.Tensor, aug: Augmentation, spec: InputSpec, generator: torch.Generator
) -> torch.Tensor:
    """Training preprocessing of a uint8 batch [N, C, H, W] (C = 1 or 3) to float32 [N, 3, S, S]."""
    n, c, height, width = images.shape
    s = aug.image_size
    boxes = sample_crop_boxes(n, height, width, aug.area_range_min, aug.aspect_ratio_range_min, generator)
    top, left, hh, ww = boxes.unbind(1)
    # affine_grid maps output [-1, 1] to input [-1, 1] (align_corners=False: pixel centres at half steps)
    sx, sy = ww / width, hh / height
    cx = (left + ww / 2) / width * 2 - 1
    cy = (top + hh / 2) / height * 2 - 1
    if aug.flip_left_right:
        flip = torch.rand(n, generator=generator) < 0.5
        sx = torch.where(flip, -sx, sx)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
    grid = F.affine_grid(theta, [n, c, s, s], align_corners=False)
    x = images.float().div_(255.0)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if c == 1:
        x = x.expand(n, 3, s, s)
    x = _colour_jitter(x, aug, generator).clamp(0.0, 1.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def _as_nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W] or [N, H, W, C] (C in 1, 3, 4) as a uint8 tensor [N, 1 or 3, H, W]."""
    if images.ndim == 3:
        images = images[:, :, :, None]
    if images.ndim != 4 or images.shape[3] not in (1, 3, 4):
        raise ValueError(f"dataset images must be [N, H, W, C] with C in 1, 3, 4; got {list(images.shape)}")
    images = images[:, :, :, :3]
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


class TaskData:
    """A task's dataset held in memory, with cached evaluation tensors per split and InputSpec."""

    def __init__(self, dataset: Dataset, key: str = "") -> None:
        self.dataset = dataset
        self.key = key or f"dataset@{id(self):x}"  # names the dataset for caches (the dataset id when known)
        self._train_images, self._train_labels = dataset.split(Split.TRAIN)
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None
        self._eval: dict[tuple[Split, InputSpec, int | None], tuple[torch.Tensor, torch.Tensor]] = {}
        for split in Split:
            if not np.any(dataset.splits == split):
                raise ValueError(f"the dataset has no {split.name.lower()} examples")

    @classmethod
    def from_file(cls, path: Path) -> TaskData:
        return cls(read_dataset(path), key=path.stem)

    @property
    def num_train(self) -> int:
        return int(self._train_labels.shape[0])

    def num_examples(self, split: Split) -> int:
        return int(np.count_nonzero(self.dataset.splits == split))

    @property
    def max_label(self) -> int:
        return int(self.dataset.labels.max())

    def eval_tensors(
        self, split: Split, spec: InputSpec, limit: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `limit` examples of a split, preprocessed as the server does: float32 [N, 3, S, S], int64 [N]."""
        key = (split, spec, limit)
        if key not in self._eval:
            images, labels = self.dataset.split(split)
            if limit is not None:
                images, labels = images[:limit], labels[:limit]
            x = torch.from_numpy(to_model_input(list(images), spec))
            self._eval[key] = (x, torch.from_numpy(np.asarray(labels, dtype=np.int64)))
        return self._eval[key]

    def eval_batches(
        self, split: Split, spec: InputSpec, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A whole split, preprocessed as the server does, one batch at a time (nothing is cached)."""
        images, labels = self.dataset.split(split)
        for i in range(0, len(labels), batch_size):
            x = torch.from_numpy(to_model_input(list(images[i : i + batch_size]), spec))
            yield x, torch.from_numpy(np.asarray(labels[i : i + batch_size], dtype=np.int64))

    def train_batches(
        self, batch_size: int, aug: Augmentation, spec: InputSpec, seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """An endless stream of augmented training batches; the same seed gives the same batches."""
        if self._train is None:
            self._train = (_as_nchw(self._train_images), torch.from_numpy(self._train_labels.astype(np.int64)))
        images, labels = self._train
        generator = torch.Generator().manual_seed(seed)
        order = torch.empty(0, dtype=torch.int64)
        while True:
            while order.numel() < batch_size:
                order = torch.cat([order, torch.randperm(labels.shape[0], generator=generator)])
            idx, order = order[:batch_size], order[batch_size:]
            yield augment_batch(images[idx], aug, spec, generator), labels[idx]
