"""``results/index.html``: one page to browse a run of the workbook.

    python -m jepa_core.runner.index_page [--smoke]      # rebuild it from what is there

The page holds the headline comparison of notebook 05 (each method against the same encoder at
initialisation and raw pixels, naming the encoder each number belongs to), then for every
notebook its verdicts in words (what its cells printed, taken from the executed notebook), its
figures inline and links to the executed notebook. Every path in it is relative, so the page
works opened from disk, copied with its folder, or served. ``results/smoke/index.html`` is the
same for smoke runs.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..results import results_root

EVALUATION = "05_evaluation"
NOTEBOOK_NAME = re.compile(r"^\d\d_\w+$")

# What each row of notebook 05's comparison_table measures, in words.
METHOD_LABELS = {"init": "same encoder at initialisation", "raw pixels": "raw pixels"}
ENCODER_LABELS = {
    "target": "target encoder (EMA teacher)",
    "context": "context encoder (student)",
    "target=context": "initial weights (target = context)",
    "-": "none: the pixels themselves",
}
POOL_LABELS = {
    "mean": "mean-pooled tokens",
    "flatten": "flattened tokens",
    "pixels": "pixels",
    "pixels, centred": "pixels, mean-centred",
}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.95em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.baseline td { background: #f4f4f4; } .up { color: #1a7f37; } .down { color: #b42318; }
.verdict { border-left: 4px solid #4a7bd0; background: #f5f8fd; margin: 0.5em 0;
           padding: 0.4em 0.8em; white-space: pre-wrap; }
.verdict.table { font-family: ui-monospace, monospace; font-size: 0.85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; } section { margin-bottom: 2.5em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "–" if value is None or isinstance(value, float) else str(value)
    return f"{number:.3f}" if isinstance(value, float) else str(value)


def read_record(path: Path) -> dict[str, Any] | None:
    """A notebook's ``metrics.json`` (``metrics``, ``timings``, ...), or None when missing."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise ValueError(f"{path} is not a workbook metrics.json: it has no 'metrics' object")
    return record


def printed_verdicts(executed: Path) -> list[str]:
    """What each code cell of an executed notebook printed to stdout, one block per cell."""
    if not executed.exists():
        return []
    book = json.loads(executed.read_text())
    blocks = []
    for cell in book.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            continue
        text = "".join(
            "".join(o.get("text", ""))
            for o in cell.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stdout"
        )
        text = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
        if text.strip():
            blocks.append(text)
    return blocks


def _is_tabular(text: str) -> bool:
    """Columns aligned with runs of spaces (a printed DataFrame) read best in a fixed font."""
    return sum(bool(re.search(r"\S {2,}\S", line)) for line in text.splitlines()) >= 2


def comparison_section(root: Path) -> str:
    """The headline table from ``05_evaluation/metrics.json``'s ``comparison_table``."""
    record = read_record(root / EVALUATION / "metrics.json")
    metrics = record["metrics"] if record else {}
    table = metrics.get("comparison_table")
    if not table:
        return (
            "<section id='comparison'><h2>Headline comparison</h2><p>Notebook 05 has not "
            "written its comparison yet (no <code>05_evaluation/metrics.json</code> with a "
            "<code>comparison_table</code>).</p></section>"
        )
    knn = next((c for c in table[0] if re.fullmatch(r"knn\d+", c)), None)
    if knn is None:
        raise ValueError(
            f"{root / EVALUATION / 'metrics.json'}: comparison_table has no knn<k> "
            f"column; columns: {list(table[0])}"
        )
    k = knn[3:]
    init = {row.get("pool"): _number(row.get(knn)) for row in table if row.get("method") == "init"}
    pixels = [
        _number(row.get(knn))
        for row in table
        if row.get("method") == "raw pixels" and row.get("pool") == "pixels"
    ]
    pixels_score = pixels[0] if pixels else None

    def delta(value: float | None, reference: float | None) -> str:
        if value is None or reference is None:
            return "<td class='num'>–</td>"
        d = value - reference
        return f"<td class='num {'up' if d > 0 else 'down'}'>{d:+.3f}</td>"

    rows = []
    for row in table:
        method, encoder, pool = row.get("method"), row.get("encoder"), row.get("pool")
        score = _number(row.get(knn))
        baseline = method in METHOD_LABELS
        cells = [
            f"<td>{_e(METHOD_LABELS.get(method, method))}</td>",
            f"<td>{_e(ENCODER_LABELS.get(encoder, encoder))}</td>",
            f"<td>{_e(POOL_LABELS.get(pool, pool))}</td>",
            f"<td class='num'>{_fmt(row.get(knn))}</td>",
            f"<td class='num'>{_fmt(row.get('linear_probe'))}</td>",
        ]
        if baseline:
            cells += ["<td class='num'>–</td>", "<td class='num'>–</td>"]
        else:
            cells += [delta(score, init.get(pool)), delta(score, pixels_score)]
        rows.append(f"<tr class='{'baseline' if baseline else 'method'}'>{''.join(cells)}</tr>")
    header = (
        "<tr><th>method</th><th>encoder the numbers belong to</th><th>features</th>"
        f"<th>{k}-NN accuracy</th><th>linear probe</th><th>{k}-NN vs initialisation "
        f"(same features)</th><th>{k}-NN vs raw pixels</th></tr>"
    )
    best = metrics.get("best_method")
    note = f" Best mean-pooled method: <b>{_e(best)}</b>." if best else ""
    return (
        "<section id='comparison'><h2>Headline comparison (notebook 05)</h2>"
        f"<p>Test accuracy of a {k}-NN classifier and a linear probe on each encoder's "
        "features, against the same encoder at initialisation and raw pixels. Grey rows are "
        f"the baselines.{note}</p><table>{header}{''.join(rows)}</table></section>"
    )


def notebook_section(root: Path, name: str, seconds: float | None = None) -> str:
    """One notebook: link to the executed copy, its printed verdicts, its figures."""
    record = read_record(root / name / "metrics.json")
    metrics = record["metrics"] if record else None
    executed_html = root / "notebooks" / f"{name}.html"
    executed = root / "notebooks" / f"{name}.ipynb"
    parts = [f"<section id='{_e(name)}'><h2>{_e(name)}</h2>"]
    links = [
        f"<a href='notebooks/{_e(p.name)}'>"
        f"{'executed notebook' if p.suffix == '.html' else p.name}</a>"
        for p in (executed_html, executed)
        if p.exists()
    ]
    if seconds is None and record is not None:
        seconds = _number((record.get("timings") or {}).get("notebook_seconds"))
    took = f"ran in {seconds:.0f} s" if seconds is not None else ""
    parts.append(
        f"<p class='meta'>{' · '.join([*links, took] if took else links) or 'not run yet'}</p>"
    )
    blocks = printed_verdicts(executed)
    if blocks:
        parts.append("<h3>What it found</h3>")
        parts += [
            f"<div class='verdict{' table' if _is_tabular(b) else ''}'>{_e(b)}</div>"
            for b in blocks
        ]
    if metrics is None:
        parts.append("<p>No <code>metrics.json</code> yet: the notebook did not finish.</p>")
    else:
        scalars = {
            k: v
            for k, v in metrics.items()
            if k != "figures" and isinstance(v, (int, float, str, bool))
        }
        if scalars:
            rows = "".join(
                f"<tr><td>{_e(k)}</td><td class='num'>{_e(_fmt(v))}</td></tr>"
                for k, v in scalars.items()
            )
            parts.append(
                f"<details><summary>headline numbers ({len(scalars)})</summary>"
                f"<table>{rows}</table></details>"
            )
        for figure in metrics.get("figures", []):
            parts.append(
                f"<figure><img src='{_e(name)}/{_e(figure)}' alt='{_e(name)}: {_e(figure)}'>"
                f"<figcaption>{_e(Path(figure).stem.replace('_', ' '))}</figcaption></figure>"
            )
    parts.append("</section>")
    return "\n".join(parts)


def notebook_names(books: Sequence[str | Path] | None, root: Path) -> list[str]:
    """Names of ``books`` (paths or names), else every ``NN_name`` folder under ``root``."""
    if books is not None:
        return [Path(b).stem for b in books]
    return sorted(p.name for p in root.iterdir() if p.is_dir() and NOTEBOOK_NAME.match(p.name))


def write_index(
    books: Sequence[str | Path] | None = None,
    *,
    smoke: bool = False,
    seconds: Mapping[str, float] | None = None,
    root: Path | None = None,
) -> Path:
    """Write ``index.html`` into ``root`` (default ``results/``, ``results/smoke/`` when
    ``smoke``) for ``books`` (default: every notebook with a folder there); return its path."""
    root = Path(root) if root is not None else results_root(smoke)
    names = notebook_names(books, root)
    seconds = seconds or {}
    mode = "smoke" if smoke else "default"
    toc = " · ".join(f"<a href='#{_e(n)}'>{_e(n)}</a>" for n in names)
    body = [
        f"<h1>JEPA Workbook: results</h1><p class='meta'>{mode} run; page written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}; <a href='summary.md'>summary.md</a></p>",
        f"<nav><a href='#comparison'>headline comparison</a> · {toc}</nav>",
        comparison_section(root),
    ]
    body += [notebook_section(root, n, seconds.get(n)) for n in names]
    page = (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>JEPA Workbook "
        f"results ({mode})</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = root / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jepa_core.runner.index_page", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="results/smoke/ instead of results/")
    args = parser.parse_args(argv)
    print(write_index(smoke=args.smoke))
    return 0


if __name__ == "__main__":
    sys.exit(main())
