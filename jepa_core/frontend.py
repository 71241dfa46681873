"""What a notebook shows depends on whether a front end is there to show it.

In JupyterLab the explorers are ``ipywidgets.interact`` sliders and training draws a widget
progress bar. A headless runner (papermill, nbval, the workbook, a sweep) has no front end:
there, widgets only send bursts of ``comm`` messages that nobody renders, and under load those
bursts make nbclient miss the kernel's reply and wait for ever (nbclient issue 312, papermill
issue 723; measured by ``benchmarks/headless_widgets.py``). So the workbook's headless runners
set ``JEPA_HEADLESS=1`` for their kernels, and under it:

- :func:`explore` draws the explorer's figure once, with the drawing function's defaults, and
  builds no widget;
- :func:`progress_bar` is tqdm's plain text bar instead of the widget bar of ``tqdm.auto``.

In JupyterLab nothing changes: the same call is ``interact`` with the same controls.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

HEADLESS_ENV = "JEPA_HEADLESS"


def env_flag(name: str) -> bool:
    """An on/off environment variable: ``1``/``true`` on, ``0``/``false``/unset off, else an
    error naming it."""
    value = os.environ.get(name, "0").strip().lower()
    if value not in ("0", "1", "true", "false", ""):
        raise ValueError(f"{name} must be 1 or 0; got {value!r}")
    return value in ("1", "true")


def headless() -> bool:
    """True when the kernel runs under a runner without a front end (``JEPA_HEADLESS=1``)."""
    return env_flag(HEADLESS_ENV)


def explore(draw: Callable[..., Any], **controls: Any):
    """Draw ``draw()`` with its defaults; under a front end, with sliders that redraw it.

    Each control is what ``ipywidgets.interact`` takes for that argument (``(min, max, step)``
    for a slider, a list for a drop-down; the value comes from ``draw``'s default), or a
    function of no argument returning a widget, built only when a front end is there::

        explore(redraw, seed=(0, 50), temperature=lambda: widgets.FloatLogSlider(...))

    Returns the ``interact`` widget in JupyterLab, ``None`` headless (where nothing is built).
    """
    if headless():
        draw()
        return None
    import ipywidgets as widgets

    built = {name: c() if callable(c) else c for name, c in controls.items()}
    return widgets.interact(draw, **built)


def progress_bar(**kwargs: Any):
    """A tqdm bar: the notebook widget under a front end, plain text headless."""
    if headless():
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(**kwargs)
