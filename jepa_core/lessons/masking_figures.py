"""Figures of the workbook: each function takes computed results and returns a matplotlib Figure.

The notebooks call these and save them with ``nb.savefig``; nothing here computes a result.
Sections: masks (notebook 01).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..masks import MultiBlockMasks

# ============================================================================================
# Masks (notebook 01): context and target blocks over images, and their statistics
# ============================================================================================

CONTEXT_COLOUR = "#2ca02c"  # green: what the context encoder sees
TARGET_COLOURS = (
    "#d62728",
    "#1f77b4",
    "#ff7f0e",
    "#9467bd",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#8c564b",
)
HIDDEN_COLOUR = "0.75"  # hatch on patches neither seen nor predicted
DROPPED_COLOUR = "#ffdd00"  # cross on context patches removed by the cut to the shortest


def _check_images(images: Any) -> np.ndarray:
    """[B, C, H, W] (C = 1 or 3) in [0, 1] -> numpy [B, H, W] or [B, H, W, 3] for imshow."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor [B, C, H, W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise ValueError(
            f"images must be [B, C, H, W] with B >= 1 and C in (1, 3), got shape "
            f"{tuple(images.shape)}"
        )
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"images must lie in [0, 1] (use jepa_core.data.denormalize), got range "
            f"[{low:.3g}, {high:.3g}]"
        )
    array = images.detach().cpu().float().numpy()
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


def _region_outline(region: np.ndarray) -> list[list[tuple[int, int]]]:
    """Edges (in grid coordinates x = column, y = row) between a region's cells and the rest."""
    height, width = region.shape
    padded = np.pad(region, 1)
    segments = []
    for row, col in zip(*np.nonzero(region), strict=True):
        r, c = row + 1, col + 1
        if not padded[r - 1, c]:
            segments.append([(col, row), (col + 1, row)])
        if not padded[r + 1, c]:
            segments.append([(col, row + 1), (col + 1, row + 1)])
        if not padded[r, c - 1]:
            segments.append([(col, row), (col, row + 1)])
        if not padded[r, c + 1]:
            segments.append([(col + 1, row), (col + 1, row + 1)])
    return segments


def _draw_one(
    ax, image: np.ndarray, context: np.ndarray, targets: np.ndarray, dropped: np.ndarray | None
) -> None:
    """One image with its masks; ``context`` [H, W], ``targets`` [T, H, W], ``dropped`` [H, W]."""
    height, width = context.shape
    extent = (0, width, height, 0)  # the image stretched over the patch grid
    ax.imshow(
        image,
        cmap="gray" if image.ndim == 2 else None,
        vmin=0,
        vmax=1,
        extent=extent,
        interpolation="nearest",
    )
    overlay = np.zeros((height, width, 4))
    overlay[context] = (*to_rgb(CONTEXT_COLOUR), 0.45)
    for k, target in enumerate(targets):
        colour = TARGET_COLOURS[k % len(TARGET_COLOURS)]
        overlay[target] = (*to_rgb(colour), 0.45)
    ax.imshow(overlay, extent=extent, interpolation="nearest")
    for k, target in enumerate(targets):
        colour = TARGET_COLOURS[k % len(TARGET_COLOURS)]
        ax.add_collection(LineCollection(_region_outline(target), colors=colour, linewidths=2))
    hidden = ~context & ~targets.any(0)
    if dropped is not None:
        hidden &= ~dropped
    for row, col in zip(*np.nonzero(hidden), strict=True):
        ax.add_patch(
            Rectangle(
                (col, row), 1, 1, fill=False, hatch="////", linewidth=0, edgecolor=HIDDEN_COLOUR
            )
        )
    if dropped is not None and dropped.any():
        rows, cols = np.nonzero(dropped)
        ax.scatter(cols + 0.5, rows + 0.5, marker="x", s=28, color=DROPPED_COLOUR, linewidths=1.5)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def draw_masks(
    images: torch.Tensor,
    masks: MultiBlockMasks | Mapping[str, MultiBlockMasks],
    *,
    uncut_context: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
    titles: list[str] | None = None,
    panel_size: float = 1.9,
) -> Figure:
    """Images with their masks: one row per mask set, one axis per image.

    ``images``: [B, C, H, W] in [0, 1], C = 1 or 3. ``masks``: one :class:`MultiBlockMasks`
    with batch >= B, or {row label: masks} for several rows (e.g. block vs random, 7x7 vs
    14x14 grids). Context patches are shaded green, each target block has its own colour
    (fill and outline), patches neither seen nor predicted are hatched. With
    ``uncut_context`` (BoolTensor [B', H*W] per row, before the cut to the shortest),
    context patches the cut dropped are crossed in yellow. Returns the Figure (B axes a row).
    """
    pictures = _check_images(images)
    rows = dict(masks) if isinstance(masks, Mapping) else {"": masks}
    if len(rows) == 0:
        raise ValueError("masks must hold at least one MultiBlockMasks, got an empty mapping")
    uncut = (
        dict(uncut_context)
        if isinstance(uncut_context, Mapping)
        else {label: uncut_context for label in rows}
    )
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(
            f"titles must hold one title per image ({len(pictures)}), got {len(titles)}"
        )
    n_images = len(pictures)
    fig, axes = plt.subplots(
        len(rows),
        n_images,
        squeeze=False,
        figsize=(panel_size * n_images, panel_size * len(rows) + 0.5),
    )
    for row_index, (label, row_masks) in enumerate(rows.items()):
        axis_row = axes[row_index]
        if not isinstance(row_masks, MultiBlockMasks):
            raise TypeError(
                f"masks[{label!r}] must be a MultiBlockMasks, got {type(row_masks).__name__}"
            )
        if len(row_masks.context) < n_images:
            raise ValueError(
                f"masks[{label!r}] holds {len(row_masks.context)} images, fewer "
                f"than the {n_images} images to draw"
            )
        grid = row_masks.grid
        context = row_masks.context_map().cpu().unflatten(-1, grid).numpy()
        targets = row_masks.target_maps().cpu().unflatten(-1, grid).numpy()
        row_uncut = uncut.get(label)
        dropped = None
        if row_uncut is not None:
            if row_uncut.dtype != torch.bool or tuple(row_uncut.shape[1:]) != (grid[0] * grid[1],):
                raise ValueError(
                    f"uncut_context for row {label!r} must be a bool tensor "
                    f"[B, {grid[0] * grid[1]}], got {row_uncut.dtype} "
                    f"{tuple(row_uncut.shape)}"
                )
            dropped = row_uncut.cpu().unflatten(-1, grid).numpy() & ~context[: len(row_uncut)]
        for i, ax in enumerate(axis_row):
            _draw_one(
                ax, pictures[i], context[i], targets[i], None if dropped is None else dropped[i]
            )
            if titles is not None and row_index == 0:
                ax.set_title(titles[i], fontsize=9)
        if label:
            axis_row[0].set_ylabel(label, fontsize=9)
    n_targets = max(m.targets.shape[1] for m in rows.values())
    handles = [Patch(facecolor=CONTEXT_COLOUR, alpha=0.6, label="context (seen)")]
    handles += [
        Patch(facecolor=TARGET_COLOURS[k % len(TARGET_COLOURS)], alpha=0.7, label=f"target {k + 1}")
        for k in range(n_targets)
    ]
    handles.append(
        Patch(
            facecolor="white",
            edgecolor=HIDDEN_COLOUR,
            hatch="////",
            label="neither seen nor predicted",
        )
    )
    if any(uncut.get(label) is not None for label in rows):
        handles.append(
            Line2D(
                [],
                [],
                marker="x",
                linestyle="",
                color=DROPPED_COLOUR,
                label="context dropped by the cut",
            )
        )
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 4),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.tight_layout(rect=(0, 0.1 if len(handles) <= 4 else 0.16, 1, 1))
    return fig


def _shade_range(ax, value_range: Any, label: str) -> None:
    if value_range is not None:
        ax.axvspan(*value_range, color="0.85", zorder=0, label=label)


def plot_mask_statistics(stats: pd.DataFrame | Mapping[str, pd.DataFrame]) -> Figure:
    """Histograms of :func:`jepa_core.lessons.masking.mask_statistics` tables, one row per table.

    Columns: realised target fraction (requested ``target_scale`` shaded), realised target
    aspect h/w (requested ``target_aspect`` shaded, log scale), and the context fraction at its
    three stages (block, after removing targets, after the cut to the shortest) as cumulative
    distributions. The requested ranges are read from ``stats.attrs`` when present.
    """
    tables = dict(stats) if isinstance(stats, Mapping) else {"": stats}
    required = {
        "target_fraction",
        "target_aspect",
        "context_block_fraction",
        "context_fraction",
        "context_fraction_equalised",
    }
    for label, table in tables.items():
        if not isinstance(table, pd.DataFrame) or not required <= set(table.columns):
            missing = sorted(required - set(getattr(table, "columns", [])))
            raise ValueError(
                f"stats[{label!r}] must be a mask_statistics DataFrame; missing columns {missing}"
            )
    fig, axes = plt.subplots(len(tables), 3, squeeze=False, figsize=(13, 3.3 * len(tables)))
    for (label, table), (ax_scale, ax_aspect, ax_context) in zip(tables.items(), axes, strict=True):
        per_image = table.drop_duplicates("image")
        grid = table.attrs.get("grid")
        bar_width = 0.6 / (grid[0] * grid[1]) if grid else 0.005  # fractions step by 1/N
        prefix = f"{label}: " if label else ""
        _shade_range(ax_scale, table.attrs.get("target_scale"), "requested")
        fractions = table["target_fraction"].value_counts().sort_index()
        ax_scale.bar(
            fractions.index, fractions.values, width=bar_width, color=TARGET_COLOURS[0], alpha=0.8
        )
        ax_scale.set_xlim(0, max(0.3, table["target_fraction"].max() + 0.05))
        ax_scale.set(
            title=f"{prefix}target fraction h·w/N",
            xlabel="fraction of patches",
            ylabel="target blocks",
        )
        ax_scale.legend(fontsize=8)
        _shade_range(ax_aspect, table.attrs.get("target_aspect"), "requested")
        aspects = table["target_aspect"].value_counts().sort_index()
        ax_aspect.bar(aspects.index, aspects.values, width=0.04, color=TARGET_COLOURS[1], alpha=0.8)
        ax_aspect.set(title=f"{prefix}target aspect h/w", xlabel="h / w", ylabel="target blocks")
        ax_aspect.legend(fontsize=8)
        stages = {
            "context block": "context_block_fraction",
            "minus targets": "context_fraction",
            "after the cut": "context_fraction_equalised",
        }
        for (name, column), colour in zip(
            stages.items(), ("0.4", CONTEXT_COLOUR, "#1f77b4"), strict=True
        ):
            values = np.sort(per_image[column].to_numpy())
            ax_context.step(
                values,
                np.arange(1, len(values) + 1) / len(values),
                where="post",
                color=colour,
                linewidth=2,
                label=f"{name} (mean {values.mean():.2f})",
            )
        _shade_range(ax_context, table.attrs.get("context_scale"), "requested block scale")
        ax_context.set(
            title=f"{prefix}context fraction (cumulative)",
            xlim=(0, 1.02),
            xlabel="fraction of patches",
            ylabel="share of images with at most x",
        )
        ax_context.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_equalisation_loss(table: pd.DataFrame) -> Figure:
    """Share of context patches dropped by the cut, against batch size, one line per grid.

    ``table``: rows of :func:`jepa_core.lessons.masking.equalisation_loss` (several grids
    concatenated); error bars are one standard deviation over draws.
    """
    required = {"grid", "batch_size", "drop_share", "drop_share_std"}
    if not isinstance(table, pd.DataFrame) or not required <= set(table.columns):
        raise ValueError(
            f"table must be an equalisation_loss DataFrame with columns "
            f"{sorted(required)}, got {list(getattr(table, 'columns', []))}"
        )
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for grid, rows in table.groupby("grid", sort=False):
        ax.errorbar(
            rows["batch_size"],
            rows["drop_share"],
            yerr=rows["drop_share_std"],
            marker="o",
            capsize=3,
            label=f"{grid} grid",
        )
    ax.set_xscale("log", base=2)
    sizes = sorted(table["batch_size"].unique())
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.set(
        xlabel="batch size",
        ylabel="share of context patches dropped",
        title="Cutting every context to the shortest in the batch",
        ylim=(0, None),
    )
    ax.legend()
    fig.tight_layout()
    return fig


def plot_distance_to_context(distances: Mapping[str, torch.Tensor]) -> Figure:
    """Histogram of target-patch distances to the nearest context patch, one bar set a label.

    ``distances``: {label: tensor of distances} from
    :func:`jepa_core.lessons.masking.distance_to_context`.
    """
    if not isinstance(distances, Mapping) or len(distances) == 0:
        raise ValueError(
            f"distances must be a non-empty mapping label -> tensor, got {type(distances).__name__}"
        )
    values = {label: d.flatten().cpu().numpy() for label, d in distances.items()}
    levels = np.unique(np.concatenate(list(values.values())).round(3))
    width = 0.8 / len(values)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, (label, d) in enumerate(values.items()):
        shares = [(d.round(3) == level).mean() for level in levels]
        ax.bar(
            np.arange(len(levels)) + (i - (len(values) - 1) / 2) * width,
            shares,
            width,
            label=f"{label} (mean {d.mean():.2f})",
        )
    ax.set_xticks(np.arange(len(levels)), [f"{level:.2g}" for level in levels], fontsize=8)
    ax.set(
        xlabel="distance to the nearest context patch (patches)",
        ylabel="share of target patches",
        title="How far a target lies from what is seen",
    )
    ax.legend()
    fig.tight_layout()
    return fig
