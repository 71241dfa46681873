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

Position share of token features h [N, P, D] (N images, P patch positions):

    position_share = 1 - sum_{n,p} ||h_np - mu_p||^2 / sum_{n,p} ||h_np - mu||^2

with mu_p the mean over images at position p and mu the overall mean: the R^2 of the best
position-only predictor (the per-position mean). Near 1, the tokens are mostly a per-position
constant (a mean over positions is then nearly the same vector for every image); near 0, the
position says nothing about them.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import distributed
from .checks import int_at_least
from .device import autocast
from .evaluate import (
    FEATURE_BATCH,
    check_tokens,
    encoder_device,
    extract_features,
    frozen,
    knn_accuracy,
)

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


def position_share(tokens: torch.Tensor | np.ndarray) -> float:
    """Share of the variance of token features ``tokens`` [N, P, D] (N >= 2 images, P >= 2
    positions, D >= 1, floating point, finite) that their patch position alone explains, in
    [0, 1] up to rounding (formula in the module docstring).

    1.0 when every image has the same tokens; about (P - 1) / (N P - 1) for features that do not
    depend on position. Zero total variance (every token equal) gives 1.0: the per-position
    mean then predicts every token exactly and nothing depends on the image (scikit-learn's
    ``r2_score`` makes the same choice for a perfectly predicted constant). Computed in
    float64 on the CPU without autograd.
    """
    if isinstance(tokens, np.ndarray):
        tokens = torch.from_numpy(tokens)
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(
            f"tokens must be a torch.Tensor or numpy array [N, P, D], got {type(tokens).__name__}"
        )
    if not tokens.is_floating_point():
        raise TypeError(f"tokens must hold floating-point numbers, got dtype {tokens.dtype}")
    shape = tuple(tokens.shape)
    if tokens.ndim != 3 or shape[0] < 2 or shape[1] < 2 or shape[2] < 1:
        raise ValueError(
            f"tokens must be [N, P, D] with N >= 2 images, P >= 2 positions and D >= 1, "
            f"got shape {shape}"
        )
    h = tokens.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(h).all()):
        raise ValueError("tokens must be finite, got nan or inf")
    within = (h - h.mean(dim=0, keepdim=True)).pow(2).sum()
    total = (h - h.mean(dim=(0, 1), keepdim=True)).pow(2).sum()
    if total <= 0:
        return 1.0
    return float(1.0 - within / total)


def encoder_position_share(
    encoder: nn.Module, images: torch.Tensor, batch_size: int = FEATURE_BATCH
) -> float:
    """:func:`position_share` of the tokens ``encoder`` returns for ``images`` [M, C, H, W]
    (M >= 2), run in batches of ``batch_size`` in eval mode under ``torch.inference_mode`` on
    the encoder's device; every submodule's train/eval mode is restored afterwards. Holds all
    M * P * D token features in float32 on the CPU (a few hundred images are enough)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] < 2:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor [M, C, H, W] with M >= 2, got {got}")
    batch_size = int_at_least("batch_size", batch_size, 1)
    with frozen(encoder):
        device = encoder_device(encoder)
        tokens = [
            check_tokens(encoder(batch.to(device))).float().cpu()
            for batch in images.split(batch_size)
        ]
    return position_share(torch.cat(tokens))


@torch.no_grad()
def monitor_stats(run: Run) -> dict[str, float]:
    """Collapse metrics of the mean-pooled embeddings of the fixed monitor images: those of the
    evaluated encoder (``eval.encoder``, the teacher by default) and, as ``student_*``, those
    of the context encoder, the one the optimizer trains (a frozen or slow teacher can hide a
    collapsing student)."""
    out, seen = {}, {}
    evaluated = run.target_encoder if run.cfg.eval.encoder == "target" else run.context_encoder
    for prefix, encoder in (("", evaluated), ("student_", run.context_encoder)):
        if encoder not in seen:  # one pass when the two are one encoder (LeJEPA)
            with frozen(encoder), autocast(run.device):
                batches = run.monitor_images.split(FEATURE_BATCH)
                z = torch.cat([encoder(x).float().mean(dim=1) for x in batches])
            seen[encoder] = embedding_stats(z)
        stats = seen[encoder]
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
    kwargs = {"batch_size": FEATURE_BATCH, "shuffle": False, "num_workers": cfg.data.num_workers}
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
