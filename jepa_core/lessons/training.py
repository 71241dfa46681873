"""Notebook 04's own helper: training curves drawn live, in place, while a run trains.

    live = LiveCurves(["loss", "std_min", "rankme", "knn_acc"])
    result = train(cfg, callbacks=[live])

The curves of a finished run (and of several runs side by side) are
``jepa_core.lessons.collapse.plot_collapse_curves``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .panel_grid import panel_grid


class LiveCurves:
    """A training callback that redraws metric curves in place in a notebook.

        live = LiveCurves(["loss", "std_min", "rankme", "knn_acc"])
        result = train(cfg, callbacks=[live])
        live.close()

    Outside IPython (a plain script) it only collects the rows.
    """

    def __init__(
        self, metrics: Sequence[str] = ("loss", "std_min", "rankme", "knn_acc"), every: int = 1
    ):
        import matplotlib.pyplot as plt

        self.metrics, self.every, self.rows = list(metrics), max(1, every), []
        # a grid (2 x 2 for the default four), not one long row
        self.fig, self.axes = panel_grid(len(self.metrics), panel=(3.4, 2.6))
        plt.close(self.fig)  # drawn through the display handle only
        self.handle = None
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self.handle = display(self.fig, display_id=True)
        except ImportError:
            pass

    def __call__(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) % self.every == 0:
            self.draw()

    def draw(self) -> None:
        frame = pd.DataFrame(self.rows)
        for ax, metric in zip(self.axes, self.metrics, strict=True):
            ax.clear()
            if metric in frame:
                data = frame[["step", metric]].dropna()
                ax.plot(data["step"], data[metric], marker="o", ms=3)
            ax.set_title(metric)
            ax.set_xlabel("optimizer step")
        self.fig.tight_layout()
        if self.handle is not None:
            self.handle.update(self.fig)

    def close(self):
        self.draw()
        return self.fig
