"""The workbook runner: which notebooks `--only` picks, the summary it writes, and how a failing
notebook is reported (by name and cell, its partial output kept)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jepa_core.runner.execute import KERNEL_NAME, NotebookFailed, ensure_kernel, execute
from jepa_core.runner.workbook import numbered_notebooks, select, write_summary

NAMES = ("01_masks", "02_ema", "10_extra")


@pytest.fixture
def workbook_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway repository: numbered notebooks plus one scratch notebook that is no chapter."""
    monkeypatch.setenv("JEPA_WORKBOOK_ROOT", str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    for name in (*NAMES, "scratch"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text("{}")
    return tmp_path


def stems(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_numbered_notebooks_are_the_chapters_in_order(workbook_root):
    assert stems(numbered_notebooks()) == list(NAMES)


def test_select_without_only_takes_every_numbered_notebook(workbook_root):
    assert stems(select(None)) == list(NAMES)
    assert stems(select([])) == list(NAMES)


@pytest.mark.parametrize(
    "only,expected",
    [
        (["02"], ["02_ema"]),
        (["2"], ["02_ema"]),  # a single digit is the same chapter
        (["02_ema"], ["02_ema"]),  # the full name
        (["10_extra", "01"], ["01_masks", "10_extra"]),  # run in chapter order
        (["01", "01_masks"], ["01_masks"]),  # named twice, run once
    ],
)
def test_select_picks_by_number_or_full_name(workbook_root, only, expected):
    assert stems(select(only)) == expected


def test_select_refuses_an_unknown_notebook_listing_the_choices(workbook_root):
    with pytest.raises(
        ValueError, match=r"--only '07' matches no notebook; choose from 01, 02, 10"
    ):
        select(["02", "07"])


@pytest.mark.parametrize("smoke", [False, True])
def test_write_summary_has_the_comparison_table_each_notebooks_metrics_and_figure_links(
    workbook_root, smoke
):
    # a smoke run keeps its own tree, so it never overwrites a default run's results
    results = workbook_root / "results" / "smoke" if smoke else workbook_root / "results"
    table = [{"method": "ijepa", "knn_acc": 0.412345}, {"method": "cjepa", "knn_acc": 0.5}]
    (results / "05_evaluation").mkdir(parents=True)
    (results / "05_evaluation" / "metrics.json").write_text(
        json.dumps({"metrics": {"comparison_table": table}})
    )
    (results / "01_masks").mkdir(parents=True)
    metrics = {
        "context_share": 0.123456,
        "runs": 3,
        "curve": [1, 2],
        "figures": ["masks.png", "stats.png"],
    }
    (results / "01_masks" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    books = [workbook_root / "notebooks" / f"{n}.ipynb" for n in ("01_masks", "02_ema")]

    path = write_summary(books, {"01_masks": 12.4, "02_ema": 3.0}, smoke=smoke)

    assert path == results / "summary.md"
    text = path.read_text()
    assert ("Mode: smoke" if smoke else "Mode: default") in text
    assert "| method | knn_acc |" in text
    assert f"| ijepa | {0.412345:.4g} |" in text and "| cjepa | 0.5 |" in text
    assert f"| context_share | {0.123456:.4g} |" in text and "| runs | 3 |" in text
    assert "curve" not in text  # lists are no headline numbers
    assert "[masks.png](01_masks/masks.png)" in text and "[stats.png](01_masks/stats.png)" in text
    assert "[notebooks/01_masks.html](notebooks/01_masks.html); 12 s." in text
    ema_section = text.split("## 02_ema", 1)[1]
    assert "(no metrics.json written)" in ema_section


def failing_notebook(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("value = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# fails on purpose"),
        params,
        nbformat.v4.new_code_cell('raise RuntimeError(f"boom {value}")'),
        nbformat.v4.new_code_cell("after = 1"),
    ]
    nbformat.write(nb, str(path))
    return nb


def test_a_failing_notebook_names_itself_and_the_cell_and_keeps_its_partial_output(tmp_path):
    source = tmp_path / "breaks.ipynb"
    original = failing_notebook(source)
    raising = (
        next(i for i, c in enumerate(original.cells) if "raise" in c.source) + 1
    )  # counted from 1
    output = tmp_path / "out" / "breaks.ipynb"

    with pytest.raises(NotebookFailed) as info:
        execute(source, output, {"value": 7}, cwd=tmp_path)

    error = info.value
    assert error.cell == f'{raising} (raise RuntimeError(f"boom {{value}}"))'
    message = str(error)
    assert message.startswith(f"breaks.ipynb failed in cell {raising} ")
    assert "RuntimeError: boom 7" in message  # the injected parameter reached the kernel
    assert output.exists()
    executed = nbformat.read(str(output), as_version=4)
    last = next(c for c in executed.cells if c.source == "after = 1")
    assert last.execution_count is None  # nothing ran after the failure


def test_ensure_kernel_registers_a_kernel_running_this_environments_python():
    from jupyter_client.kernelspec import KernelSpecManager

    assert ensure_kernel() == KERNEL_NAME == "jepa-workbook"
    argv0 = KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv[0]
    # The kernel's interpreter is this environment's (python or python3 of the same bin/),
    # not the base interpreter a venv's python links to.
    assert Path(os.path.abspath(argv0)).parent == Path(os.path.abspath(sys.executable)).parent
    prefix = subprocess.run(
        [argv0, "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert prefix == sys.prefix


def test_run_writes_the_summary_and_the_index_page_for_its_notebooks(workbook_root):
    """``make run`` / ``make smoke`` end with ``results/index.html`` beside ``summary.md``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("smoke = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('the verdict: 2 > 1')\nassert 2 > 1"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for name in (*NAMES, "scratch"):
        (workbook_root / "notebooks" / f"{name}.ipynb").unlink()
    nbformat.write(nb, str(workbook_root / "notebooks" / "01_tiny.ipynb"))
    from jepa_core.runner.workbook import run

    assert run(smoke=True, html=True, cell_timeout=120) == 0
    smoke = workbook_root / "results" / "smoke"
    page = (smoke / "index.html").read_text()
    assert (smoke / "summary.md").exists() and (smoke / "notebooks" / "01_tiny.html").exists()
    assert "01_tiny" in page and "the verdict: 2 &gt; 1" in page
