"""Parameter sweeps over a notebook with papermill.

    python -m jepa_core.sweep notebooks/04_training.ipynb \\
        --grid loss.vicreg_weight=0,0.01,0.1 --grid method=cjepa --set train.epochs=2

A grid key with a dot is a config key (``loss.vicreg_weight``): papermill parameters must be
identifiers, so dotted keys travel into the notebook inside its one ``overrides`` dict
parameter. A key without a dot is a notebook parameter itself (``method``, ``seed``). Every
grid point is checked before the first run starts: an unknown config key or notebook
parameter fails in a second, naming the culprit, not an hour into the sweep.

Each run is an executed notebook plus its ``metrics.json`` in
``results/sweeps/<name>/<run>/``; ``gather_sweep`` collects them into one pandas table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import PRESETS, load_config, parse_overrides, parse_value
from .papermill_run import NotebookFailed, execute, notebook_parameters
from .paths import resolve, results_dir


@dataclass
class SweepPoint:
    run_id: str
    swept: dict[str, Any]  # the grid values of this run
    parameters: dict[str, Any]  # what papermill injects


def parse_grid(items: Sequence[str] | Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """``["loss.vicreg_weight=0,0.01", "method=ijepa,cjepa"]`` -> {key: [values]}."""
    if isinstance(items, Mapping):
        grid = {str(k): list(v) if isinstance(v, (list, tuple)) else [v] for k, v in items.items()}
    else:
        grid = {}
        for item in items:
            if "=" not in item:
                raise ValueError(f"--grid expects key=v1,v2,...; got {item!r}")
            key, values = item.split("=", 1)
            grid[key.strip()] = [parse_value(v) for v in _split_values(values)]
    for key, values in grid.items():
        if not values:
            raise ValueError(f"grid key {key!r} has no values")
    return grid


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets: ``[0.1,0.2],[0.2,0.3]`` -> two values."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[("
        depth -= ch in "])"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def plan_sweep(notebook: str | Path, grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any] | None = None,
               params: Mapping[str, Any] | None = None) -> list[SweepPoint]:
    """Expand the grid and validate every point before anything runs.

    grid: dotted config keys and/or notebook parameter names -> values.
    fixed: config overrides shared by all runs (dotted keys). params: fixed notebook parameters.
    """
    notebook = resolve(notebook)
    if not notebook.exists():
        raise FileNotFoundError(f"notebook {str(notebook)!r} does not exist")
    known = notebook_parameters(notebook)
    for name in [k for k in grid if "." not in k] + list(params or {}):
        if name not in known:
            raise ValueError(f"{name!r} is not a parameter of {notebook.name}; its parameters are "
                             f"{', '.join(known)} (config keys take a dot, e.g. loss.vicreg_weight)")
    uses_config = any("." in k for k in grid) or bool(fixed)
    if uses_config and "overrides" not in known:
        raise ValueError(f"{notebook.name} has no 'overrides' parameter, so dotted config keys cannot reach it")
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        swept = dict(zip(keys, values, strict=True))
        nb_params = {**(params or {}), **{k: v for k, v in swept.items() if "." not in k}}
        overrides = {**(fixed or {}), **{k: v for k, v in swept.items() if "." in k}}
        if uses_config:
            preset = nb_params.get("method", _literal_default(known.get("method")) or "ijepa")
            if preset not in PRESETS:
                raise ValueError(f"method {preset!r} is not a preset; choose from {', '.join(PRESETS)}")
            load_config(preset, overrides)  # raises on unknown keys, bad values, unused terms
            nb_params["overrides"] = overrides
        run_id = "_".join(f"{_slug(k)}-{_slug(v)}" for k, v in swept.items()) or "run"
        points.append(SweepPoint(run_id=run_id, swept=swept, parameters=nb_params))
    return points


def _literal_default(expr: Any) -> Any:
    if isinstance(expr, str):
        try:
            return json.loads(expr.replace("'", '"'))
        except json.JSONDecodeError:
            return None
    return expr


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "", str(value).replace(".", "p") if not isinstance(value, str) else value)[:40]


def run_sweep(notebook: str | Path, grid: Mapping[str, Sequence[Any]], *, name: str = "sweep",
              fixed: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
              output_dir: str | Path | None = None, smoke: bool | None = None) -> pd.DataFrame:
    """Run every grid point (validated first), then gather the table."""
    points = plan_sweep(notebook, grid, fixed, params)
    base = resolve(output_dir) if output_dir else results_dir("sweeps", name)
    base.mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points, 1):
        run_dir = base / point.run_id
        parameters = {**point.parameters, "output_dir": str(run_dir)}
        if smoke is not None:
            parameters["smoke"] = smoke
        print(f"[{i}/{len(points)}] {point.run_id}", flush=True)
        execute(resolve(notebook), run_dir / Path(notebook).name, parameters)
        (run_dir / "swept.json").write_text(json.dumps(point.swept, indent=2) + "\n")
    table = gather_sweep(base)
    table.to_csv(base / "sweep.csv", index=False)
    return table


def gather_sweep(base: str | Path) -> pd.DataFrame:
    """One row per run folder holding ``swept.json`` + ``metrics.json``: swept values, then the
    scalar metrics."""
    rows = []
    for run_dir in sorted(Path(base).iterdir()):
        metrics_file, swept_file = run_dir / "metrics.json", run_dir / "swept.json"
        if not (metrics_file.exists() and swept_file.exists()):
            continue
        metrics = json.loads(metrics_file.read_text())["metrics"]
        row = {"run": run_dir.name, **json.loads(swept_file.read_text())}
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_sweep(table: pd.DataFrame, params: Sequence[str], metrics: Sequence[str]):
    """A panel per (metric, swept parameter): the metric against the parameter's values."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(metrics), len(params), figsize=(3.8 * len(params), 2.8 * len(metrics)),
                             squeeze=False)
    for i, metric in enumerate(metrics):
        for j, param in enumerate(params):
            ax = axes[i][j]
            others = [p for p in params if p != param]
            groups = table.groupby(others) if others else [("all", table)]
            for label, group in groups:
                group = group.sort_values(param)
                xs = group[param].astype(str) if group[param].dtype == object else group[param]
                ax.plot(xs, group[metric], marker="o", label=str(label))
            ax.set_xlabel(param)
            ax.set_ylabel(metric)
            if others:
                ax.legend(fontsize=7, title=", ".join(others), title_fontsize=7)
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa_core.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="the notebook to sweep, e.g. notebooks/04_training.ipynb")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a swept key and its values (repeatable); dotted keys are config keys")
    parser.add_argument("--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override shared by every run (repeatable)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter shared by every run (repeatable)")
    parser.add_argument("--name", default="sweep", help="results/sweeps/<name>/")
    parser.add_argument("--smoke", action="store_true", help="run every point in smoke mode")
    args = parser.parse_args(argv)
    try:
        grid = parse_grid(args.grid)
        if not grid:
            raise ValueError("give at least one --grid key=v1,v2")
        table = run_sweep(args.notebook, grid, name=args.name, fixed=parse_overrides(args.fixed),
                          params=parse_overrides(args.param), smoke=True if args.smoke else None)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    except NotebookFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
