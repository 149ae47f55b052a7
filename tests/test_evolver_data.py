"""Task data: evaluation tensors are the server's preprocessing; the training stream's shapes, range, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from munet_serve.artifacts import Dataset, Split
from munet_serve.evolver.data import Augmentation, TaskData, augment_batch, sample_crop_boxes
from munet_serve.imaging import InputSpec, to_model_input

SPEC = InputSpec(32)


def test_eval_tensors_are_the_server_preprocessing(digits):
    data = TaskData(digits)
    for split in (Split.VALIDATION, Split.TEST):
        x, y = data.eval_tensors(split, SPEC)
        images, labels = digits.split(split)
        assert torch.equal(x, torch.from_numpy(to_model_input(list(images), SPEC)))
        assert torch.equal(y, torch.from_numpy(labels))
    x, _ = data.eval_tensors(Split.VALIDATION, InputSpec(16, (0.1, 0.2, 0.3), (0.2, 0.3, 0.4)), limit=7)
    assert x.shape == (7, 3, 16, 16)
    assert data.eval_tensors(Split.VALIDATION, SPEC)[0] is data.eval_tensors(Split.VALIDATION, SPEC)[0]  # cached


def test_training_batches_shape_range_and_determinism(digits):
    data = TaskData(digits)
    aug = Augmentation(image_size=24)
    first = list(itertools.islice(data.train_batches(16, aug, SPEC, seed=5), 3))
    again = list(itertools.islice(data.train_batches(16, aug, SPEC, seed=5), 3))
    other = next(data.train_batches(16, aug, SPEC, seed=6))
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        assert x.shape == (16, 3, 24, 24) and x.dtype == torch.float32 and y.shape == (16,)
        assert x.min() >= -1.0 and x.max() <= 1.0
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(first[0][0], other[0])
    # grey images become three equal channels
    assert torch.equal(first[0][0][:, 0], first[0][0][:, 1]) and torch.equal(first[0][0][:, 1], first[0][0][:, 2])


def test_sampler_covers_every_example_each_epoch():
    n = 60  # labels are the example indices, so batches show which examples were drawn
    splits = np.array([1] * n + [2, 3], np.uint8)
    data = TaskData(Dataset(np.zeros((n + 2, 4, 4, 1), np.uint8), np.arange(n + 2), splits))
    stream = data.train_batches(12, Augmentation(image_size=4, area_range_min=1.0), SPEC, seed=0)
    for _ in range(3):  # three epochs, each a permutation of the training examples
        epoch = torch.cat([next(stream)[1] for _ in range(n // 12)])
        assert torch.equal(epoch.sort().values, torch.arange(n))


def test_without_augmentation_training_input_matches_evaluation(digits):
    """With no crop, no flip and no jitter, the training resize is the evaluation resize (up to uint8 rounding)."""
    images = torch.from_numpy(digits.images[:8].transpose(0, 3, 1, 2).copy())
    aug = Augmentation(image_size=32, area_range_min=1.0, flip_left_right=False)
    x = augment_batch(images, aug, SPEC, torch.Generator().manual_seed(0))
    expected = torch.from_numpy(to_model_input(list(digits.images[:8]), SPEC))
    assert (x - expected).abs().max() <= 2.5 / 127.5


def test_flip_mirrors_the_image():
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(64, 1, 1, 1) * 10
    aug = Augmentation(image_size=4, area_range_min=1.0, flip_left_right=True)
    x = augment_batch(image, aug, SPEC, torch.Generator().manual_seed(0))
    plain = (image.float() / 127.5 - 1).expand(64, 3, 4, 4)
    flipped = torch.isclose(x, plain.flip(-1), atol=1e-5).all(dim=(1, 2, 3))
    unflipped = torch.isclose(x, plain, atol=1e-5).all(dim=(1, 2, 3))
    assert bool((flipped | unflipped).all()) and 10 < int(flipped.sum()) < 54


def test_crop_boxes_follow_the_area_and_aspect_ranges():
    g = torch.Generator().manual_seed(0)
    boxes = sample_crop_boxes(2000, 40, 60, 0.2, 0.75, g)
    top, left, h, w = boxes.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 40) & (left + w <= 60) & (h >= 1) & (w >= 1)).all())
    area = h * w / (40 * 60)
    assert area.min() >= 0.17 and area.max() <= 1.0
    assert torch.equal(sample_crop_boxes(5, 8, 8, 1.0, 0.75, g), torch.tensor([[0.0, 0, 8, 8]] * 5))


def test_colour_jitter_stays_in_range():
    rgb = Dataset(
        images=np.random.default_rng(0).integers(0, 256, (40, 10, 12, 3), dtype=np.uint8),
        labels=np.zeros(40, dtype=np.int64),
        splits=np.repeat(np.array([1, 2, 3, 1], dtype=np.uint8), 10),
    )
    aug = Augmentation(16, brightness_delta=0.2, contrast_delta=0.2, saturation_delta=0.2, hue_delta=0.2)
    x, _ = next(TaskData(rgb).train_batches(32, aug, SPEC, seed=0))
    assert x.shape == (32, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert not torch.equal(x[:, 0], x[:, 1])


def test_a_dataset_needs_every_split(digits):
    with pytest.raises(ValueError, match="test"):
        TaskData(Dataset(digits.images, digits.labels, np.where(digits.splits == 3, 1, digits.splits).astype(np.uint8)))


def test_eval_batches_stream_the_whole_split(digits):
    data = TaskData(digits)
    x, y = data.eval_tensors(Split.TEST, SPEC)
    batches = list(data.eval_batches(Split.TEST, SPEC, batch_size=64))
    assert [b[0].shape[0] for b in batches][-1] == len(y) % 64 or len(y) % 64 == 0
    assert torch.equal(torch.cat([b[0] for b in batches]), x) and torch.equal(torch.cat([b[1] for b in batches]), y)
