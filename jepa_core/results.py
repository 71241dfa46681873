"""The one results writer: ``metrics.json`` and figures under an output folder.

Every notebook and run writes ``metrics.json`` with its parameters, headline numbers, the
versions it ran with and its timings, so a sweep can gather them into one table.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .paths import resolve, results_dir


def results_root(smoke: bool = False) -> Path:
    """``results/``, or ``results/smoke/`` for smoke runs: a smoke run never overwrites (or
    tries to resume) the outputs of a default-size one."""
    return results_dir("smoke") if smoke else results_dir()


def output_dir_for(name: str, output_dir: str | Path | None = None, smoke: bool = False) -> Path:
    """``output_dir`` if given (relative to the repository), else ``results/<name>/``
    (``results/smoke/<name>/`` when ``smoke``)."""
    if output_dir:
        path = resolve(output_dir)
    else:
        path = results_root(smoke) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> dict[str, str]:
    import numpy
    import timm
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_metrics(
    output_dir: str | Path,
    *,
    parameters: Mapping[str, Any],
    metrics: Mapping[str, Any],
    timings: Mapping[str, float] | None = None,
    name: str = "metrics.json",
) -> Path:
    """Write ``{parameters, metrics, timings, versions, written_at}`` as JSON; return the path."""
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "parameters": _jsonable(parameters),
        "metrics": _jsonable(metrics),
        "timings": _jsonable(timings or {}),
        "versions": versions(),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file of this process and a rename, so a
    reader never sees half a file, nor two writers' interleaved bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def read_metrics(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    return json.loads(path.read_text())


def save_figure(fig, output_dir: str | Path, name: str, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``<output_dir>/<name>.png`` and return the path."""
    path = Path(output_dir) / (name if name.endswith(".png") else f"{name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
