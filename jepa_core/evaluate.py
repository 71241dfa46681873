"""How good are the features: k-NN and linear-probe accuracy on frozen embeddings.

Weighted k-NN (DINO's ``eval_knn``, Caron et al., ICCV 2021; Wu et al. 2018), features
L2-normalised:

    s_j     = cos(x, x_j)                     for the k training rows most similar to x
    score_c = sum_{j in top-k, y_j = c} exp(s_j / T)
    y_hat   = argmax_c score_c

Linear probe: StandardScaler, then multinomial logistic regression (lbfgs) on the frozen
features, accuracy on the test split.

Loaders yield ``(images, labels)``; when ``images`` is a pair or list of views (the training
loader of a two-view method), the first view is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checks import int_at_least

POOL_KINDS = ("mean", "flatten")
# Images per forward pass where only features are needed (k-NN banks, monitor rows, probes).
# Measured for the `cpu` model on a 2-core CPU (docs/results.md, "The budget, machine by
# machine"): one 512-image batch 0.58 s, four of 128 0.36 s; a 5,000-image k-NN pass 4.2 s at
# 256, 3.9 s at 128.
FEATURE_BATCH = 128


def _first_view(images: object) -> torch.Tensor:
    if isinstance(images, (tuple, list)):
        if len(images) == 0:
            raise ValueError("the loader yielded an empty tuple of views as images")
        images = images[0]
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"the loader's images must be a tensor or a tuple of tensors, "
            f"got {type(images).__name__}"
        )
    return images


def _split_batch(batch: object) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(
            f"the loader must yield (images, labels) pairs, got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    images, labels = batch
    return _first_view(images), torch.as_tensor(labels).reshape(-1).to(torch.int64)


def _concat(
    features: list[torch.Tensor], labels: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    if not features:
        raise ValueError("loader yielded no batches")
    return torch.cat(features), torch.cat(labels)


def encoder_device(encoder: nn.Module) -> torch.device:
    """The device of ``encoder``'s first parameter; CPU for a parameterless encoder."""
    first_param = next(encoder.parameters(), None)
    return first_param.device if first_param is not None else torch.device("cpu")


@contextmanager
def frozen(encoder: nn.Module) -> Iterator[nn.Module]:
    """``encoder`` in eval mode under ``torch.inference_mode`` for the ``with`` block; on exit,
    even after an error, every submodule gets its previous train/eval mode back."""
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    modes = [(module, module.training) for module in encoder.modules()]
    encoder.eval()
    try:
        with torch.inference_mode():
            yield encoder
    finally:
        for module, was_training in modes:
            module.training = was_training


def check_tokens(tokens: object) -> torch.Tensor:
    """``tokens`` itself when it is token features ``[B, N, D]``, else a ValueError."""
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"encoder must return token features [B, N, D], got {shape}")
    return tokens


@contextmanager
def _rng_untouched() -> Iterator[None]:
    """Restore the global (CPU) torch RNG on exit. A ``DataLoader`` without a generator of its
    own draws a base seed from that RNG on every pass, and a training loader with
    ``num_workers=0`` draws its augmentations from it: without this, an evaluation in the
    middle of an epoch (a training callback's, the accuracy-against-time benchmark's) would
    change every augmentation after it, and the run's weights would depend on when it was
    evaluated."""
    with torch.random.fork_rng(devices=[]):
        yield


def extract_features(
    encoder: nn.Module,
    loader: Iterable,
    pool: str = "mean",
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen features of every image in ``loader``: ``(features [M, F] float32 CPU, labels
    [M] int64 CPU)``.

    ``encoder(images)`` must return token features ``[B, N, D]``; ``pool="mean"`` averages the
    tokens (I-JEPA's evaluation, issues #36/#55 of facebookresearch/ijepa) to ``[B, D]``,
    ``pool="flatten"`` concatenates them to ``[B, N * D]``. Runs in eval mode under
    ``torch.inference_mode`` on ``device`` (default: the encoder's parameter device, CPU for a
    parameterless encoder), then restores every submodule's previous train/eval mode, and
    leaves the global torch RNG as it found it (:func:`_rng_untouched`).
    """
    if pool not in POOL_KINDS:
        raise ValueError(f"pool must be one of {POOL_KINDS}, got {pool!r}")
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    device = torch.device(device) if device is not None else encoder_device(encoder)
    features, labels = [], []
    with frozen(encoder), _rng_untouched():
        for batch in loader:
            images, batch_labels = _split_batch(batch)
            tokens = check_tokens(encoder(images.to(device, non_blocking=True)))
            pooled = tokens.mean(dim=1) if pool == "mean" else tokens.flatten(1)
            features.append(pooled.float().cpu())
            labels.append(batch_labels.cpu())
    return _concat(features, labels)


def raw_pixel_features(loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw-pixel baseline: every image flattened, ``(features [M, C*H*W] float32 CPU,
    labels [M] int64 CPU)``; same loader conventions as ``extract_features``."""
    features, labels = [], []
    with _rng_untouched():
        for batch in loader:
            images, batch_labels = _split_batch(batch)
            features.append(images.detach().flatten(1).float().cpu())
            labels.append(batch_labels.cpu())
    return _concat(features, labels)


def _as_tensor(name: str, value: object) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value.detach()
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _check_features(name: str, x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [M, F], got shape {tuple(x.shape)}")
    if not (
        x.is_floating_point()
        or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    # float64 stays (reference computations); lower precisions are lifted to float32.
    return x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)


def _check_labels(name: str, y: torch.Tensor, rows: int, rows_name: str) -> torch.Tensor:
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape[0] != rows:
        raise ValueError(
            f"{name} must have one label per row of {rows_name} ({rows}), got {y.shape[0]}"
        )
    y = y.to(torch.int64)
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name} must be non-negative class indices, got minimum {int(y.min())}")
    return y


def knn_predict(
    train_x: torch.Tensor | np.ndarray,
    train_y: torch.Tensor | np.ndarray,
    test_x: torch.Tensor | np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
    *,
    center: bool = False,
) -> torch.Tensor:
    """Weighted k-NN labels for ``test_x`` (int64, on the features' device).

    Cosine similarity; each test row votes over its ``k`` most similar training rows with
    weights ``exp(sim / temperature)``; ties between classes go to the lowest class index.
    ``chunk_size`` test rows are compared with all training rows at a time, so memory is
    ``chunk_size x len(train_x)``. ``center=True`` subtracts the training mean from both
    splits before normalising (the usual raw-pixel baseline; DINO does not centre). Tensors
    must share a device; numpy arrays go to that device (CPU if all are arrays).
    """
    originals = {"train_x": train_x, "train_y": train_y, "test_x": test_x}
    values = {name: _as_tensor(name, value) for name, value in originals.items()}
    devices = {name: v.device for name, v in originals.items() if isinstance(v, torch.Tensor)}
    if len(set(devices.values())) > 1:
        raise ValueError(f"train_x, train_y and test_x must be on one device, got {devices}")
    device = next(iter(devices.values()), torch.device("cpu"))
    train_x = _check_features("train_x", values["train_x"].to(device))
    test_x = _check_features("test_x", values["test_x"].to(device))
    train_y = _check_labels("train_y", values["train_y"].to(device), train_x.shape[0], "train_x")
    if test_x.shape[1] != train_x.shape[1]:
        raise ValueError(
            f"test_x and train_x must have the same feature size, "
            f"got {test_x.shape[1]} and {train_x.shape[1]}"
        )
    k = int_at_least("k", k, 1)
    if k > train_x.shape[0]:
        raise ValueError(
            f"k must be at most the number of training rows ({train_x.shape[0]}), got k={k}"
        )
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature must be a real number > 0, got {temperature!r}")
    if not (math.isfinite(float(temperature)) and float(temperature) > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    chunk_size = int_at_least("chunk_size", chunk_size, 1)
    if not isinstance(center, bool):
        raise TypeError(f"center must be a bool, got {center!r} ({type(center).__name__})")

    if center:
        mean = train_x.mean(dim=0, keepdim=True)
        train_x, test_x = train_x - mean, test_x - mean
    train_x = F.normalize(train_x, dim=1)
    test_x = F.normalize(test_x.to(train_x.dtype), dim=1)
    num_classes = int(train_y.max()) + 1
    predictions = []
    for begin in range(0, test_x.shape[0], chunk_size):
        similarity = test_x[begin : begin + chunk_size] @ train_x.T
        top_sim, top_index = similarity.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(similarity.shape[0], num_classes, dtype=weights.dtype, device=device)
        scores.scatter_add_(1, train_y[top_index], weights)
        predictions.append(scores.argmax(dim=1))
    if not predictions:
        return torch.empty(0, dtype=torch.int64, device=device)
    return torch.cat(predictions)


def knn_accuracy(
    train_x: torch.Tensor | np.ndarray,
    train_y: torch.Tensor | np.ndarray,
    test_x: torch.Tensor | np.ndarray,
    test_y: torch.Tensor | np.ndarray,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
    *,
    center: bool = False,
) -> float:
    """Share of ``test_y`` the weighted k-NN of ``knn_predict`` gets right, in [0, 1]."""
    predictions = knn_predict(train_x, train_y, test_x, k, temperature, chunk_size, center=center)
    test_y = _check_labels("test_y", _as_tensor("test_y", test_y), predictions.shape[0], "test_x")
    if test_y.numel() == 0:
        raise ValueError("test_x must have at least one row to measure an accuracy, got 0")
    return float((predictions == test_y.to(predictions.device)).double().mean())


def _as_numpy(name: str, value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def linear_probe_accuracy(
    train_x: torch.Tensor | np.ndarray,
    train_y: torch.Tensor | np.ndarray,
    test_x: torch.Tensor | np.ndarray,
    test_y: torch.Tensor | np.ndarray,
    *,
    max_iter: int = 1000,
    C: float = 1.0,
    seed: int = 0,
) -> float:
    """Test accuracy of StandardScaler + LogisticRegression(lbfgs, multinomial for more than two
    classes, the scikit-learn default) fitted on the training features; in [0, 1].

    Convergence warnings from scikit-learn are left visible.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    arrays = {
        name: _as_numpy(name, value)
        for name, value in (
            ("train_x", train_x),
            ("train_y", train_y),
            ("test_x", test_x),
            ("test_y", test_y),
        )
    }
    for name in ("train_x", "test_x"):
        if arrays[name].ndim != 2:
            raise ValueError(f"{name} must be 2-D [M, F], got shape {arrays[name].shape}")
    for name, rows in (("train_y", "train_x"), ("test_y", "test_x")):
        if arrays[name].shape != (arrays[rows].shape[0],):
            raise ValueError(
                f"{name} must be 1-D with one label per row of {rows} ({arrays[rows].shape[0]}), "
                f"got shape {arrays[name].shape}"
            )
    if arrays["test_x"].shape[1] != arrays["train_x"].shape[1]:
        raise ValueError(
            f"test_x and train_x must have the same feature size, got "
            f"{arrays['test_x'].shape[1]} and {arrays['train_x'].shape[1]}"
        )
    if arrays["test_x"].shape[0] == 0:
        raise ValueError("test_x must have at least one row to measure an accuracy, got 0")
    max_iter = int_at_least("max_iter", max_iter, 1)
    seed = int_at_least("seed", seed, 0)
    if (
        isinstance(C, bool)
        or not isinstance(C, Real)
        or not (math.isfinite(float(C)) and float(C) > 0)
    ):
        raise ValueError(f"C must be a finite real number > 0, got {C!r}")

    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=float(C), max_iter=max_iter, solver="lbfgs", random_state=seed),
    )
    probe.fit(arrays["train_x"], arrays["train_y"])
    return float(probe.score(arrays["test_x"], arrays["test_y"]))
