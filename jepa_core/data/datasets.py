"""The workbook's dataset classes: an image in [0, 1], resized or transformed, then normalised.

Every dataset is a torch ``Dataset`` of ``(image, label)``: ``image`` float32 ``[C, H, W]``,
normalised per channel, ``x_norm = (x - mean) / std`` with ``x`` in [0, 1]; ``label`` an int.
Each one also carries ``classes``, ``labels`` (a LongTensor of all labels), ``num_channels``,
``image_size`` ``(H, W)``, ``mean``, ``std`` and ``natural`` (photographs vs. digits), so the
trainer builds an encoder with the right ``in_chans`` / ``img_size`` without guessing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from .catalog import DATASET_NAMES, NORMALIZATION


def _check_image_size(image_size: Any, argument: str = "image_size") -> int | None:
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise TypeError(f"{argument} must be a positive int or None, got {image_size!r}")
    if image_size < 1:
        raise ValueError(f"{argument} must be a positive int or None, got {image_size}")
    return image_size


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize one float image ``[C, H, W]`` (antialiased bilinear, so shrinking does not alias)."""
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(
        image[None], size=size, mode="bilinear", antialias=True, align_corners=False
    )[0]


class NormalizedImageDataset(Dataset):
    """Base of the workbook's datasets: raw image in [0, 1] -> (transform | resize) -> normalise.

    Subclasses implement ``_raw_image(index)`` (float ``[C, H, W]`` in [0, 1]) and set
    ``labels``. A ``transform`` sees the raw image and is responsible for the output size
    (``image_size`` is then not applied); when it returns a tuple (two views), each element
    is normalised.
    """

    labels: torch.Tensor

    def __init__(
        self,
        classes: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        num_channels: int,
        image_size: tuple[int, int],
        *,
        name: str,
        natural: bool,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        if len(mean) != num_channels or len(std) != num_channels:
            raise ValueError(
                f"mean and std need one value per channel ({num_channels}), got mean={tuple(mean)} "
                f"std={tuple(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.classes = [str(c) for c in classes]
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.num_channels = int(num_channels)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.name = name
        self.natural = bool(natural)
        self.transform = transform
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)

    def _raw_image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self._mean) / self._std

    def __getitem__(self, index: int):
        image = self._raw_image(index)
        label = int(self.labels[index])
        if self.transform is None:
            return self.normalize(_resize(image, self.image_size)), label
        out = self.transform(image)
        if isinstance(out, (tuple, list)):
            return tuple(self.normalize(view) for view in out), label
        return self.normalize(out), label

    def with_transform(self, transform: Callable[[torch.Tensor], Any] | None):
        """A shallow copy with another transform; the image storage is shared, not copied."""
        other = copy.copy(self)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        other.transform = transform
        return other

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"classes={len(self.classes)}, "
            f"channels={self.num_channels}, image_size={self.image_size})"
        )


class TensorImageDataset(NormalizedImageDataset):
    """An in-memory image set: uint8 ``[N, C, H, W]`` (0..255) or float in [0, 1].

    ``image_size`` (int or ``(H, W)``) resizes on the fly, so memory stays that of the stored
    images (CIFAR-10's 50k x 3 x 32 x 32 uint8 is 150 MB).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | Sequence[int],
        classes: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        transform: Callable[[torch.Tensor], Any] | None = None,
        *,
        image_size: int | tuple[int, int] | None = None,
        name: str = "tensor",
        natural: bool = True,
    ) -> None:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            if not images.is_floating_point():
                raise TypeError(
                    f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}"
                )
            if images.numel() and (images.min() < 0 or images.max() > 1):
                raise ValueError(
                    f"float images must lie in [0, 1], got range [{float(images.min())}, "
                    f"{float(images.max())}]"
                )
            images = images.float()
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must be 1-D with one entry per image ({images.shape[0]}), got shape "
                f"{tuple(labels.shape)}"
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"labels must lie in [0, {len(classes) - 1}] (one per class), got range "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        if isinstance(image_size, int) or image_size is None:
            size = _check_image_size(image_size)
            out_size = (size, size) if size else tuple(images.shape[-2:])
        else:
            out_size = tuple(image_size)
        super().__init__(
            classes,
            mean,
            std,
            images.shape[1],
            out_size,
            name=name,
            natural=natural,
            transform=transform,
        )
        self.images = images
        self.labels = labels

    def _raw_image(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.float().div_(255) if image.dtype == torch.uint8 else image


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data."""

    name: str
    num_channels: int
    image_size: tuple[int, int]
    num_classes: int
    natural: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _unwrap(dataset: Dataset) -> NormalizedImageDataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if not isinstance(dataset, NormalizedImageDataset):
        raise TypeError(
            "dataset must come from make_datasets (a NormalizedImageDataset or a Subset of one), "
            f"got {type(dataset).__name__}"
        )
    return dataset


def dataset_info(dataset: Dataset) -> DatasetInfo:
    """Channels, image size, class count and normalisation of a dataset (or a Subset of one)."""
    base = _unwrap(dataset)
    return DatasetInfo(
        name=base.name,
        num_channels=base.num_channels,
        image_size=base.image_size,
        num_classes=len(base.classes),
        natural=base.natural,
        mean=base.mean,
        std=base.std,
    )


def denormalize(images: torch.Tensor, dataset: Dataset | str) -> torch.Tensor:
    """Undo the normalisation for drawing: ``x * std + mean``, clamped to [0, 1].

    ``images`` is ``[C, H, W]`` or ``[B, C, H, W]``; ``dataset`` a dataset or a dataset name.
    """
    if isinstance(dataset, str):
        if dataset not in NORMALIZATION:
            raise ValueError(f"dataset name {dataset!r} unknown; valid: {', '.join(DATASET_NAMES)}")
        mean, std = NORMALIZATION[dataset]
    else:
        base = _unwrap(dataset)
        mean, std = base.mean, base.std
    if not isinstance(images, torch.Tensor) or images.ndim not in (3, 4):
        raise ValueError(
            f"images must be a tensor [C, H, W] or [B, C, H, W], "
            f"got {getattr(images, 'shape', type(images))}"
        )
    if images.shape[-3] != len(mean):
        raise ValueError(f"images have {images.shape[-3]} channels, the dataset has {len(mean)}")
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images * s + m).clamp(0, 1)
