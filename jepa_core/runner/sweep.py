"""Parameter sweeps over a notebook with papermill.

    python -m jepa_core.runner.sweep notebooks/04_training.ipynb \\
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
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import PRESETS, add_override_option, load_config, parse_overrides, parse_value
from ..paths import resolve, results_dir
from .execute import NotebookFailed, add_cell_timeout_option, execute, notebook_parameters
from .execute import cell_timeout as _cell_timeout


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


def plan_sweep(
    notebook: str | Path,
    grid: Mapping[str, Sequence[Any]],
    fixed: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> list[SweepPoint]:
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
            raise ValueError(
                f"{name!r} is not a parameter of {notebook.name}; its parameters are "
                f"{', '.join(known)} (config keys take a dot, e.g. loss.vicreg_weight)"
            )
    uses_config = any("." in k for k in grid) or bool(fixed)
    if uses_config and "overrides" not in known:
        raise ValueError(
            f"{notebook.name} has no 'overrides' parameter, so dotted config keys cannot reach it"
        )
    # A notebook that takes config overrides builds a config from its `method`: check that too,
    # even when only plain parameters are swept (method=foo must fail before the first run).
    config_driven = "overrides" in known
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        swept = dict(zip(keys, values, strict=True))
        nb_params = {**(params or {}), **{k: v for k, v in swept.items() if "." not in k}}
        overrides = {**(fixed or {}), **{k: v for k, v in swept.items() if "." in k}}
        if config_driven:
            preset = nb_params.get("method", _literal_default(known.get("method")) or "ijepa")
            if preset not in PRESETS:
                raise ValueError(
                    f"method {preset!r} is not a preset; choose from {', '.join(PRESETS)}"
                )
            load_config(preset, overrides)  # raises on unknown keys, bad values, unused terms
        if uses_config:
            nb_params["overrides"] = overrides
        run_id = "_".join(f"{_slug(k)}-{_slug(v)}" for k, v in swept.items()) or "run"
        points.append(SweepPoint(run_id=run_id, swept=swept, parameters=nb_params))
    run_ids = [p.run_id for p in points]
    clashes = sorted({r for r in run_ids if run_ids.count(r) > 1})
    if clashes:  # two runs in one folder would overwrite each other's results
        raise ValueError(
            f"grid points share a run folder name: {', '.join(clashes)} "
            "(a value repeated in the grid, or values that differ only after 40 characters)"
        )
    return points


def _literal_default(expr: Any) -> Any:
    if isinstance(expr, str):
        try:
            return json.loads(expr.replace("'", '"'))
        except json.JSONDecodeError:
            return None
    return expr


def _slug(value: Any) -> str:
    """A folder-name form of a key or value: ``0.01`` -> ``0p01``, ``-1`` -> ``m1``,
    ``[0.1, 0.2]`` -> ``0p1-0p2``; keys keep their dots and underscores."""
    if isinstance(value, (list, tuple)):
        return "-".join(_slug(v) for v in value)[:40]
    text = value if isinstance(value, str) else str(value).replace(".", "p").replace("-", "m")
    return re.sub(r"[^A-Za-z0-9._-]+", "", text)[:40]


def run_sweep(
    notebook: str | Path,
    grid: Mapping[str, Sequence[Any]],
    *,
    name: str = "sweep",
    fixed: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    output_dir: str | Path | None = None,
    smoke: bool | None = None,
    cell_timeout: float | None = None,
) -> pd.DataFrame:
    """Run every grid point (validated first), then gather the table. ``cell_timeout``: seconds
    one cell of a run may take (``jepa_core.runner.execute.cell_timeout``)."""
    points = plan_sweep(notebook, grid, fixed, params)
    cell_timeout = _cell_timeout(cell_timeout)  # a bad value fails before anything runs
    base = resolve(output_dir) if output_dir else results_dir("sweeps", name)
    base.mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points, 1):
        run_dir = base / point.run_id
        parameters = {**point.parameters, "output_dir": str(run_dir)}
        if smoke is not None:
            parameters["smoke"] = smoke
        print(f"[{i}/{len(points)}] {point.run_id}", flush=True)
        execute(resolve(notebook), run_dir / Path(notebook).name, parameters, timeout=cell_timeout)
        (run_dir / "swept.json").write_text(json.dumps(point.swept, indent=2) + "\n")
    # Only this sweep's runs: folders left by an earlier sweep with another grid stay out.
    table = gather_sweep(base, runs=[p.run_id for p in points])
    table.to_csv(base / "sweep.csv", index=False)
    return table


def gather_sweep(base: str | Path, runs: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run folder holding ``swept.json`` + ``metrics.json``: swept values, then the
    scalar metrics. ``runs``: only these run folders, in this order (default: all, sorted)."""
    base = Path(base)
    if not base.is_dir():
        raise FileNotFoundError(f"sweep folder {str(base)!r} does not exist")
    rows = []
    run_dirs = (
        [base / r for r in runs]
        if runs is not None
        else sorted(p for p in base.iterdir() if p.is_dir())
    )
    for run_dir in run_dirs:
        metrics_file, swept_file = run_dir / "metrics.json", run_dir / "swept.json"
        if not (metrics_file.exists() and swept_file.exists()):
            continue
        metrics = json.loads(metrics_file.read_text())["metrics"]
        swept = json.loads(swept_file.read_text())
        # JSON turns tuples into lists; tuples keep the column sortable and groupable.
        row = {
            "run": run_dir.name,
            **{k: tuple(v) if isinstance(v, list) else v for k, v in swept.items()},
        }
        row.update(
            {
                k: v
                for k, v in metrics.items()
                if isinstance(v, (int, float, str, bool)) or v is None
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def shell_command(
    notebook: str | Path,
    grid: Mapping[str, Sequence[Any]],
    *,
    fixed: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    name: str = "sweep",
    output_dir: str | Path | None = None,
    smoke: bool = False,
) -> str:
    """The ``python -m jepa_core.runner.sweep ...`` line that runs the same sweep from a shell."""
    parts = ["python", "-m", "jepa_core.runner.sweep", str(notebook)]
    for key, values in grid.items():
        parts += ["--grid", f"{key}={','.join(_cli_value(v) for v in values)}"]
    for flag, pairs in (("--set", fixed), ("--param", params)):
        for key, value in (pairs or {}).items():
            parts += [flag, f"{key}={_cli_value(value)}"]
    parts += ["--name", name] + (["--output-dir", str(output_dir)] if output_dir else [])
    return " ".join(shlex.quote(part) for part in parts + (["--smoke"] if smoke else []))


def _cli_value(value: Any) -> str:
    """A value as :func:`parse_value` (YAML) reads it back.

    YAML 1.1 needs ``1.0e-05``, not ``1e-05``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_cli_value(v) for v in value) + "]"
    text = json.dumps(value)
    if isinstance(value, float) and "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jepa_core.runner.sweep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("notebook", help="the notebook to sweep, e.g. notebooks/04_training.ipynb")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a swept key and its values (repeatable); dotted keys are config keys",
    )
    add_override_option(
        parser, dest="fixed", help="a config override shared by every run (repeatable)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a notebook parameter shared by every run (repeatable)",
    )
    parser.add_argument("--name", default="sweep", help="results/sweeps/<name>/")
    parser.add_argument(
        "--output-dir", default=None, help="the sweep folder (default: results/sweeps/<name>/)"
    )
    parser.add_argument("--smoke", action="store_true", help="run every point in smoke mode")
    add_cell_timeout_option(parser)
    args = parser.parse_args(argv)
    try:
        grid = parse_grid(args.grid)
        if not grid:
            raise ValueError("give at least one --grid key=v1,v2")
        table = run_sweep(
            args.notebook,
            grid,
            name=args.name,
            fixed=parse_overrides(args.fixed),
            params=parse_overrides(args.param),
            output_dir=args.output_dir,
            smoke=True if args.smoke else None,
            cell_timeout=args.cell_timeout,
        )
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    except NotebookFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
