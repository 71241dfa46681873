"""Notebook 05's position probe: how much of an encoder's tokens is their patch position?

    position_share = 1 - sum_{n,p} ||h_np - mu_p||^2 / sum_{n,p} ||h_np - mu||^2

over token features h [N, P, D] of N images (``jepa_core.monitor.position_share``): the share
of the tokens' variance that the per-position mean mu_p, a function of the position alone,
explains. Near 1, every image gives nearly the same token at each position, so the mean over
positions is nearly the same vector for every image.

    images = first_images(test_loader, 300)
    probe = position_share_table({("init", "target=context"): init, ...}, images)
    fig = plot_position_share(probe)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..checks import int_at_least
from ..evaluate import FEATURE_BATCH
from ..monitor import encoder_position_share


def first_images(loader: Iterable, limit: int) -> torch.Tensor:
    """The first ``limit`` images of ``loader`` (which yields ``(images, labels)``) in its
    order, stacked ``[M, C, H, W]``; fewer when the loader holds fewer."""
    limit = int_at_least("limit", limit, 1)
    kept, count = [], 0
    for images, _ in loader:
        kept.append(images[: limit - count])
        count += len(kept[-1])
        if count >= limit:
            break
    if count == 0:
        raise ValueError("loader yielded no images")
    return torch.cat(kept)


def position_share_table(
    encoders: Mapping[tuple[str, str], nn.Module],
    images: torch.Tensor,
    batch_size: int = FEATURE_BATCH,
) -> pd.DataFrame:
    """One row per ``(method, encoder)`` key of ``encoders`` (in their order): ``method``,
    ``encoder`` and the ``position_share`` of that encoder's tokens on ``images``."""
    if not isinstance(encoders, Mapping) or not encoders:
        raise ValueError(
            f"encoders must be a non-empty dict {{(method, encoder): module}}; got {encoders!r}"
        )
    rows = []
    for key, encoder in encoders.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise ValueError(f"encoders keys must be (method, encoder) string pairs; got {key!r}")
        share = encoder_position_share(encoder, images, batch_size=batch_size)
        rows.append({"method": key[0], "encoder": key[1], "position_share": share})
    return pd.DataFrame(rows)


def plot_position_share(table: pd.DataFrame):
    """One bar per row of ``position_share_table``, coloured by encoder (target, context,
    initialisation); the initial encoder's share, when present, as a dashed line."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    for needed in ("method", "encoder", "position_share"):
        if needed not in table.columns:
            raise ValueError(
                f"table must have a {needed!r} column (from position_share_table); "
                f"got {list(table.columns)}"
            )
    kinds = list(dict.fromkeys(table["encoder"]))
    colours = [f"C{kinds.index(kind)}" for kind in table["encoder"]]
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(table) + 1.5), 3.2))
    ax.bar(x, table["position_share"], 0.7, color=colours)
    handles = [Patch(color=f"C{i}", label=kind) for i, kind in enumerate(kinds)]
    init = table.loc[table["method"] == "init", "position_share"]
    if len(init):
        handles.append(ax.axhline(float(init.iloc[0]), color="k", ls="--", lw=1, label="init"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    labels = [f"{m} · {e}" for m, e in zip(table["method"], table["encoder"], strict=True)]
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("position share of token variance")
    fig.tight_layout()
    return fig
