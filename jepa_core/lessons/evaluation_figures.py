"""Notebook 05's figures: per-class accuracy, 2-D projections of features, the comparison of
methods against initialisation and raw pixels, and k-NN accuracy against k.

The numbers they draw come from ``jepa_core.lessons.evaluation``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch


def plot_per_class(tables: Mapping[str, pd.DataFrame], title: str = "per-class accuracy"):
    """Grouped bars: one group per class, one bar per entry of ``tables`` (each from
    ``per_class_accuracy``, same classes), its overall accuracy in the legend."""
    import matplotlib.pyplot as plt

    if not isinstance(tables, Mapping) or not tables:
        raise ValueError(
            f"tables must be a non-empty dict name -> per_class_accuracy table; got {tables!r}"
        )
    frames = list(tables.values())
    classes = list(frames[0].index)
    for name, frame in tables.items():
        if list(frame.index) != classes:
            raise ValueError(
                f"every table must cover the classes {classes}; {name!r} has {list(frame.index)}"
            )
    fig, ax = plt.subplots(
        figsize=(min(11.0, max(6.0, 2.0 + 0.22 * len(classes) * len(tables))), 3.4)
    )
    width = 0.8 / len(tables)
    x = np.arange(len(classes))
    for i, (name, frame) in enumerate(tables.items()):
        overall = frame["correct"].sum() / max(frame["n"].sum(), 1)
        ax.bar(
            x + (i - (len(tables) - 1) / 2) * width,
            frame["accuracy"],
            width,
            label=f"{name} ({overall:.2f})",
        )
    ax.set_xticks(x, classes)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("true class")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def project_2d(
    features: torch.Tensor | np.ndarray, method: str = "pca", seed: int = 0
) -> np.ndarray:
    """``[M, F]`` -> ``[M, 2]`` by PCA (linear, global structure) or t-SNE (van der Maaten &
    Hinton 2008; local neighbourhoods, distances between clusters mean little)."""
    x = np.asarray(
        features.detach().cpu() if isinstance(features, torch.Tensor) else features,
        dtype=np.float64,
    )
    if x.ndim != 2 or x.shape[0] < 3 or x.shape[1] < 2:
        raise ValueError(f"features must be 2-D [M >= 3, F >= 2]; got shape {x.shape}")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        # t-SNE on the top principal components: the usual speed-up, little change in the map.
        reduced = PCA(n_components=min(50, *x.shape), random_state=seed).fit_transform(x)
        perplexity = min(30.0, (x.shape[0] - 1) / 3)
        return TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(reduced)
    raise ValueError(f"method must be 'pca' or 'tsne'; got {method!r}")


def plot_projection(
    features: Mapping[str, torch.Tensor | np.ndarray],
    labels: torch.Tensor | np.ndarray,
    classes: Sequence[str],
    method: str = "pca",
    seed: int = 0,
):
    """One scatter panel per entry of ``features`` (name -> ``[M, F]``), points coloured by
    class, projected to 2-D by ``project_2d``."""
    import matplotlib.pyplot as plt

    if not isinstance(features, Mapping) or not features:
        raise ValueError(
            f"features must be a non-empty dict name -> [M, F] features; got {features!r}"
        )
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    for name, x in features.items():
        if len(x) != len(labels):
            raise ValueError(f"features {name!r} has {len(x)} rows but labels has {len(labels)}")
    fig, axes = plt.subplots(1, len(features), figsize=(3.3 * len(features), 3.4), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, (name, x) in zip(axes[0], features.items(), strict=True):
        xy = project_2d(x, method=method, seed=seed)
        points = ax.scatter(
            xy[:, 0],
            xy[:, 1],
            c=labels,
            cmap=cmap,
            vmin=-0.5,
            vmax=len(classes) - 0.5,
            s=6,
            alpha=0.7,
            linewidths=0,
        )
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    cbar = fig.colorbar(points, ax=axes[0].tolist(), ticks=range(len(classes)), fraction=0.02)
    cbar.ax.set_yticklabels(list(classes))
    fig.suptitle(f"{method.upper()} of the test features, coloured by class", fontsize=10)
    return fig


def _row_label(row: pd.Series) -> str:
    if row["method"] == "raw pixels":
        return row["pool"]
    return f"{row['method']} · {row['pool']}"


def plot_comparison(comparison: pd.DataFrame, k: int = 20):
    """Grouped bars of ``comparison_table``: k-NN and linear-probe accuracy per row, the raw
    pixel k-NN accuracy as a dashed line."""
    import matplotlib.pyplot as plt

    column = f"knn{k}"
    for needed in (column, "linear_probe", "method", "pool"):
        if needed not in comparison.columns:
            raise ValueError(
                f"comparison must have a {needed!r} column (from comparison_table); "
                f"got {list(comparison.columns)}"
            )
    labels = [_row_label(row) for _, row in comparison.iterrows()]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels)), 3.6))
    ax.bar(x - 0.2, comparison[column], 0.4, label=f"{k}-NN")
    ax.bar(x + 0.2, comparison["linear_probe"], 0.4, label="linear probe")
    pixels = comparison.loc[comparison["method"] == "raw pixels", column]
    if len(pixels):
        ax.axhline(float(pixels.max()), color="k", ls="--", lw=1, label=f"raw pixels {k}-NN")
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_knn_vs_k(table: pd.DataFrame, encoder: str = "target"):
    """k-NN accuracy against k for the chosen encoder's rows and the baselines: solid lines
    mean-pooled, dashed flattened, dotted raw pixels."""
    import matplotlib.pyplot as plt

    columns = [c for c in table.columns if c.startswith("knn")]
    if not columns:
        raise ValueError(f"table has no knn<k> column; got {list(table.columns)}")
    ks = [int(c[3:]) for c in columns]
    keep = table["method"].isin(["init", "raw pixels"]) | (table["encoder"] == encoder)
    styles = {"mean": "-", "flatten": "--", "pixels": ":", "pixels, centred": "-."}
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(table.loc[keep, "method"]))}
    for _, row in table[keep].iterrows():
        ax.plot(
            ks,
            row[columns].astype(float),
            marker="o",
            ms=3,
            color=colours[row["method"]],
            ls=styles.get(row["pool"], ":"),
            label=_row_label(row),
        )
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (neighbours voting)")
    ax.set_ylabel("k-NN test accuracy")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig
