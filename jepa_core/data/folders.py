"""Image folders: a ``root/train/<class>/*`` + ``root/test/<class>/*`` tree, and its cache.

A split is decoded once into a uint8 ``[N, 3, H, W]`` tensor saved under ``data_dir("cache")``
(keyed by the split folder, image size and file count; rebuilt when the tree changed) and
loaded from there next time; a tree too large to hold in memory is decoded file by file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_core import paths

from .catalog import IMAGENET_MEAN, IMAGENET_STD
from .datasets import NormalizedImageDataset, TensorImageDataset, _check_image_size, _resize

IMAGEFOLDER_CACHE_MAX_FILES = 200_000
_CACHE_FORMAT = 1
_LAYOUT = "root/train/<class>/<image> and root/test/<class>/<image>"


class ImageFileDataset(NormalizedImageDataset):
    """An image tree decoded file by file (for trees too large to cache in memory)."""

    def __init__(
        self,
        files: Sequence[str],
        labels: Sequence[int],
        classes: Sequence[str],
        image_size: int | None,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        name: str = "imagefolder",
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        if len(files) == 0:
            raise ValueError("files is empty: an image tree needs at least one image")
        size = _check_image_size(image_size)
        # Without image_size the first image sets the size; a differing one raises on access.
        out_size = (size, size) if size else tuple(_decode_rgb(files[0]).shape[-2:])
        super().__init__(
            classes, mean, std, 3, out_size, name=name, natural=True, transform=transform
        )
        self.files = list(files)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self._fixed_size = size is not None

    def _raw_image(self, index: int) -> torch.Tensor:
        image = _decode_rgb(self.files[index]).float().div_(255)
        if not self._fixed_size and tuple(image.shape[-2:]) != self.image_size:
            raise ValueError(
                f"{self.files[index]} is {tuple(image.shape[-2:])}, not {self.image_size} like the "
                "first image: pass image_size to resize every image to one size"
            )
        return image


def _decode_rgb(path: str) -> torch.Tensor:
    """One image file as uint8 ``[3, H, W]`` (grayscale / RGBA converted to RGB, like
    ImageFolder's PIL loader; torchvision.io's decoders are deprecated since 0.29)."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def _scan_tree(split_dir: Path) -> tuple[list[str], list[str], list[int]]:
    """``(classes, files, labels)`` of a ``<split>/<class>/*`` tree, in ImageFolder's order."""
    from torchvision.datasets import ImageFolder

    try:
        tree = ImageFolder(str(split_dir))  # lists files only; nothing is decoded here
    except FileNotFoundError as err:  # no class folder, or a class folder without images
        raise FileNotFoundError(
            f"imagefolder: {split_dir}: {err}; expected layout {_LAYOUT}"
        ) from err
    return list(tree.classes), [s[0] for s in tree.samples], [s[1] for s in tree.samples]


def _imagefolder(
    root: Path, image_size: int | None, cache: bool | None
) -> tuple[NormalizedImageDataset, NormalizedImageDataset]:
    if not root.is_dir():
        raise FileNotFoundError(
            f"imagefolder root {root} does not exist; expected layout {_LAYOUT}"
        )
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise FileNotFoundError(
                f"imagefolder: missing folder {root / split}; expected layout {_LAYOUT}"
            )
    scans = {split: _scan_tree(root / split) for split in ("train", "test")}
    if scans["train"][0] != scans["test"][0]:
        raise ValueError(
            f"imagefolder {root}: train classes {scans['train'][0]} differ from test classes "
            f"{scans['test'][0]}"
        )
    out = []
    for split in ("train", "test"):
        classes, files, labels = scans[split]
        use_cache = cache if cache is not None else len(files) <= IMAGEFOLDER_CACHE_MAX_FILES
        if use_cache:
            out.append(_cached_tree(root / split, classes, files, labels, image_size))
        else:
            out.append(ImageFileDataset(files, labels, classes, image_size))
    return out[0], out[1]


def imagefolder_cache_file(
    split_dir: str | os.PathLike, image_size: int | None, file_count: int
) -> Path:
    """The cache file of one split: ``data_dir("cache")/imagefolder-<folder>-<size>-<key>.pt``,
    key = sha1 of the resolved split path, image_size and file count."""
    split_dir = Path(split_dir).resolve()
    key = hashlib.sha1(f"{split_dir}|{image_size}|{file_count}".encode()).hexdigest()[:16]
    label = f"{split_dir.parent.name}-{split_dir.name}"
    return paths.data_dir("cache") / f"imagefolder-{label}-{image_size or 'native'}-{key}.pt"


def _cached_tree(
    split_dir: Path, classes: list[str], files: list[str], labels: list[int], image_size: int | None
) -> TensorImageDataset:
    relative = [os.path.relpath(f, split_dir) for f in files]
    cache_file = imagefolder_cache_file(split_dir, image_size, len(files))
    images = None
    if cache_file.exists():
        stored = torch.load(cache_file, weights_only=True)
        # Same key but another tree (files renamed or moved between classes): rebuild.
        if (
            stored.get("format") == _CACHE_FORMAT
            and stored["files"] == relative
            and stored["classes"] == classes
            and stored["labels"].tolist() == labels
        ):
            images = stored["images"]
    if images is None:
        images = _decode_tree(files, image_size)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".tmp{os.getpid()}")
        payload = {
            "format": _CACHE_FORMAT,
            "root": str(split_dir.resolve()),
            "image_size": image_size,
            "files": relative,
            "classes": classes,
            "labels": torch.tensor(labels, dtype=torch.long),
            "images": images,
        }
        torch.save(payload, partial)
        os.replace(partial, cache_file)  # atomic: a killed run never leaves half a cache
    dataset = TensorImageDataset(
        images, labels, classes, IMAGENET_MEAN, IMAGENET_STD, name="imagefolder", natural=True
    )
    dataset.cache_file = cache_file
    return dataset


def _decode_tree(files: list[str], image_size: int | None) -> torch.Tensor:
    """All files as one uint8 ``[N, 3, S, S]`` tensor (resized when ``image_size`` is given).

    ``files`` is never empty: ImageFolder's scan refuses a class folder without images.
    """
    first = _decode_rgb(files[0])
    size = (image_size, image_size) if image_size else tuple(first.shape[-2:])
    out = torch.empty((len(files), 3, *size), dtype=torch.uint8)
    for i, path in enumerate(files):
        image = first if i == 0 else _decode_rgb(path)
        if tuple(image.shape[-2:]) != size:
            if image_size is None:
                raise ValueError(
                    f"{path} is {tuple(image.shape[-2:])}, not {size} like {files[0]}: pass "
                    "image_size to resize every image to one size"
                )
            image = _resize(image.float(), size).round_().clamp_(0, 255).to(torch.uint8)
        out[i] = image
    return out
