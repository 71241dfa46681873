"""Multi-panel figures are grids to be read, not single rows: the shape rule, the hidden spare
cells, and the figures that use it (collapse curves, live curves, the VICReg table)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from jepa_core.lessons.collapse import plot_collapse_curves
from jepa_core.lessons.loss_probes_figures import plot_vicreg_table
from jepa_core.lessons.panel_grid import grid_shape, panel_grid
from jepa_core.lessons.training import LiveCurves


@pytest.mark.parametrize(
    "n,shape",
    [
        (1, (1, 1)),
        (2, (1, 2)),
        (3, (1, 3)),
        (4, (2, 2)),
        (5, (2, 3)),
        (6, (2, 3)),
        (9, (3, 3)),
        (10, (4, 3)),
    ],
)
def test_up_to_three_panels_share_a_row_then_the_grid_is_about_square(n, shape):
    assert grid_shape(n) == shape


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_a_figure_needs_a_whole_number_of_panels(n):
    with pytest.raises(ValueError, match="at least one panel"):
        grid_shape(n)


def rows_and_columns(fig) -> tuple[int, int]:
    """Distinct rows and columns of the figure's visible axes, from their positions."""
    boxes = [ax.get_position() for ax in fig.axes if ax.get_visible()]
    return len({round(b.y0, 3) for b in boxes}), len({round(b.x0, 3) for b in boxes})


def test_spare_cells_are_hidden_and_the_axes_come_in_reading_order():
    fig, axes = panel_grid(5)
    assert len(axes) == 5 and sum(ax.get_visible() for ax in fig.axes) == 5
    assert axes[2].get_position().y0 == pytest.approx(axes[0].get_position().y0)  # first row
    assert axes[3].get_position().y0 < axes[0].get_position().y0  # second row
    plt.close(fig)


def history(steps: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": range(steps),
            "jepa": [1.0, 0.5, 0.3, 0.2],
            "std_mean": [0.1] * steps,
            "rankme": [3.0, 4, 5, 6],
            "student_std_mean": [0.1] * steps,
            "student_rankme": [3.0] * steps,
            "knn_acc": [0.4, None, None, 0.5],
        }
    )


class Run:
    def __init__(self):
        self.history = history()


def test_notebook_02s_six_collapse_curves_are_two_rows_of_three():
    metrics = ["jepa", "std_mean", "rankme", "student_std_mean", "student_rankme", "knn_acc"]
    fig = plot_collapse_curves({"healthy": Run(), "frozen": Run()}, metrics=metrics)
    assert rows_and_columns(fig) == (2, 3)
    width, height = fig.get_size_inches()
    assert width / height < 2  # was 6 panels in a row: 21.6 x 3.2 inches
    plt.close(fig)


def test_notebook_04s_four_live_curves_are_two_by_two_and_redraw():
    live = LiveCurves(["loss", "std_min", "rankme", "knn_acc"])  # outside IPython: no display
    for row in history().rename(columns={"jepa": "loss", "std_mean": "std_min"}).to_dict("records"):
        live(row)
    fig = live.close()
    assert rows_and_columns(fig) == (2, 2)
    assert all(ax.lines for ax in fig.axes)  # every panel drew its curve
    plt.close(fig)


def test_the_vicreg_table_is_two_by_two():
    table = pd.DataFrame(
        {
            "invariance": [0.1, 0.2],
            "variance": [1.0, 0.5],
            "covariance": [0.01, 2.0],
            "rankme": [10.0, 1.5],
        },
        index=["healthy", "fully_collapsed"],
    )
    fig = plot_vicreg_table(table)
    assert rows_and_columns(fig) == (2, 2)
    plt.close(fig)
