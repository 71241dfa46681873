"""Notebook 06's figure: a sweep's metrics against its swept values.

The sweep itself (run, gather) is ``jepa_core.runner.sweep``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def plot_sweep(table: pd.DataFrame, params: Sequence[str], metrics: Sequence[str]):
    """A panel per (metric, swept parameter): the metric against the parameter's values."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(metrics), len(params), figsize=(3.8 * len(params), 2.8 * len(metrics)), squeeze=False
    )
    for i, metric in enumerate(metrics):
        for j, param in enumerate(params):
            ax = axes[i][j]
            others = [p for p in params if p != param]
            groups = table.groupby(others) if others else [("all", table)]
            for label, group in groups:
                group = group.sort_values(param)
                numeric = pd.api.types.is_numeric_dtype(group[param])
                xs = group[param] if numeric else group[param].astype(str)
                text = ", ".join(map(str, label)) if isinstance(label, tuple) else str(label)
                ax.plot(xs, group[metric], marker="o", label=text)
            positive = (
                table[param][table[param] > 0]
                if pd.api.types.is_numeric_dtype(table[param])
                else []
            )
            if len(positive) and positive.max() / positive.min() >= 100:
                # weights like 0, 0.01, 0.1, 1 would crowd at the left of a linear axis
                ax.set_xscale("symlog", linthresh=float(positive.min()))
            ax.set_xlabel(param)
            ax.set_ylabel(metric)
            if others:
                ax.legend(fontsize=7, title=", ".join(others), title_fontsize=7)
    fig.tight_layout()
    return fig
