"""Notebook 03's figures: the I-JEPA loss against scaled and outlier predictions, VICReg's
terms on healthy and collapsed embeddings, NT-Xent's softmax and temperature, SIGReg's
characteristic functions and per-direction statistics, and what each term of an objective
contributes. The numbers they draw come from ``jepa_core.lessons.loss_probes`` and
``jepa_core.lessons.sigreg_probes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..checks import int_at_least
from .loss_probes import anchor_softmax
from .panel_grid import panel_grid
from .sigreg_probes import empirical_cf, epps_pulley


def plot_jepa_loss_probe(scaled: pd.DataFrame, outlier: pd.DataFrame):
    """Three panels from :func:`jepa_loss_probe`: loss against the prediction's scale, loss
    against the outlier's size (log-log) and the gradient the outlier receives (log-log)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for kind, rows in scaled.groupby("kind", sort=False):
        axes[0].plot(rows["scale"], rows["loss"], marker="o", ms=3, label=kind)
    axes[0].axvline(1.0, color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="prediction = s * target", ylabel="loss", title="scaled prediction")
    for kind, rows in outlier.groupby("kind", sort=False):
        axes[1].loglog(rows["magnitude"], rows["loss"], marker="o", ms=3, label=kind)
        axes[2].loglog(
            rows["magnitude"],
            rows["outlier_grad"].abs().clip(lower=1e-12),
            marker="o",
            ms=3,
            label=kind,
        )
    axes[1].set(xlabel="outlier size m (one coordinate)", ylabel="loss", title="one outlier")
    axes[2].set(
        xlabel="outlier size m", ylabel="|d loss / d pred| x numel", title="pull on the outlier"
    )
    axes[0].legend()
    fig.tight_layout()
    return fig


def plot_vicreg_table(table: pd.DataFrame):
    """Bars of VICReg's three unweighted terms and RankMe, one bar per row of
    :func:`vicreg_table` (log scale where the values span decades)."""
    import matplotlib.pyplot as plt

    columns = ["invariance", "variance", "covariance", "rankme"]
    fig, axes = panel_grid(len(columns), panel=(4.2, 3.0))  # 2 x 2
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, column in zip(axes, columns, strict=True):
        values = table[column].to_numpy()
        ax.bar(range(len(values)), values, color=colors[: len(values)])
        ax.set_xticks(
            range(len(values)), [str(i).replace("_", "\n") for i in table.index], fontsize=8
        )
        ax.set_title(column)
        positive = values[values > 0]
        if len(positive) and positive.max() / positive.min() > 100:
            ax.set_yscale("log")
    fig.tight_layout()
    return fig


def plot_anchor_softmax(
    z_i: Tensor, z_j: Tensor, temperatures: float | Sequence[float], anchor: int = 0
):
    """One panel per temperature: the softmax of :func:`anchor_softmax` over the candidates,
    sorted by similarity (the same order at every temperature), the positive in orange."""
    import matplotlib.pyplot as plt

    temps = [temperatures] if isinstance(temperatures, Real) else list(temperatures)
    batch = len(z_i)
    fig, axes = plt.subplots(1, len(temps), figsize=(4.5 * len(temps), 3.2), squeeze=False)
    for ax, tau in zip(axes[0], temps, strict=True):
        probs = anchor_softmax(z_i, z_j, tau, anchor)
        order = torch.argsort(probs, descending=True)[: 2 * batch - 1]
        positive = (anchor + batch) % (2 * batch)
        colors = ["C1" if int(i) == positive else "C0" for i in order]
        ax.bar(range(len(order)), probs[order].numpy(), color=colors, width=1.0)
        ax.set(
            xlabel="candidates, most similar first",
            ylabel="softmax probability",
            title=f"temperature {tau:g}: positive p = {float(probs[positive]):.2f}",
        )
    fig.tight_layout()
    return fig


def plot_loss_contributions(contributions: Mapping[str, Mapping[str, float]]):
    """Stacked bars: for each method, its weighted terms (:func:`loss_contributions`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(contributions)
    parts = list(dict.fromkeys(p for c in contributions.values() for p in c))
    bottom = np.zeros(len(names))
    for part in parts:
        values = np.array([contributions[m].get(part, 0.0) for m in names])
        ax.bar(names, values, bottom=bottom, label=part)
        bottom += values
    ax.set(ylabel="weighted term", title="what each method's loss is made of (at initialisation)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_temperature_sweep(sweep: pd.DataFrame, batch: int):
    """NT-Xent loss and accuracy against the temperature (log x), with the large-temperature
    limit log(2B - 1) of the loss."""
    import matplotlib.pyplot as plt

    batch = int_at_least("batch", batch, 2)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].semilogx(sweep["temperature"], sweep["loss"], marker="o", label="NT-Xent loss")
    axes[0].axhline(np.log(2 * batch - 1), color="grey", ls="--", label="log(2B - 1)")
    axes[0].set(xlabel="temperature", ylabel="loss", title="the loss depends on the temperature")
    axes[0].legend()
    axes[1].semilogx(sweep["temperature"], sweep["accuracy"], marker="o", color="C1")
    axes[1].set(
        xlabel="temperature",
        ylabel="positive ranked first",
        ylim=(0, 1.05),
        title="the ranking does not",
    )
    fig.tight_layout()
    return fig


def plot_empirical_cf(samples: Mapping[str, Tensor], t: Tensor, t_max: float = 3.0):
    """One panel per named 1-D sample x [N] (an embedding projected on one direction): the
    real and imaginary parts of its empirical characteristic function on the grid ``t``,
    against N(0, 1)'s exp(-t^2/2), SIGReg's domain [-t_max, t_max] shaded. Each title gives
    std(x) and the Epps-Pulley statistic of x."""
    fig, axes = panel_grid(len(samples), panel=(4.4, 3.3))
    t = t.detach().double()
    for ax, (name, x) in zip(axes, samples.items(), strict=True):
        x = x.detach()
        phi = empirical_cf(x.double(), t)
        ax.axvspan(-t_max, t_max, color="0.92", lw=0, label="SIGReg's t range")
        ax.plot(t, torch.exp(-0.5 * t.square()), "k--", lw=1.5, label="exp(-t²/2), N(0, 1)")
        ax.plot(t, phi.real, color="C0", label="Re: mean cos(t x)")
        ax.plot(t, phi.imag, color="C1", label="Im: mean sin(t x)")
        ax.set(
            xlabel="t",
            ylim=(-1.1, 1.1),
            title=f"{name}\nstd(x) = {float(x.std()):.2f}, EP = {float(epps_pulley(x)):.3g}",
        )
    axes[0].legend(fontsize=7, loc="lower center")
    fig.tight_layout()
    return fig


def plot_sigreg_per_direction(per_direction: Mapping[str, Tensor], null_expectation: float):
    """Histograms (log x) of the Epps-Pulley statistic over the random directions, one per
    embedding, with the null expectation and the largest statistic of the ``gaussian`` entry
    (if any) marked."""
    import matplotlib.pyplot as plt

    values = {name: v.detach().double().numpy() for name, v in per_direction.items()}
    low = min(v.min() for v in values.values())
    high = max(v.max() for v in values.values())
    bins = np.geomspace(max(low, 1e-4), high * 1.01, 60)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for name, v in values.items():
        ax.hist(
            np.clip(v, bins[0], None), bins=bins, alpha=0.6, label=f"{name} (mean {v.mean():.3g})"
        )
    ax.axvline(
        null_expectation, color="k", ls="--", label=f"null expectation {null_expectation:.3f}"
    )
    if "gaussian" in values:
        ax.axvline(values["gaussian"].max(), color="k", ls=":", label="largest, gaussian")
    ax.set(
        xscale="log",
        xlabel="Epps-Pulley statistic of one direction",
        ylabel="directions",
        title=f"SIGReg's {len(next(iter(values.values())))} directions, one statistic each",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
