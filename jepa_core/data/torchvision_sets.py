"""torchvision's sets (MNIST, Fashion-MNIST, CIFAR-10/100, STL-10) held as uint8 tensors.

Read from ``root``; downloaded only when asked (``download=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .catalog import NON_NATURAL_NAMES, NORMALIZATION
from .datasets import TensorImageDataset


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
