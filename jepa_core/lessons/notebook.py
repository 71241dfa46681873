"""What every numbered notebook does the same way: smoke mode, seeds, device, output folder,
figures and ``metrics.json``.

    nb = prepare("01_masking", output_dir=output_dir, seed=seed, device=device)
    nb.savefig(fig, "masks_on_digits")
    nb.finish(parameters={...}, metrics={...})

Paths come from the repository (``jepa_core.paths``), so the same notebook writes to the same
``results/<name>/`` under JupyterLab, papermill (any working directory) and nbval.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import resolve_device
from ..frontend import env_flag
from ..results import output_dir_for, results_root, save_figure, write_metrics


def env_smoke() -> bool:
    """Smoke mode (tiny sizes, seconds per notebook) when ``JEPA_SMOKE=1`` is set."""
    return env_flag("JEPA_SMOKE")


@dataclass
class NotebookRun:
    name: str
    out: Path
    seed: int
    device: str
    smoke: bool
    started: float = field(default_factory=time.perf_counter)
    figures: list[str] = field(default_factory=list)

    runs: Path | None = None  # the store of finished runs: see prepare()

    def savefig(self, fig, name: str) -> Path:
        path = save_figure(fig, self.out, name)
        self.figures.append(path.name)
        return path

    def finish(self, *, parameters: dict[str, Any], metrics: dict[str, Any]) -> Path:
        """Write ``metrics.json``: parameters, headline numbers, figures, versions, timings."""
        params = {"smoke": self.smoke, "seed": self.seed, "device": self.device, **parameters}
        return write_metrics(
            self.out,
            parameters=params,
            metrics={**metrics, "figures": self.figures},
            timings={"notebook_seconds": round(time.perf_counter() - self.started, 2)},
        )


def prepare(
    name: str,
    *,
    output_dir: str | Path | None = None,
    seed: int = 0,
    device: str = "cpu",
    smoke: bool = False,
) -> NotebookRun:
    """Seed every generator, resolve the device and the output folder, start the clock."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    import matplotlib

    matplotlib.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})
    out = output_dir_for(name, output_dir, smoke=bool(smoke))
    return NotebookRun(
        name=name,
        out=out,
        seed=seed,
        device=str(resolve_device(device, key="device")),
        smoke=bool(smoke),
        # the store of finished training runs the notebooks share (results/runs/, or
        # results/smoke/runs/; see jepa_core.build.shared_run_dir); a notebook given its own
        # output_dir (a sweep's run) keeps its runs there
        runs=out / "runs" if output_dir else results_root(bool(smoke)) / "runs",
    )
