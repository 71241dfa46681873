"""Every numbered notebook keeps the workbook's conventions: committed without outputs, one
``parameters`` cell with the standard knobs, a first cell that says how long smoke mode takes;
and (slow) each runs headless under papermill from any working directory, writing its
``metrics.json`` and figures where it was told to."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from jepa_core.paths import notebooks_dir
from jepa_core.runner.execute import execute

# Whatever exists when the tests are collected: notebooks are added as the workbook grows.
NOTEBOOKS = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
STANDARD_PARAMETERS = ("smoke", "device", "seed", "output_dir")
# "smoke (`JEPA_SMOKE=1`): about 20 s", "Smoke ...: about 1 minute"
SMOKE_TIMING = re.compile(
    r"smoke.{0,80}?\d+\s*(s|sec|seconds?|min|minutes?)\b", re.IGNORECASE | re.DOTALL
)

by_name = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def parameter_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def test_there_are_numbered_notebooks():
    assert len(NOTEBOOKS) >= 1


@by_name
def test_notebook_is_committed_with_outputs_stripped(path):
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i + 1} has outputs"
            assert cell.execution_count is None, f"cell {i + 1} has an execution count"


@by_name
def test_notebook_declares_the_generic_python3_kernel(path):
    assert read(path).metadata["kernelspec"]["name"] == "python3"


@by_name
def test_notebook_has_one_parameters_cell_with_the_standard_knobs(path):
    cells = parameter_cells(read(path))
    assert len(cells) == 1
    tree = ast.parse(cells[0].source)
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    missing = [name for name in STANDARD_PARAMETERS if name not in assigned]
    assert not missing, f"parameters cell lacks {missing}"


@by_name
def test_first_cell_is_markdown_saying_how_long_smoke_mode_takes(path):
    first = read(path).cells[0]
    assert first.cell_type == "markdown"
    assert SMOKE_TIMING.search(first.source), "the first cell must give the smoke-mode time"


@pytest.mark.slow
@by_name
def test_notebook_runs_headless_in_smoke_mode_from_another_folder(path, tmp_path):
    out = tmp_path / "results"
    execute(
        path,
        tmp_path / "executed" / path.name,
        {"smoke": True, "output_dir": str(out)},
        cwd=tmp_path,
    )
    record = json.loads((out / "metrics.json").read_text())
    assert record["parameters"]["smoke"] is True
    headline = {k: v for k, v in record["metrics"].items() if k != "figures"}
    assert headline, "metrics.json holds no metrics"
    for figure in record["metrics"].get("figures", []):
        assert (out / figure).is_file(), f"figure {figure} listed but not written"
