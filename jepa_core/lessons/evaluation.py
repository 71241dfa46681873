"""Evaluate trained encoders side by side: k-NN at several k and a linear probe on frozen
features of each method's target and context encoders, the same encoder at initialisation and
raw pixels; per-class accuracy; a 2-D projection of the features.

    results = {m: train_or_resume(m, overrides, nb.out) for m in methods}
    encoders = {("init", "target"): initial_encoder(results["ijepa"].config), ...}
    features = feature_sets(encoders, train_loader, test_loader, pools=("mean", "flatten"))
    table = accuracy_table(features, k_values=(1, 5, 20, 50))

Features (``jepa_core.evaluate``): ``mean`` averages the encoder's tokens (I-JEPA's evaluation,
facebookresearch/ijepa issues #36/#55), ``flatten`` concatenates them (``N * D`` numbers, so
the spatial layout survives), ``pixels`` is the flattened image. k-NN: DINO's weighted vote on
cosine similarity (Caron et al., ICCV 2021), ``exp(s / T)`` over the k nearest training rows;
``centred`` rows subtract the training mean first (the usual raw-pixel baseline). Linear probe:
StandardScaler + multinomial logistic regression on the training split's features.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from torch.utils.data import DataLoader

from ..build import build_run, fixed_subset, store_config
from ..config import METHODS, Config, load_config
from ..data import make_datasets
from ..evaluate import (
    FEATURE_BATCH,
    POOL_KINDS,
    check_tokens,
    extract_features,
    knn_accuracy,
    knn_predict,
    linear_probe_accuracy,
    raw_pixel_features,
)
from ..train import TrainResult, train


@dataclass(frozen=True)
class FeatureSplit:
    """Frozen features of one encoder and pool on the training and test split."""

    method: str
    encoder: str
    pool: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    centred: bool = False  # k-NN subtracts the training mean first

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.method, self.encoder, self.pool)


# --- training ------------------------------------------------------------------------------
def train_or_resume(
    method: str,
    overrides: Mapping[str, Any] | None,
    out: str | Path,
    *,
    progress: bool = False,
) -> TrainResult:
    """Train ``method`` (a preset of ``jepa_core.config``) into the shared run store ``out``
    with ``train.resume=True``. The folder is ``build.shared_run_dir``: one per config and
    library source, so notebooks 02, 04 and 05 asking for the same run share it, a finished run
    returns at once, an interrupted one continues from its last epoch, and another config (a
    smoke run, other overrides) or another version of the library gets its own folder instead
    of overwriting this one."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(
            f"overrides must be a dict of dotted config keys or None; "
            f"got {type(overrides).__name__}"
        )
    cfg = store_config(method, {**(overrides or {}), "train.resume": True}, out)
    return train(cfg, progress=progress)


def initial_encoder(cfg: Config) -> nn.Module:
    """The encoder a run with ``cfg`` starts from: same seed, same config, freshly built.

    At initialisation the target encoder is a copy of the context encoder, so one stands for
    both. Returned in eval mode on CPU.
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a jepa_core.config.Config; got {type(cfg).__name__}")
    return build_run(load_config(cfg, {"train.device": "cpu"})).target_encoder.eval()


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    """True when two modules hold identical parameters and buffers (names, shapes, values)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa
    )


# --- features ------------------------------------------------------------------------------
def evaluation_loaders(
    cfg: Config, batch_size: int = FEATURE_BATCH, test_samples: int | None = None
) -> tuple[DataLoader, DataLoader]:
    """Un-augmented ``(train, test)`` loaders of the dataset ``cfg`` names, in a fixed order.

    The training split is the whole training set (not the run's ``data.train_samples``
    subset), capped at ``eval.train_samples`` rows drawn with a fixed seed (0), as the
    trainer's k-NN memory bank is. ``test_samples`` caps the test split the same way (smoke
    runs); None keeps all of it.
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a jepa_core.config.Config; got {type(cfg).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    if test_samples is not None and (
        isinstance(test_samples, bool) or not isinstance(test_samples, int) or test_samples < 1
    ):
        raise ValueError(f"test_samples must be an int >= 1 or None; got {test_samples!r}")
    train_set, test_set = make_datasets(
        cfg.data.name,
        root=cfg.data.root,
        download=cfg.data.download,
        image_size=cfg.data.image_size,
    )
    train_set = fixed_subset(train_set, cfg.eval.train_samples)
    test_set = fixed_subset(test_set, test_samples)
    return (
        DataLoader(train_set, batch_size=batch_size, shuffle=False),
        DataLoader(test_set, batch_size=batch_size, shuffle=False),
    )


class _MeanAndTokens(nn.Module):
    """Prepends the mean token to the tokens, so one forward pass gives both pools."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.dim: int | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = check_tokens(self.encoder(images))
        self.dim = tokens.shape[-1]
        return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)


def _pooled_features(
    encoder: nn.Module, loader: Iterable, pools: Sequence[str]
) -> dict[str, tuple]:
    wrapped = _MeanAndTokens(encoder)
    both, labels = extract_features(wrapped, loader, pool="flatten")
    dim = wrapped.dim
    out = {}
    if "mean" in pools:
        out["mean"] = (both[:, :dim].contiguous(), labels)
    if "flatten" in pools:
        out["flatten"] = (both[:, dim:].contiguous(), labels)
    return out


def _check_pools(pools: Sequence[str]) -> tuple[str, ...]:
    if isinstance(pools, str) or not isinstance(pools, Sequence) or not pools:
        raise ValueError(f"pools must be a non-empty list drawn from {POOL_KINDS}; got {pools!r}")
    bad = [p for p in pools if p not in POOL_KINDS]
    if bad or len(set(pools)) != len(pools):
        raise ValueError(f"pools must be distinct values from {POOL_KINDS}; got {list(pools)!r}")
    return tuple(pools)


def feature_sets(
    encoders: Mapping[tuple[str, str], nn.Module],
    train_loader: Iterable,
    test_loader: Iterable,
    pools: Sequence[str] = POOL_KINDS,
) -> dict[tuple[str, str, str], FeatureSplit]:
    """Frozen features of every encoder under every pool, on both splits.

    ``encoders`` maps ``(method, encoder)`` (e.g. ``("ijepa", "target")``) to a module whose
    forward returns tokens ``[B, N, D]``; the result maps ``(method, encoder, pool)`` to a
    :class:`FeatureSplit`. Each encoder runs once per split, whatever the number of pools
    and however many keys name it (LeJEPA's one encoder is its ``target`` and its ``context``).
    """
    pools = _check_pools(pools)
    if not isinstance(encoders, Mapping) or not encoders:
        raise ValueError(
            f"encoders must be a non-empty dict {{(method, encoder): module}}; got {encoders!r}"
        )
    out: dict[tuple[str, str, str], FeatureSplit] = {}
    done: dict[int, tuple[dict, dict]] = {}  # id(encoder) -> its (train, test) features
    for key, encoder in encoders.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise ValueError(f"encoders keys must be (method, encoder) string pairs; got {key!r}")
        if id(encoder) not in done:
            done[id(encoder)] = (
                _pooled_features(encoder, train_loader, pools),
                _pooled_features(encoder, test_loader, pools),
            )
        train, test = done[id(encoder)]
        for pool in pools:
            out[(*key, pool)] = FeatureSplit(*key, pool, *train[pool], *test[pool])
    return out


def pixel_feature_sets(
    train_loader: Iterable, test_loader: Iterable
) -> dict[tuple[str, str, str], FeatureSplit]:
    """The raw-pixel baseline twice: as is and mean-centred for k-NN (same tensors)."""
    plain = FeatureSplit(
        "raw pixels",
        "-",
        "pixels",
        *raw_pixel_features(train_loader),
        *raw_pixel_features(test_loader),
    )
    centred = dataclasses.replace(plain, pool="pixels, centred", centred=True)
    return {plain.key: plain, centred.key: centred}


# --- accuracies ----------------------------------------------------------------------------
def _check_k_values(k_values: Sequence[int]) -> tuple[int, ...]:
    message = f"k_values must be a non-empty list of ints >= 1; got {k_values!r}"
    if isinstance(k_values, (str, int)) or not isinstance(k_values, Sequence) or not k_values:
        raise ValueError(message)
    if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in k_values):
        raise ValueError(message)
    return tuple(int(k) for k in k_values)


def accuracy_table(
    features: Mapping[Any, FeatureSplit],
    k_values: Sequence[int] = (1, 5, 20, 50),
    *,
    linear_probe: bool | Callable[[FeatureSplit], bool] = True,
    temperature: float = 0.07,
    probe_max_iter: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per feature split: ``method, encoder, pool, dim, knn<k>`` for every k, and
    ``linear_probe`` (NaN where not probed); accuracies in [0, 1].

    ``linear_probe``: probe every split (True), none (False), or those a predicate accepts
    (e.g. ``lambda s: s.encoder != "context"``). A k larger than the training split is an
    error, not silently clipped.
    """
    k_values = _check_k_values(k_values)
    if not (isinstance(linear_probe, bool) or callable(linear_probe)):
        raise TypeError(
            f"linear_probe must be a bool or a predicate on FeatureSplit; got {linear_probe!r}"
        )
    wants_probe = linear_probe if callable(linear_probe) else (lambda _split: linear_probe)
    if not isinstance(features, Mapping) or not features:
        raise ValueError(f"features must be a non-empty dict of FeatureSplit; got {features!r}")
    rows = []
    for split in features.values():
        if not isinstance(split, FeatureSplit):
            raise TypeError(f"features values must be FeatureSplit; got {type(split).__name__}")
        too_big = [k for k in k_values if k > len(split.train_y)]
        if too_big:
            raise ValueError(
                f"k_values {too_big} exceed the {len(split.train_y)} training rows of "
                f"{split.key}; lower k_values or raise eval.train_samples"
            )
        row: dict[str, Any] = {
            "method": split.method,
            "encoder": split.encoder,
            "pool": split.pool,
            "dim": int(split.train_x.shape[1]),
        }
        for k in k_values:
            row[f"knn{k}"] = knn_accuracy(
                split.train_x,
                split.train_y,
                split.test_x,
                split.test_y,
                k=k,
                temperature=temperature,
                center=split.centred,
            )
        row["linear_probe"] = math.nan
        if wants_probe(split):
            # One BLAS thread: on a busy 2-core machine OpenBLAS threads spin-wait for each
            # other and lbfgs on [4000, 128] took 40 s instead of 1 s (same result).
            with threadpool_limits(limits=1):
                row["linear_probe"] = linear_probe_accuracy(
                    split.train_x,
                    split.train_y,
                    split.test_x,
                    split.test_y,
                    max_iter=probe_max_iter,
                    seed=seed,
                )
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(
    table: pd.DataFrame,
    *,
    encoder: str = "target",
    k: int = 20,
    pools: Sequence[str] = ("mean", "flatten"),
) -> pd.DataFrame:
    """The headline table: rows of ``table`` with the chosen encoder (plus the ``init`` and
    ``raw pixels`` rows, whatever their encoder label) and pools, columns
    ``method, encoder, pool, knn<k>, linear_probe``."""
    column = f"knn{k}"
    if column not in table.columns:
        raise ValueError(
            f"k={k} was not measured: table has {[c for c in table.columns if c.startswith('knn')]}"
        )
    baseline = table["method"].isin(["init", "raw pixels"])
    keep = (baseline | (table["encoder"] == encoder)) & (
        table["pool"].isin(pools) | (table["method"] == "raw pixels")
    )
    if not (table["encoder"] == encoder).any():
        raise ValueError(f"encoder must be one of {sorted(set(table['encoder']))}; got {encoder!r}")
    return table.loc[keep, ["method", "encoder", "pool", column, "linear_probe"]].reset_index(
        drop=True
    )


def per_class_accuracy(
    pred: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, classes: Sequence[str]
) -> pd.DataFrame:
    """Accuracy within each true class: index ``classes``, columns ``n``, ``correct``,
    ``accuracy`` (NaN for a class with no test example)."""
    pred = np.asarray(pred.cpu() if isinstance(pred, torch.Tensor) else pred)
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if pred.ndim != 1 or y.ndim != 1 or pred.shape != y.shape:
        raise ValueError(
            f"pred and y must be 1-D of equal length; got shapes {pred.shape} and {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer) or not np.issubdtype(pred.dtype, np.integer):
        raise TypeError(
            f"pred and y must hold integer class indices; got {pred.dtype} and {y.dtype}"
        )
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError("classes must name at least one class; got []")
    for name, values in (("y", y), ("pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= len(classes)):
            raise ValueError(
                f"{name} must be class indices in [0, {len(classes) - 1}]; "
                f"got values in [{values.min()}, {values.max()}]"
            )
    n = np.bincount(y, minlength=len(classes))
    correct = np.bincount(y[pred == y], minlength=len(classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n > 0, correct / np.maximum(n, 1), np.nan)
    return pd.DataFrame(
        {"n": n, "correct": correct, "accuracy": accuracy}, index=pd.Index(classes, name="class")
    )


def knn_per_class(
    split: FeatureSplit, classes: Sequence[str], k: int = 20, temperature: float = 0.07
) -> pd.DataFrame:
    """``per_class_accuracy`` of the weighted k-NN on one feature split."""
    pred = knn_predict(
        split.train_x,
        split.train_y,
        split.test_x,
        k=k,
        temperature=temperature,
        center=split.centred,
    )
    return per_class_accuracy(pred, split.test_y, classes)
