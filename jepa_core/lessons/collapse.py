"""The collapse lab: train a healthy I-JEPA beside the ways of breaking its student / teacher
asymmetry, same seed, same data, same budget, and compare their collapse metrics.

    runs = collapse_lab(COLLAPSE_VARIANTS, common={"train.epochs": 3})
    summary = lab_summary(runs)
    plot_collapse_curves(runs, metrics=["std_mean", "rankme", "knn_acc"])

The variants, each a claim the lab tests (notebook 02, sections 2-3; sources in
docs/references.md): no stop-gradient with a gradient-trained target (claimed to collapse:
the asymmetry argument of I-JEPA and BYOL); a teacher equal to the student (EMA momentum 0,
claimed to collapse); a frozen teacher (momentum 1, as SALT's second stage, Li et al. 2025;
claimed not to); VICReg (Bardes et al. 2022) added to the broken configuration, as C-JEPA
adds it against collapse (Mo & Tong 2024; claimed to rescue it); and LeJEPA (Balestriero &
LeCun 2025), which has no teacher at all: with SIGReg (claimed not to collapse) and without it,
lambda = 0, where nothing but the pull between views is left (predicted to collapse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..build import store_config
from ..evaluate import encoder_device, frozen
from ..monitor import embedding_stats
from ..results import output_dir_for
from ..train import TrainResult, train
from .panel_grid import panel_grid

BROKEN = {"ema.stop_grad": False, "ema.target_in_optimizer": True}

# name -> (preset, overrides, what it shows)
COLLAPSE_VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "healthy": (
        "ijepa",
        {},
        "I-JEPA: stop-gradient, EMA teacher sized by the run-length rule",
    ),
    "no_stop_grad": (
        "ijepa",
        dict(BROKEN),
        "target in the autograd graph and trained by the optimizer",
    ),
    "teacher_is_student": (
        "ijepa",
        {"ema.kind": "constant", "ema.start": 0.0},
        "EMA momentum 0: the teacher is a copy of the student every step",
    ),
    "frozen_teacher": (
        "ijepa",
        {"ema.kind": "constant", "ema.start": 1.0},
        "EMA momentum 1: the teacher stays at its random initialisation",
    ),
    "vicreg_rescue": (
        "cjepa",
        dict(BROKEN),
        "the broken configuration plus VICReg (C-JEPA's terms)",
    ),
    "lejepa": ("lejepa", {}, "LeJEPA: no teacher; SIGReg keeps the embeddings Gaussian"),
    "lejepa_no_sigreg": (
        "lejepa",
        {"loss.sigreg_weight": 0.0},
        "LeJEPA with lambda = 0: only the pull between views is left",
    ),
}
# What the literature claims for each variant (the lab tests it; notebook 02, section 3).
PREDICTED_COLLAPSE = ("no_stop_grad", "teacher_is_student", "lejepa_no_sigreg")

SUMMARY_METRICS = (
    "loss",
    "jepa",
    "std_mean",
    "std_min",
    "rankme",
    "mean_cosine",
    "knn_acc",
    "student_std_mean",
    "student_rankme",
)


def collapse_lab(
    variants: Mapping[str, tuple[str, Mapping[str, Any], str]] | None = None,
    *,
    common: Mapping[str, Any] | None = None,
    output_dir: str | None = None,
    runs: str | Path | None = None,
    progress: bool = False,
) -> dict[str, TrainResult]:
    """Train every variant with the same ``common`` overrides; return name -> TrainResult.

    Each run lives in the shared run store ``runs`` (``build.shared_run_dir``; default
    ``<output_dir>/runs``) and resumes: a run another notebook already finished with the same
    config (notebook 05's I-JEPA and LeJEPA, say) is not trained twice. All configs are
    validated before the first run starts, so a typo fails in a second, not after an hour.
    """
    variants = COLLAPSE_VARIANTS if variants is None else variants
    store = runs if runs is not None else output_dir_for("02_ema_and_collapse", output_dir) / "runs"
    configs = {}
    for name, (preset, overrides, _) in variants.items():
        merged = {**(common or {}), **overrides, "train.resume": True}
        configs[name] = store_config(preset, merged, store)
    return {name: train(cfg, progress=progress) for name, cfg in configs.items()}


def lab_summary(runs: Mapping[str, TrainResult]) -> pd.DataFrame:
    """One row per run: initial and final k-NN accuracy and the final collapse metrics."""
    rows = []
    for name, result in runs.items():
        history = result.history
        final = result.final
        row = {"run": name, "knn_init": float(history["knn_acc"].iloc[0])}
        row.update({m: float(final.get(m, math.nan)) for m in SUMMARY_METRICS})
        row["rankme_init"] = float(history["rankme"].iloc[0])
        row["std_mean_init"] = float(history["std_mean"].iloc[0])
        row["stopped"] = result.stopped or ""
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def collapsed_runs(
    summary: pd.DataFrame, healthy: str = "healthy", ratio: float = 0.5
) -> list[str]:
    """Runs whose final RankMe *and* std_mean both fell below ``ratio`` x the healthy run's."""
    ref = summary.loc[healthy]
    mask = (summary["rankme"] < ratio * ref["rankme"]) & (
        summary["std_mean"] < ratio * ref["std_mean"]
    )
    return [name for name in summary.index[mask] if name != healthy]


def collapsed_from_start(summary: pd.DataFrame, ratio: float = 0.5) -> list[str]:
    """Runs whose final RankMe *and* std_mean both fell below ``ratio`` x their own values at
    initialisation (every run starts from the same weights): collapse judged without a
    reference run, for when the healthy run narrows too."""
    mask = (summary["rankme"] < ratio * summary["rankme_init"]) & (
        summary["std_mean"] < ratio * summary["std_mean_init"]
    )
    return list(summary.index[mask])


def plot_collapse_curves(
    runs: Mapping[str, TrainResult],
    metrics: Sequence[str] = ("jepa", "std_mean", "std_min", "rankme", "knn_acc"),
):
    """One panel per metric in a grid (rows of at most three), one line per run, against
    optimizer steps (log scale where the metric spans decades)."""
    fig, axes = panel_grid(len(metrics), panel=(3.6, 3.0))
    for ax, metric in zip(axes, metrics, strict=True):
        for name, result in runs.items():
            h = result.history
            if metric not in h:
                continue
            data = h[["step", metric]].dropna()
            ax.plot(
                data["step"],
                data[metric],
                marker="o" if metric == "knn_acc" else None,
                ms=3,
                label=name,
            )
        ax.set_title(metric)
        ax.set_xlabel("optimizer step")
        if metric in ("std_mean", "std_min", "jepa", "loss"):
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def projected_stats(result: TrainResult, images: torch.Tensor) -> dict[str, float]:
    """Collapse metrics (``monitor.embedding_stats``) of what a view loss acts on: the
    projector's output for the mean-pooled embeddings of ``images`` [M, C, H, W] (LeJEPA's
    projected views, C-JEPA's expanded features), both modules in eval mode (BatchNorm on its
    running statistics). The lab's other metrics look upstream, at the pooled backbone."""
    projector = getattr(result.objective, "projector", None)
    if projector is None:
        raise ValueError(
            f"loss.method={result.config.loss.method!r} has no projector (lejepa and cjepa do)"
        )
    encoder = result.context_encoder
    device = encoder_device(encoder)
    with frozen(encoder), frozen(projector):
        pooled = encoder(images.to(device)).float().mean(dim=1)
        return embedding_stats(projector(pooled))
