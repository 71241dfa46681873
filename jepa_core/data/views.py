"""Two augmented views of one image, for C-JEPA's VICReg term and for NT-Xent.

The pipeline follows SimCLR (Chen et al., 2020) and VICReg (Bardes et al., 2022):
RandomResizedCrop, horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1) with p = 0.8 and
grayscale with p = 0.2. I-JEPA itself uses RandomResizedCrop (0.3, 1.0) only
(facebookresearch/ijepa). Digits get crops and small affine moves, no flips, no colour.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset, Subset

from .datasets import _check_image_size, _unwrap


class TwoViews:
    """Map one float [0, 1] image ``[C, H, W]`` to two independent draws of ``view``."""

    def __init__(self, view: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.view = view

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(image), self.view(image)

    def __repr__(self) -> str:
        return f"TwoViews({self.view!r})"


def two_view_transform(
    image_size: int | tuple[int, int],
    natural: bool = True,
    crop_scale: tuple[float, float] | None = None,
    *,
    num_channels: int = 3,
) -> TwoViews:
    """Two independently augmented views of one image (torchvision.transforms.v2).

    natural (SimCLR / VICReg recipe): RandomResizedCrop(image_size, scale=crop_scale, default
    (0.3, 1.0) as in I-JEPA), RandomHorizontalFlip, RandomApply(ColorJitter(0.4, 0.4, 0.2,
    0.1), p=0.8), and RandomGrayscale(0.2) when ``num_channels == 3``.
    digits (``natural=False``): RandomResizedCrop(scale=crop_scale, default (0.5, 1.0), ratio
    (0.8, 1.25)) and RandomAffine(degrees=10, translate=(0.1, 0.1)); no flips, no colour.
    Normalisation comes after, from the dataset.
    """
    from torchvision.transforms import v2

    if isinstance(image_size, int) and not isinstance(image_size, bool):
        size = (_check_image_size(image_size), image_size)
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in image_size)
    ):
        size = tuple(image_size)
    else:
        raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")
    if crop_scale is None:
        crop_scale = (0.3, 1.0) if natural else (0.5, 1.0)
    lo, hi = crop_scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {tuple(crop_scale)}")
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels!r}")

    if natural:
        steps = [
            v2.RandomResizedCrop(size, scale=(lo, hi), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        ]
        if num_channels == 3:
            steps.append(v2.RandomGrayscale(p=0.2))
    else:
        steps = [
            v2.RandomResizedCrop(size, scale=(lo, hi), ratio=(0.8, 1.25), antialias=True),
            v2.RandomAffine(degrees=10, translate=(0.1, 0.1)),
        ]
    return TwoViews(v2.Compose(steps))


def with_two_views(
    dataset: Dataset, natural: bool | None = None, crop_scale: tuple[float, float] | None = None
) -> Dataset:
    """The same images yielding ``((view_a, view_b), label)``, each view normalised.

    ``natural`` defaults to the dataset's own (False for mnist5k / mnist / fashion_mnist /
    digits). The result shares the image storage and pickles (DataLoader workers). A Subset
    stays a Subset with the same indices.
    """
    if isinstance(dataset, Subset):
        return Subset(with_two_views(dataset.dataset, natural, crop_scale), dataset.indices)
    base = _unwrap(dataset)
    if base.transform is not None:
        raise ValueError(
            f"dataset already has a transform ({base.transform!r}); pass the plain dataset from "
            "make_datasets"
        )
    if natural is None:
        natural = base.natural
    transform = two_view_transform(
        base.image_size, natural=natural, crop_scale=crop_scale, num_channels=base.num_channels
    )
    return base.with_transform(transform)
