"""Headless runs cannot hang: every execution has a per-cell timeout that names the notebook and
the cell, the kernels run with ``JEPA_HEADLESS=1``, and under it no notebook builds a widget
(the bursts of widget messages were what made nbclient miss a reply and wait for ever)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from jepa_core import frontend
from jepa_core.paths import notebooks_dir
from jepa_core.runner.execute import DEFAULT_CELL_TIMEOUT, NotebookFailed, cell_timeout, execute

NOTEBOOKS = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def write_notebook(path: Path, sources: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


def test_a_cell_past_the_timeout_fails_naming_the_notebook_and_the_cell_and_keeps_the_output(
    tmp_path,
):
    source = write_notebook(
        tmp_path / "sleeps.ipynb", ["print('first')", "import time\ntime.sleep(120)", "after = 1"]
    )
    output = tmp_path / "out" / "sleeps.ipynb"
    start = time.perf_counter()
    with pytest.raises(NotebookFailed) as info:
        execute(source, output, cwd=tmp_path, timeout=3)
    assert time.perf_counter() - start < 60  # the timeout fired; the cell's sleep did not end it
    message = str(info.value)
    assert message.startswith("sleeps.ipynb failed in cell 2 (import time)"), message
    assert "timed out" in message and "3 s" in message and "JEPA_CELL_TIMEOUT" in message
    executed = nbformat.read(str(output), as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "first\n"  # the partial output is kept
    assert executed.cells[2].execution_count is None


def test_the_cell_timeout_comes_from_the_argument_then_the_environment_then_the_default(
    monkeypatch,
):
    monkeypatch.delenv("JEPA_CELL_TIMEOUT", raising=False)
    assert cell_timeout() == DEFAULT_CELL_TIMEOUT
    monkeypatch.setenv("JEPA_CELL_TIMEOUT", "42")
    assert cell_timeout() == 42
    assert cell_timeout(7) == 7


@pytest.mark.parametrize("value", [0, -5, "soon", True])
def test_a_bad_cell_timeout_is_refused_naming_it(value):
    with pytest.raises(ValueError, match="cell_timeout must be a number of seconds > 0"):
        cell_timeout(value)


def test_a_bad_timeout_in_the_environment_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("JEPA_CELL_TIMEOUT", "ten")
    with pytest.raises(
        ValueError, match="JEPA_CELL_TIMEOUT must be a number of seconds > 0; got 'ten'"
    ):
        cell_timeout()


@pytest.mark.parametrize(
    "command",
    [
        ["jepa_core.runner.workbook", "run"],
        ["jepa_core.runner.sweep", "notebooks/04_training.ipynb", "--grid", "seed=0"],
    ],
)
def test_the_clis_refuse_a_bad_cell_timeout_before_running_anything(command):
    done = subprocess.run(
        [sys.executable, "-m", *command, "--cell-timeout", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=notebooks_dir().parent,
    )
    assert done.returncode == 2
    assert "cell_timeout must be a number of seconds > 0; got -1" in done.stderr


def test_the_kernel_of_a_headless_execution_runs_with_jepa_headless(tmp_path, monkeypatch):
    monkeypatch.delenv("JEPA_HEADLESS", raising=False)  # not inherited from pytest: set by execute
    source = write_notebook(
        tmp_path / "env.ipynb", ["import os\nprint(os.environ.get('JEPA_HEADLESS'))"]
    )
    execute(source, tmp_path / "env_out.ipynb", cwd=tmp_path, timeout=120)
    executed = nbformat.read(str(tmp_path / "env_out.ipynb"), as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "1\n"
    import os

    assert "JEPA_HEADLESS" not in os.environ  # set for the kernel only, restored afterwards


def test_headless_explore_draws_once_with_the_defaults_and_builds_no_widget(monkeypatch):
    import ipywidgets

    monkeypatch.setenv("JEPA_HEADLESS", "1")
    opened = []
    monkeypatch.setattr(
        ipywidgets.Widget, "open", lambda self: opened.append(self)
    )  # every widget opens a comm
    calls, factory_called = [], []
    result = frontend.explore(
        lambda a=3, b="x": calls.append((a, b)), a=(0, 10), b=lambda: factory_called.append(1)
    )
    assert result is None and calls == [(3, "x")] and not factory_called
    assert opened == []
    ipywidgets.IntSlider()  # the probe itself works: a widget built here would be seen
    assert len(opened) == 1


def test_explore_under_a_front_end_is_interact_with_the_same_controls(monkeypatch):
    import ipywidgets

    monkeypatch.setenv("JEPA_HEADLESS", "0")
    calls = []
    box = frontend.explore(
        lambda a=3, t=0.1: calls.append((a, t)),
        a=(0, 10),
        t=lambda: ipywidgets.FloatLogSlider(value=0.1, base=10, min=-2, max=0),
    )
    try:
        sliders = {w.description: w for w in box.widget.children if hasattr(w, "description")}
        assert isinstance(sliders["a"], ipywidgets.IntSlider) and sliders["a"].value == 3
        assert isinstance(sliders["t"], ipywidgets.FloatLogSlider)
        assert calls[0] == (3, 0.1)  # drawn once on display, as interact does
        sliders["a"].value = 7
        assert calls[-1] == (7, 0.1)  # moving a slider redraws
    finally:
        box.widget.close_all()


def test_the_progress_bar_is_plain_text_headless_and_the_widget_bar_otherwise(monkeypatch):
    from tqdm.std import tqdm as plain

    monkeypatch.setenv("JEPA_HEADLESS", "1")
    bar = frontend.progress_bar(total=3, disable=True)
    assert type(bar) is plain
    bar.close()
    monkeypatch.setenv("JEPA_HEADLESS", "0")
    from tqdm.auto import tqdm as auto

    bar = frontend.progress_bar(total=3, disable=True)
    assert type(bar) is auto
    bar.close()


def test_a_bad_jepa_headless_value_is_refused(monkeypatch):
    monkeypatch.setenv("JEPA_HEADLESS", "maybe")
    with pytest.raises(ValueError, match="JEPA_HEADLESS must be 1 or 0; got 'maybe'"):
        frontend.headless()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_notebook_hands_widgets_to_a_headless_kernel(path):
    """Widgets are built only through ``explore`` (or tqdm via the trainer's progress bar)."""
    nb = nbformat.read(str(path), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    direct = re.findall(
        r"\binteract(?:ive)?\s*\(|\bdisplay\(\s*widgets\.|tqdm\.auto|tqdm\.notebook", code
    )
    assert not direct, f"{path.name} builds widgets outside jepa_core.frontend: {direct}"


def test_pytest_and_nbval_kernels_run_headless():
    import os

    assert os.environ.get("JEPA_HEADLESS") == "1"  # set by the repository's conftest.py
