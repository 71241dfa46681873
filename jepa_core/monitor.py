"""Collapse metrics on a batch of embeddings z [N, D] (rows are samples).

    rankme      = exp(-sum_k p_k log p_k),  p_k = sigma_k / sum(sigma) + 1e-7
                  sigma the singular values of z (Garrido et al., ICML 2023)
    std         = per-dimension standard deviation over the batch (unbiased); mean and min
    mean_cosine = mean of cos(z_i, z_j) over the N(N-1) ordered pairs i != j
    norm_mean   = mean of ||z_i||_2

A healthy embedding spreads over many directions (rankme near D, std away from 0, mean_cosine
near 0); a collapsed one has rankme near 1, std near 0 and mean_cosine near 1.

A run's monitor pass (:func:`monitor_stats`, :func:`knn_eval`) measures them, and the k-NN
accuracy, on the encoders of a run built by ``jepa_core.build``.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import distributed
from .device import autocast
from .evaluate import extract_features, knn_accuracy

if TYPE_CHECKING:
    from .build import Run


def _as_cpu_float64(name: str, z: object) -> torch.Tensor:
    """A detached float64 CPU copy of a 2-D tensor or array (float64: small singular values and
    long sums stay accurate; CPU: the metrics never take accelerator memory)."""
    if isinstance(z, np.ndarray):
        z = torch.from_numpy(z)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(z).__name__}")
    if z.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [N, D] (pool tokens first), got shape {tuple(z.shape)}"
        )
    if z.is_complex() or z.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {z.dtype}")
    return z.detach().to(device="cpu", dtype=torch.float64)


def _rankme_of(z: torch.Tensor, eps: float) -> float:
    if not bool(torch.isfinite(z).all()):
        # A diverged run: report it as nan rather than crash the loop that logs it.
        return math.nan
    sigma = torch.linalg.svdvals(z)
    total = sigma.sum()
    if total <= 0:
        # The zero matrix: sigma / sum(sigma) is 0/0. Report 1.0, RankMe's value for the most
        # collapsed non-zero embedding (rank 1), so curves and log axes stay finite.
        return 1.0
    p = sigma / total + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def rankme(z: torch.Tensor | np.ndarray, eps: float = 1e-7) -> float:
    """RankMe, the effective rank of ``z`` [N, D] (N >= 1), between about 1 and min(N, D).

    Computed in float64 on the CPU. A zero matrix gives 1.0 (documented choice, see code); any
    nan or inf in ``z`` gives nan.
    """
    if isinstance(eps, bool) or not isinstance(eps, Real) or not (0.0 <= float(eps) < 1.0):
        raise ValueError(f"eps must be a real number in [0, 1), got {eps!r}")
    z64 = _as_cpu_float64("z", z)
    if z64.shape[0] < 1 or z64.shape[1] < 1:
        raise ValueError(f"z must be [N, D] with N >= 1 and D >= 1, got shape {tuple(z64.shape)}")
    return _rankme_of(z64, float(eps))


def embedding_stats(z: torch.Tensor | np.ndarray) -> dict[str, float]:
    """``std_mean``, ``std_min``, ``rankme``, ``mean_cosine``, ``norm_mean`` of ``z`` [N, D]
    (N >= 2), all Python floats, computed in float64 on the CPU without autograd.

    A zero row has cosine 0 with every other row. With nan or inf in ``z`` every value is nan.
    """
    z64 = _as_cpu_float64("z", z)
    n, d = z64.shape
    if n < 2 or d < 1:
        raise ValueError(f"z must be [N, D] with N >= 2 and D >= 1, got shape {tuple(z64.shape)}")
    keys = ("std_mean", "std_min", "rankme", "mean_cosine", "norm_mean")
    if not bool(torch.isfinite(z64).all()):
        return dict.fromkeys(keys, math.nan)

    std = z64.std(dim=0)
    norms = z64.norm(dim=1)
    unit = z64 / norms.clamp_min(1e-12).unsqueeze(1)
    # Sum over ordered pairs i != j of <u_i, u_j> = ||sum_i u_i||^2 - sum_i ||u_i||^2:
    # O(N D) instead of an N x N Gram matrix.
    pair_sum = unit.sum(dim=0).pow(2).sum() - unit.pow(2).sum()
    return {
        "std_mean": float(std.mean()),
        "std_min": float(std.min()),
        "rankme": _rankme_of(z64, 1e-7),
        "mean_cosine": float(pair_sum / (n * (n - 1))),
        "norm_mean": float(norms.mean()),
    }


@torch.no_grad()
def monitor_stats(run: Run) -> dict[str, float]:
    """Collapse metrics of the mean-pooled embeddings of the fixed monitor images: those of the
    evaluated encoder (``eval.encoder``, the teacher by default) and, as ``student_*``, those
    of the context encoder, the one the optimizer trains (a frozen or slow teacher can hide a
    collapsing student)."""
    out = {}
    evaluated = run.target_encoder if run.cfg.eval.encoder == "target" else run.context_encoder
    for prefix, encoder in (("", evaluated), ("student_", run.context_encoder)):
        was_training = encoder.training
        encoder.eval()
        with autocast(run.device):
            z = encoder(run.monitor_images).float().mean(dim=1)
        encoder.train(was_training)
        stats = embedding_stats(z)
        keys = (
            ("std_mean", "std_min", "rankme", "mean_cosine")
            if not prefix
            else ("std_mean", "rankme")
        )
        out.update({prefix + k: stats[k] for k in keys})
    return out


def knn_eval(run: Run) -> float:
    """k-NN accuracy of the evaluated encoder (computed on rank 0, broadcast to the others)."""
    if not run.dist.is_main:
        return distributed.broadcast_float(run.dist, None, run.device)
    cfg = run.cfg
    encoder = run.target_encoder if cfg.eval.encoder == "target" else run.context_encoder
    kwargs = {"batch_size": 256, "shuffle": False, "num_workers": cfg.data.num_workers}
    train_x, train_y = extract_features(
        encoder, DataLoader(run.eval_bank, **kwargs), pool=cfg.eval.pool
    )
    test_x, test_y = extract_features(
        encoder, DataLoader(run.test_set, **kwargs), pool=cfg.eval.pool
    )
    acc = knn_accuracy(
        train_x.to(run.device),
        train_y.to(run.device),
        test_x.to(run.device),
        test_y.to(run.device),
        k=cfg.eval.k,
        temperature=cfg.eval.temperature,
    )
    return distributed.broadcast_float(run.dist, acc, run.device)
