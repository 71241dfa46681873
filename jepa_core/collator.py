"""A DataLoader ``collate_fn`` that draws each batch's masks, as the official I-JEPA loader does
(facebookresearch/ijepa, ``src/masks/multiblock.py``: block sizes per batch, positions per
image, from a generator seeded by an iteration counter).

    loader = DataLoader(dataset, batch_size=64, collate_fn=MultiBlockMaskCollator(grid=7))
    for images, labels, masks in loader: ...

The workbook's trainer draws its masks in the step instead (``jepa_core.build.sample_masks``,
seeded by (seed, step, rank)); the collator is for code that wants them from the loader.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from .checks import int_at_least
from .masks import MASK_ARGUMENTS, MultiBlockMasks, _check_multiblock_args, sample_multiblock_masks


class MultiBlockMaskCollator:
    """``collate_fn`` for a DataLoader: samples -> (images, labels, masks).

    Samples are ``(image, label)`` or ``((view_a, view_b), label)``; the latter returns images
    as a tuple ``(views_a, views_b)``. Like the official collator, batch number ``step`` draws
    its masks from a generator seeded with ``seed + step``; the counter is a
    ``multiprocessing.Value`` shared by DataLoader workers, so no two batches share a seed
    (which worker gets which step depends on scheduling, as in the official code).
    """

    def __init__(self, grid: int | tuple[int, int], *, seed: int = 0, **mask_kwargs: Any) -> None:
        unknown = sorted(set(mask_kwargs) - set(MASK_ARGUMENTS))
        if unknown:
            raise TypeError(
                f"MultiBlockMaskCollator got unknown mask arguments {unknown}; "
                f"accepted: {list(MASK_ARGUMENTS)} (the generator is its own)"
            )
        self.seed = int_at_least("seed", seed, 0)
        self.mask_kwargs = dict(mask_kwargs)
        defaults = {
            "n_targets": 4,
            "target_scale": (0.15, 0.2),
            "target_aspect": (0.75, 1.5),
            "context_scale": (0.85, 1.0),
            "min_keep": 4,
            "allow_overlap": False,
        }
        self.grid = _check_multiblock_args(grid, 1, **{**defaults, **mask_kwargs})["grid"]
        self._step = multiprocessing.Value("i", 0)

    @property
    def step(self) -> int:
        """Number of batches collated so far (the next batch uses ``seed + step``)."""
        return self._step.value

    def __call__(self, batch: Sequence[Any]) -> tuple[Any, torch.Tensor, MultiBlockMasks]:
        if len(batch) == 0:
            raise ValueError("batch must hold at least one sample, got an empty batch")
        for sample in batch:
            if not isinstance(sample, Sequence) or len(sample) != 2:
                raise ValueError(
                    f"each sample must be (image, label) or "
                    f"((view_a, view_b), label), got {type(sample).__name__}"
                )
        images, labels = default_collate(batch)
        if isinstance(images, list):
            images = tuple(images)
        with self._step.get_lock():
            step = self._step.value
            self._step.value += 1
        generator = torch.Generator().manual_seed(self.seed + step)
        masks = sample_multiblock_masks(
            self.grid, len(batch), generator=generator, **self.mask_kwargs
        )
        return images, labels, masks
