"""Soak test of headless execution under load: do widget cells stall the notebook client?

    python benchmarks/headless_widgets.py                         # defaults below, ~10 minutes
    python benchmarks/headless_widgets.py --cells 40 --repeats 1  # shorter

While ``--load`` busy processes keep the CPU cores full, it runs:

1. **the cause**, in one kernel each: ``--cells`` cells of ``ipywidgets.interact`` (sliders and a
   figure, as the explorers were written before) and as many of ``jepa_core.frontend.explore``
   with ``JEPA_HEADLESS=1`` (what the notebooks do now), through nbclient as papermill drives it,
   with a short per-cell timeout ``--detector``. A cell whose reply the client missed waits
   until that timeout (without one it would wait for ever): such a cell is counted as a stall.
2. **the product**: every notebook that has an explorer, at smoke size, ``--repeats`` times,
   through the workbook's own runner (per-cell timeout ``--cell-timeout``): runs, failures, the
   longest cell.

Writes ``results/benchmarks/headless_widgets.json``. A stall is a finding, never retried.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from jepa_core.paths import notebooks_dir, resolve, results_dir
from jepa_core.results import write_metrics

SETUP = """\
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
import ipywidgets as widgets
from jepa_core.frontend import explore


def redraw(low=0.15, high=0.2, n=4, seed=0):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([low, high, n, seed])
    plt.show()
"""
CELLS = {
    "interact": "widgets.interact(redraw, low=(0.05, 0.5, 0.01), high=(0.05, 0.5, 0.01), n=(1, 8), "
    "seed=(0, 50));",
    "explore": "explore(redraw, low=(0.05, 0.5, 0.01), high=(0.05, 0.5, 0.01), n=(1, 8), "
    "seed=(0, 50));",
}


def busy(seconds: float) -> None:
    """Keep one core busy for at most ``seconds``."""
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x = (x * 1103515245 + 12345) % 2**31


def soak_cells(kind: str, cells: int, detector: float) -> dict:
    """Execute ``cells`` copies of one explorer cell in one kernel; time each."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    from jepa_core.runner.execute import ensure_kernel, headless_kernel_env

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)] + [
        nbformat.v4.new_code_cell(CELLS[kind]) for _ in range(cells)
    ]
    client = NotebookClient(nb, timeout=detector, kernel_name=ensure_kernel(), allow_errors=False)
    durations, timeouts = [], 0
    with headless_kernel_env(kind == "explore"), client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            start = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                timeouts += 1
            if index:
                durations.append(time.perf_counter() - start)
    stalls = sum(d >= 0.9 * detector for d in durations)
    return {
        "cells": cells,
        "stalls": int(stalls),
        "timeouts": timeouts,
        "longest_cell_seconds": max(durations),
        "median_cell_seconds": sorted(durations)[len(durations) // 2],
    }


def soak_notebooks(names: list[str], repeats: int, cell_timeout: float) -> dict:
    """Run each notebook at smoke size ``repeats`` times through the workbook's runner."""
    from jepa_core.runner.execute import NotebookFailed, execute

    runs, failures, longest, longest_where, explorer_longest = 0, [], 0.0, None, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name in names:
                path = notebooks_dir() / f"{name}.ipynb"
                out = Path(tmp) / f"{r}_{name}.ipynb"
                status = "ok"
                try:
                    execute(
                        path,
                        out,
                        {"smoke": True, "output_dir": str(Path(tmp) / f"{r}_{name}")},
                        timeout=cell_timeout,
                    )
                except NotebookFailed as e:
                    failures.append(str(e))
                    status = f"FAILED: {e}"
                runs += 1
                cells = [
                    c
                    for c in nbformat.read(str(out), as_version=4).cells  # the author's cells
                    if "injected-parameters" not in c.metadata.get("tags", [])
                ]
                for i, cell in enumerate(cells, 1):
                    seconds = cell.metadata.get("papermill", {}).get("duration") or 0.0
                    if "explore(" in cell.source:
                        explorer_longest = max(explorer_longest, seconds)
                    if seconds > longest:
                        longest, longest_where = seconds, f"{name} cell {i}"
                print(f"  run {r + 1}/{repeats} {name}: {status}", flush=True)
    return {
        "notebooks": names,
        "repeats": repeats,
        "runs": runs,
        "failures": failures,
        "longest_cell_seconds": longest,
        "longest_cell": longest_where,
        "longest_explorer_cell_seconds": explorer_longest,
    }


def explorer_notebooks() -> list[str]:
    return [
        p.stem
        for p in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
        if "explore(" in p.read_text()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cells", type=int, default=60, help="explorer cells per kernel, each variant"
    )
    parser.add_argument(
        "--detector", type=float, default=5.0, help="per-cell timeout of the cell soak, s"
    )
    parser.add_argument(
        "--notebooks",
        nargs="*",
        default=None,
        help="notebooks to run at smoke size (default: every one with an explorer)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of each notebook")
    parser.add_argument(
        "--cell-timeout", type=float, default=300.0, help="per-cell timeout of the runs, s"
    )
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy processes")
    parser.add_argument(
        "--load-minutes", type=float, default=30.0, help="the load stops by itself after this"
    )
    parser.add_argument("--output", default=None, help="folder for headless_widgets.json")
    args = parser.parse_args(argv)
    names = explorer_notebooks() if args.notebooks is None else args.notebooks

    load = [
        mp.Process(target=busy, args=(args.load_minutes * 60,), daemon=True)
        for _ in range(args.load)
    ]
    for p in load:
        p.start()
    start = time.perf_counter()
    try:
        results = {}
        for kind in ("interact", "explore"):
            results[f"{kind}_cells"] = soak_cells(kind, args.cells, args.detector)
            print(f"{kind}: {results[f'{kind}_cells']}", flush=True)
        results["notebook_runs"] = soak_notebooks(names, args.repeats, args.cell_timeout)
        print(f"notebooks: {results['notebook_runs']}", flush=True)
    finally:
        for p in load:
            p.terminate()
            p.join()
    results["machine"] = {
        "cpu_count": os.cpu_count(),
        "load_processes": args.load,
        "seconds": round(time.perf_counter() - start, 1),
    }
    out = resolve(args.output) if args.output else results_dir("benchmarks")
    path = write_metrics(out, parameters=vars(args), metrics=results, name="headless_widgets.json")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
