"""Figures of several panels laid out to be read: a grid, not one long row.

    fig, axes = panel_grid(6)            # 2 rows of 3
    for ax, metric in zip(axes, metrics): ...

Up to three panels sit in one row; four make a 2 x 2 grid; more fill rows of ``columns``
(three by default). Cells the panels do not use are hidden.
"""

from __future__ import annotations

import math


def grid_shape(n: int, columns: int = 3) -> tuple[int, int]:
    """(rows, columns) for ``n`` panels: one row up to three, then about square, at most
    ``columns`` wide."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"a figure needs at least one panel; got n={n!r}")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be an integer >= 1; got {columns!r}")
    cols = n if n <= min(3, columns) else min(columns, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def panel_grid(n: int, *, columns: int = 3, panel: tuple[float, float] = (3.6, 3.0)):
    """A matplotlib figure of ``n`` panels of ``panel`` inches in a :func:`grid_shape` grid;
    returns ``(fig, axes)`` with the ``n`` axes in reading order."""
    import matplotlib.pyplot as plt

    rows, cols = grid_shape(n, columns)
    fig, grid = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False)
    cells = list(grid.flat)
    for spare in cells[n:]:
        spare.set_visible(False)
    return fig, cells[:n]
