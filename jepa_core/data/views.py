"""The views a method trains on: one crop (I-JEPA), two augmented views (C-JEPA's VICReg,
NT-Xent) or several (LeJEPA's global and local views).

* I-JEPA's single view (``with_crop``): RandomResizedCrop, scale (0.3, 1.0), nothing else
  (facebookresearch/ijepa ``src/transforms.py``; its configs turn flips and colour off).
* An augmented view (``augmented_view``) follows SimCLR (Chen et al., 2020) and VICReg (Bardes
  et al., 2022): RandomResizedCrop, horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1) with
  p = 0.8 and grayscale with p = 0.2. Digits get crops only: no flips, no colour, and no
  affine moves (measured: LeJEPA's pooled 20-NN on mnist5k after 3 epochs, 0.668 with
  RandomAffine(10 degrees, 10% translation) after the crop, 0.714 without; docs/results.md).
* LeJEPA (Balestriero & LeCun 2025; rbalestr-lab/lejepa) draws 2 global views (crop scale
  0.3-1.0) and several local views: small crops (0.05-0.3 in the paper) at a lower resolution
  (96 px against 224), ``with_multi_views``; ``local_view_size`` rounds that resolution to
  whole patches, and the encoder resamples its position grid to the smaller view.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from ..checks import int_at_least
from .datasets import _check_image_size, _unwrap

TWO_VIEW_DIGIT_CROP = (0.85, 1.0)  # the crop scale of C-JEPA's and NT-Xent's two digit views


class Views:
    """Map one float [0, 1] image ``[C, H, W]`` to a tuple of views, one per transform."""

    def __init__(self, *views: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if not views:
            raise ValueError("Views needs at least one view transform")
        self.views = views

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(view(image) for view in self.views)

    def __repr__(self) -> str:
        return f"Views({', '.join(map(repr, self.views))})"


class TwoViews:
    """Map one float [0, 1] image ``[C, H, W]`` to two independent draws of ``view``."""

    def __init__(self, view: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.view = view

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(image), self.view(image)

    def __repr__(self) -> str:
        return f"TwoViews({self.view!r})"


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        return (_check_image_size(image_size), image_size)
    if (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in image_size)
    ):
        return tuple(image_size)
    raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")


def _scale(name: str, scale: tuple[float, float]) -> tuple[float, float]:
    lo, hi = scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got {tuple(scale)}")
    return (float(lo), float(hi))


def crop_view(image_size: int | tuple[int, int], crop_scale: tuple[float, float] = (0.3, 1.0)):
    """I-JEPA's one view: RandomResizedCrop(image_size, scale=crop_scale), default (0.3, 1.0)
    as in the official configs; aspect ratio 3/4-4/3 (torchvision's default, the official)."""
    from torchvision.transforms import v2

    return v2.RandomResizedCrop(
        _size(image_size), scale=_scale("crop_scale", crop_scale), antialias=True
    )


def augmented_view(
    image_size: int | tuple[int, int],
    natural: bool = True,
    crop_scale: tuple[float, float] | None = None,
    *,
    num_channels: int = 3,
):
    """One augmented view (torchvision.transforms.v2).

    natural (SimCLR / VICReg recipe): RandomResizedCrop(image_size, scale=crop_scale, default
    (0.3, 1.0) as in I-JEPA), RandomHorizontalFlip, RandomApply(ColorJitter(0.4, 0.4, 0.2,
    0.1), p=0.8), and RandomGrayscale(0.2) when ``num_channels == 3``.
    digits (``natural=False``): RandomResizedCrop(scale=crop_scale, default (0.5, 1.0), the
    scale of LeJEPA's digit views; two-view digits: :func:`two_view_transform`; ratio
    (0.8, 1.25)) alone; no flips, no colour, no affine moves (they cost pooled 20-NN here).
    Normalisation comes after, from the dataset.
    """
    from torchvision.transforms import v2

    size = _size(image_size)
    if crop_scale is None:
        crop_scale = (0.3, 1.0) if natural else (0.5, 1.0)
    scale = _scale("crop_scale", crop_scale)
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels must be 1 or 3, got {num_channels!r}")
    if natural:
        steps = [
            v2.RandomResizedCrop(size, scale=scale, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        ]
        if num_channels == 3:
            steps.append(v2.RandomGrayscale(p=0.2))
    else:
        steps = [v2.RandomResizedCrop(size, scale=scale, ratio=(0.8, 1.25), antialias=True)]
    return v2.Compose(steps)


def two_view_transform(
    image_size: int | tuple[int, int],
    natural: bool = True,
    crop_scale: tuple[float, float] | None = None,
    *,
    num_channels: int = 3,
) -> TwoViews:
    """Two independent draws of :func:`augmented_view` of one image. Digits default to gentle
    crops, scale (0.85, 1.0): C-JEPA's teacher scored pooled 20-NN 0.478 / 0.624 / 0.680 /
    0.727 after 3 epochs of mnist5k (seed 0) at scales from 0.3 / 0.5 / 0.7 / 0.85 to 1.0, and
    0.715 at 0.85 with seed 1 (docs/results.md, "The digit crops"). LeJEPA's views keep
    (0.5, 1.0)."""
    if crop_scale is None and not natural:
        crop_scale = TWO_VIEW_DIGIT_CROP
    return TwoViews(augmented_view(image_size, natural, crop_scale, num_channels=num_channels))


def local_view_size(
    image_size: int | tuple[int, int], patch_size: int, resolution: float
) -> tuple[int, int]:
    """The pixel size of LeJEPA's local views: ``resolution`` times the global side, rounded to
    whole patches (at least one): ``round(resolution * side / patch) * patch`` per side. The
    paper encodes 224-px global views and 96-px local ones (resolution 0.43); at 0.5 a 28-px
    digit's local views are 16 px (4 x 4 patches of 4 px, a third of the 7 x 7 tokens)."""
    patch_size = int_at_least("patch_size", patch_size, 1)
    if not 0 < resolution <= 1:
        raise ValueError(f"resolution must be in (0, 1], got {resolution!r}")
    return tuple(
        max(1, math.floor(resolution * side / patch_size + 0.5)) * patch_size
        for side in _size(image_size)
    )


def multi_view_transform(
    image_size: int | tuple[int, int],
    natural: bool = True,
    global_scale: tuple[float, float] | None = None,
    local_scale: tuple[float, float] = (0.1, 0.4),
    *,
    local_views: int = 2,
    local_size: int | tuple[int, int] | None = None,
    num_channels: int = 3,
) -> Views:
    """LeJEPA's views: 2 global views (:func:`augmented_view` at ``global_scale``), then
    ``local_views`` local ones (the same pipeline on small crops, ``local_scale``, resized to
    ``local_size``; None: the global size)."""
    if isinstance(local_views, bool) or not isinstance(local_views, int) or local_views < 0:
        raise ValueError(f"local_views must be an int >= 0, got {local_views!r}")
    view = augmented_view(image_size, natural, global_scale, num_channels=num_channels)
    local = augmented_view(
        image_size if local_size is None else local_size,
        natural,
        _scale("local_scale", local_scale),
        num_channels=num_channels,
    )
    return Views(view, view, *([local] * local_views))


def with_views(dataset: Dataset, make_transform: Callable[[Any], Callable]) -> Dataset:
    """The same images with the transform ``make_transform(base)`` (``base``: the plain
    dataset, for its image size, channels and kind) yielding ``(view or views, label)``, each
    view normalised. Shares the image storage and pickles (DataLoader workers). A Subset stays
    a Subset with the same indices."""
    if isinstance(dataset, Subset):
        return Subset(with_views(dataset.dataset, make_transform), dataset.indices)
    base = _unwrap(dataset)
    if base.transform is not None:
        raise ValueError(
            f"dataset already has a transform ({base.transform!r}); pass the plain dataset from "
            "make_datasets"
        )
    return base.with_transform(make_transform(base))


def with_two_views(
    dataset: Dataset, natural: bool | None = None, crop_scale: tuple[float, float] | None = None
) -> Dataset:
    """The same images yielding ``((view_a, view_b), label)``, each view normalised.

    ``natural`` defaults to the dataset's own (False for mnist5k / mnist / fashion_mnist /
    digits).
    """
    return with_views(
        dataset,
        lambda base: two_view_transform(
            base.image_size,
            natural=base.natural if natural is None else natural,
            crop_scale=crop_scale,
            num_channels=base.num_channels,
        ),
    )


def with_crop(dataset: Dataset, crop_scale: tuple[float, float] | None = None) -> Dataset:
    """The same images yielding ``(crop, label)``: I-JEPA's single view, :func:`crop_view`
    (scale (0.3, 1.0) when ``crop_scale`` is None)."""
    scale = (0.3, 1.0) if crop_scale is None else crop_scale
    return with_views(dataset, lambda base: crop_view(base.image_size, scale))


def with_multi_views(
    dataset: Dataset,
    *,
    local_views: int,
    global_scale: tuple[float, float] | None = None,
    local_scale: tuple[float, float] = (0.1, 0.4),
    local_size: int | tuple[int, int] | None = None,
) -> Dataset:
    """The same images yielding ``((global_a, global_b, local_1, ...), label)``:
    :func:`multi_view_transform` with the dataset's own kind (digits or natural); local views
    ``local_size`` pixels (None: the dataset's size)."""
    return with_views(
        dataset,
        lambda base: multi_view_transform(
            base.image_size,
            natural=base.natural,
            global_scale=global_scale,
            local_scale=local_scale,
            local_views=local_views,
            local_size=local_size,
            num_channels=base.num_channels,
        ),
    )
