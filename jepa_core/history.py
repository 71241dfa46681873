"""A run's history: one row per logged step, and the collapse alarm that watches it.

Each row holds the step's loss terms averaged since the last row (and over ranks), the
schedules (EMA momentum, learning rate, weight decay), the collapse metrics of the monitor
images (``jepa_core.monitor``), the k-NN accuracy at the epochs where it is evaluated, and the
wall-clock seconds of training so far (evaluation left out). Row 0 is the encoders at
initialisation.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable

from . import distributed
from .build import Run, initial_scores_file
from .frontend import progress_bar
from .monitor import monitor_stats
from .results import write_text_atomic


class CollapseWarning(UserWarning):
    """The embeddings look collapsed (std_mean or rankme under the monitor's thresholds)."""


_SCHEDULES = ("momentum", "lr", "wd")


class RunLog:
    """The history rows: the step's terms averaged since the last row (and over ranks), the
    collapse metrics, k-NN at epoch ends, wall-clock seconds of training; the collapse alarm."""

    def __init__(
        self,
        run: Run,
        callbacks: list[Callable[[dict], None]],
        history: list[dict],
        *,
        knn: Callable[[Run], float],
        progress: bool,
    ):
        self.run, self.callbacks, self.history, self.knn = run, callbacks, history, knn
        self.sums: dict[str, float] = {}
        self.n = 0
        self.seconds = history[-1]["seconds"] if history else 0.0
        self.t0 = time.perf_counter()
        self.stopped: str | None = None
        self.warned = False
        cfg, step = run.cfg, history[-1]["step"] if history else 0
        self.bar = None
        if progress and run.dist.is_main:
            desc = f"{cfg.loss.method} on {cfg.data.name}"
            self.bar = progress_bar(total=run.total_steps, initial=step, unit="step", desc=desc)
        if not history:  # row 0: the encoders at initialisation
            start = {
                "momentum": run.momentum(0) if run.momentum is not None else math.nan,
                "lr": cfg.optim.start_lr,
                "wd": cfg.optim.weight_decay,
            }
            self.row(0, 0, start, evaluate=True)

    def start_epoch(self) -> None:
        self.t0 = time.perf_counter()

    def row(self, step: int, epoch: float, terms: dict[str, float], evaluate: bool) -> None:
        """Append a row after optimizer step ``step`` (0: the encoders at initialisation);
        ``terms``: the last step's, for its schedules."""
        run = self.run
        if step:
            self.seconds += time.perf_counter() - self.t0
        means = distributed.mean_over_ranks(
            run.dist, {k: v / self.n for k, v in self.sums.items()}, run.device
        )
        self.sums, self.n = {}, 0
        schedules = {k: terms[k] for k in _SCHEDULES}
        row = {
            "epoch": epoch,
            "step": step,
            "images": step * run.cfg.train.batch_size,
            **means,
            **schedules,
            **(self._initial_scores() if step == 0 else self._scores(evaluate)),
            "seconds": self.seconds,
        }
        self.t0 = time.perf_counter()
        self.history.append(row)
        for callback in self.callbacks:
            callback(row)
        self._alarm(step, row)

    def _scores(self, evaluate: bool) -> dict[str, float]:
        """The monitor's collapse metrics, and the k-NN accuracy when ``evaluate``."""
        return {**monitor_stats(self.run), "knn_acc": self.knn(self.run) if evaluate else math.nan}

    def _initial_scores(self) -> dict[str, float]:
        """Row 0's scores: read from the store when another of its runs scored the same initial
        weights (``build.initial_scores_file``), computed and recorded there otherwise."""
        path = initial_scores_file(self.run)
        if path is not None and path.exists():
            return json.loads(path.read_text())
        scores = self._scores(evaluate=True)
        if path is not None:
            write_text_atomic(path, json.dumps(scores))
        return scores

    def add(self, terms: dict[str, float]) -> None:
        """Sum one step's loss terms towards the next row's means."""
        for name, value in terms.items():
            if name not in _SCHEDULES:
                self.sums[name] = self.sums.get(name, 0.0) + value
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{terms['loss']:.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def end_epoch(self) -> None:
        if not self.stopped:
            self.seconds += time.perf_counter() - self.t0
            self.t0 = time.perf_counter()
            self.history[-1]["seconds"] = self.seconds

    def _alarm(self, step: int, row: dict) -> None:
        mon, main = self.run.cfg.monitor, self.run.dist.is_main
        reason = None
        if mon.alarm_std_mean > 0 and row["std_mean"] < mon.alarm_std_mean:
            reason = f"std_mean {row['std_mean']:.2e} < monitor.alarm_std_mean {mon.alarm_std_mean}"
        elif mon.alarm_rankme > 0 and row["rankme"] < mon.alarm_rankme:
            reason = f"rankme {row['rankme']:.2f} < monitor.alarm_rankme {mon.alarm_rankme}"
        if reason is None:
            return
        message = f"collapse alarm at step {step}: {reason}"
        if mon.on_collapse == "stop":
            self.stopped = message
            if main:
                warnings.warn(
                    message + "; stopping (monitor.on_collapse='stop')",
                    CollapseWarning,
                    stacklevel=5,
                )
        elif not self.warned and main:
            warnings.warn(
                message + " (monitor.on_collapse='warn' keeps going)", CollapseWarning, stacklevel=5
            )
            self.warned = True
