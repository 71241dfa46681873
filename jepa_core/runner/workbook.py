"""The workbook's main job: run the numbered notebooks headless, in order, and summarise them.

    python -m jepa_core.runner.workbook run [--smoke] [--only 02 05]

Each notebook is executed by papermill into ``results/notebooks/<name>.ipynb`` (plus ``.html``),
writes its own ``results/<name>/metrics.json`` and figures, and ``results/summary.md`` gathers
the headline numbers with links to the figures, ``results/index.html`` the page to browse them
(``jepa_core.runner.index_page``). ``--smoke`` writes the same tree under
``results/smoke/``, so it never touches a default run's outputs. A failing notebook stops the
run with a non-zero exit naming the notebook and the cell; its partial executed notebook is
kept. A cell that runs past ``--cell-timeout`` seconds fails the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..paths import notebooks_dir
from ..results import output_dir_for, results_root
from .execute import NotebookFailed, add_cell_timeout_option, execute
from .execute import cell_timeout as _cell_timeout
from .index_page import write_index


def numbered_notebooks() -> list[Path]:
    return sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def select(only: Sequence[str] | None) -> list[Path]:
    books = numbered_notebooks()
    if not only:
        return books
    chosen = []
    for key in only:
        match = [p for p in books if p.stem == key or p.stem.split("_", 1)[0] == key.zfill(2)]
        if not match:
            raise ValueError(
                f"--only {key!r} matches no notebook; choose from "
                f"{', '.join(p.stem.split('_', 1)[0] for p in books)} (or full names)"
            )
        chosen += [p for p in match if p not in chosen]
    return sorted(chosen)


def to_html(executed: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(executed), as_version=4))
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and len(value) > 6:
        return f"[{len(value)} values]"
    return str(value)


def write_summary(books: Sequence[Path], seconds: dict[str, float], smoke: bool) -> Path:
    """``results/summary.md`` (``results/smoke/summary.md``): the headline table of notebook 05,
    then each notebook's scalar metrics and links to its figures."""
    root = results_root(smoke)
    lines = [
        "# JEPA Workbook: summary of the last `make run`",
        "",
        f"Mode: {'smoke' if smoke else 'default'}; written {time.strftime('%Y-%m-%d %H:%M:%S')}.",
        "",
    ]
    evaluation = root / "05_evaluation" / "metrics.json"
    if evaluation.exists():
        table = json.loads(evaluation.read_text())["metrics"].get("comparison_table")
        if table:
            lines += ["## k-NN accuracy of each method against initialisation and raw pixels", ""]
            columns = list(table[0])
            lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_fmt(row[c]) for c in columns) + " |" for row in table]
            lines.append("")
    for book in books:
        name = book.stem
        metrics_path = root / name / "metrics.json"
        lines += [
            f"## {name}",
            "",
            f"Executed notebook: [notebooks/{name}.html](notebooks/{name}.html); "
            f"{seconds.get(name, float('nan')):.0f} s.",
            "",
        ]
        if not metrics_path.exists():
            lines += ["(no metrics.json written)", ""]
            continue
        metrics = json.loads(metrics_path.read_text())["metrics"]
        scalars = {
            k: v
            for k, v in metrics.items()
            if isinstance(v, (int, float, str, bool)) and k != "figures"
        }
        if scalars:
            lines += ["| metric | value |", "|---|---|"] + [
                f"| {k} | {_fmt(v)} |" for k, v in scalars.items()
            ]
        figures = metrics.get("figures", [])
        if figures:
            lines += ["", "Figures: " + ", ".join(f"[{f}]({name}/{f})" for f in figures)]
        lines.append("")
    path = root / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(
    smoke: bool = False,
    only: Sequence[str] | None = None,
    html: bool = True,
    cell_timeout: float | None = None,
) -> int:
    books = select(only)
    cell_timeout = _cell_timeout(cell_timeout)  # a bad value fails before anything runs
    out_dir = output_dir_for("notebooks", smoke=smoke)
    seconds: dict[str, float] = {}
    total = time.perf_counter()
    for i, book in enumerate(books, 1):
        print(f"[{i}/{len(books)}] {book.stem} ...", flush=True)
        try:
            done = execute(book, out_dir / book.name, {"smoke": smoke}, timeout=cell_timeout)
        except NotebookFailed as e:
            print(f"FAILED: {e}", file=sys.stderr, flush=True)
            if html and e.output.exists():
                to_html(e.output)  # the partial notebook, readable from the index
            write_summary(books[:i], seconds, smoke)
            write_index([b.stem for b in books[:i]], smoke=smoke, seconds=seconds)
            return 1
        seconds[book.stem] = done.seconds
        if html:
            to_html(done.output)
        print(f"[{i}/{len(books)}] {book.stem} ok in {done.seconds:.0f} s", flush=True)
    summary = write_summary(books, seconds, smoke)
    index = write_index([b.stem for b in books], smoke=smoke, seconds=seconds)
    print(
        f"all {len(books)} notebooks ran in {time.perf_counter() - total:.0f} s; "
        f"summary: {summary}; "
        f"browse: {index}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jepa_core.runner.workbook", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the numbered notebooks with papermill")
    p_run.add_argument("--smoke", action="store_true", help="tiny sizes: every notebook in seconds")
    p_run.add_argument("--only", nargs="+", metavar="NN", help="only these notebooks (e.g. 02 05)")
    p_run.add_argument("--no-html", action="store_true", help="skip the HTML copies")
    add_cell_timeout_option(p_run)
    args = parser.parse_args(argv)
    try:
        return run(
            smoke=args.smoke, only=args.only, html=not args.no_html, cell_timeout=args.cell_timeout
        )
    except ValueError as e:
        parser.error(str(e))
    return 2


if __name__ == "__main__":
    sys.exit(main())
