"""Pooled 20-NN accuracy against minutes of CPU training, per method and dataset.

    .venv/bin/python benchmarks/accuracy_vs_time.py --minutes 15
    .venv/bin/python benchmarks/accuracy_vs_time.py --minutes 2 --methods ijepa lejepa \\
        --datasets mnist5k --set train.batch_size=64

Each method of ``--methods`` trains with its preset (``jepa_core.train.train``, on the CPU)
on each dataset of ``--datasets`` until ``--minutes`` of *training* are spent: the clock is the
history's ``seconds`` column, which leaves out every evaluation and monitor pass. The k-NN of
the run (``eval.k`` = 20 neighbours, temperature 0.07, mean-pooled tokens; the memory bank and
test set of ``jepa_core.build.run_datasets``) scores the teacher (target encoder) and the
student (context encoder) at initialisation, at every epoch end, at least every
``--minutes / --points`` of training (checked every ``train.log_every`` = 5 steps) and where
the budget runs out. LeJEPA has no teacher: its one encoder is scored once, ``knn_student`` is
null and ``student_is_teacher`` true. Raw pixels (as they are, and mean-centred) are scored
with the same bank and test set. ``train.epochs`` defaults to 1000, so the budget, not the
epochs, ends a run and the schedules (learning rate, weight decay, EMA) stay near their
start: ``--set train.epochs=N`` makes them end near the budget instead, and
``--set-for METHOD train.epochs=N`` does it for one method (methods differ in speed by 3x).

Datasets: ``mnist5k`` (embedded: 4,000 training and 1,000 test digits, 28 px, a 7x7 grid) and
``cifar10`` (the image folder ``--cifar-root``, default ``../shared/datasets/cifar10``: 50,000
training images, a 10,000-image memory bank, all 10,000 test images, 32 px, an 8x8 grid). A
missing CIFAR-10 folder is skipped, with its reason in the JSON.

Time: methods x datasets x (``--minutes`` of training + the scoring). A point scores one or
two encoders on bank + test images: on a shared 2-core CPU about 300 images/s, so 15 s per
encoder on mnist5k (5,000 images) and 70 s on CIFAR-10 (20,000). With the defaults (5 methods,
2 datasets, 15 minutes, 10+ points) expect 4-5 hours there; ``--points`` and
``--set eval.every=N`` trade points for time. The first CIFAR-10 run decodes the JPEGs into
``data/cache`` (about 16 s; 6 s from the cache after).

Writes ``accuracy_vs_time.json`` (after every run) and ``accuracy_vs_time.png`` (one panel per
dataset) to ``--out`` (default ``results/benchmarks``); each run's checkpoint of its last
finished epoch stays in ``--out``/``accuracy_vs_time_runs/<dataset>/<method>/``.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import torch
from torch.utils.data import DataLoader

import jepa_core.train as train_module
from jepa_core.build import run_datasets
from jepa_core.config import METHODS, add_override_option, load_config, parse_overrides
from jepa_core.evaluate import FEATURE_BATCH, extract_features, knn_accuracy, raw_pixel_features
from jepa_core.paths import resolve, results_dir
from jepa_core.results import save_figure, write_metrics

sys.path.insert(0, str(Path(__file__).parent))
from knn_vs_sklearn import machine  # noqa: E402

DATASETS = ("mnist5k", "cifar10")
NAME = "accuracy_vs_time"
# Every run: the CPU, the budget (not the epochs) ends it, a history row every 5 steps (where
# the budget is checked; each row's monitor pass, off the clock, on 256 test images), the k-NN
# at every epoch end.
RUN_DEFAULTS = {
    "train.device": "cpu",
    "train.epochs": 1000,
    "train.log_every": 5,
    "monitor.samples": 256,
    "eval.every": 1,
}


class BudgetSpent(Exception):
    """Raised by the recorder's callback once the training budget is spent: ends the run."""


def dataset_overrides(dataset: str, cifar_root: Path) -> dict[str, object]:
    if dataset == "cifar10":
        return {
            "data.name": "imagefolder",
            "data.root": str(cifar_root),
            "eval.train_samples": 10000,
        }
    return {"data.name": dataset}


def missing_cifar(root: Path) -> str | None:
    """Why the CIFAR-10 folder cannot be used, or None when it has train/ and test/."""
    if not all((root / split).is_dir() for split in ("train", "test")):
        return f"no CIFAR-10 image folder (train/ and test/) at {root}"
    return None


def encoder_knn(run, encoder) -> float:
    """The run's k-NN accuracy (``eval.*``: k, temperature, pooling) of ``encoder``."""
    cfg = run.cfg

    def features(dataset):
        return extract_features(
            encoder, DataLoader(dataset, batch_size=FEATURE_BATCH), pool=cfg.eval.pool
        )

    return knn_accuracy(
        *features(run.eval_bank),
        *features(run.test_set),
        k=cfg.eval.k,
        temperature=cfg.eval.temperature,
    )


def teacher_and_student(run) -> dict[str, float | None]:
    """``knn_teacher`` and ``knn_student``; the student is None when it is the teacher
    (LeJEPA)."""
    teacher = encoder_knn(run, run.target_encoder)
    same = run.target_encoder is run.context_encoder
    return {
        "knn_teacher": teacher,
        "knn_student": None if same else encoder_knn(run, run.context_encoder),
    }


class Recorder:
    """The loop's k-NN and its history callback: a point at every evaluated row (row 0, epoch
    ends), at the first row past every ``budget / points`` of training, and where the budget
    runs out; then :class:`BudgetSpent`.

    The loop's k-NN runs outside its training clock. The points scored here, mid-epoch, run in
    the callback, inside it: their time is taken off again (``in_callback``), so a point's
    ``seconds`` is training alone (the run's own ``history.csv`` still counts it).
    """

    def __init__(self, budget_seconds: float, points: int):
        self.budget, self.spacing = budget_seconds, budget_seconds / points
        self.next_mark = self.spacing
        self.run = None
        self.scores: dict[str, float | None] | None = None
        self.points: list[dict[str, float | None]] = []
        self.eval_seconds = self.in_callback = 0.0

    def knn(self, run) -> float:
        """Stands in for ``jepa_core.monitor.knn_eval``: scores both encoders, returns the one
        ``eval.encoder`` names (the run's own ``knn_acc``)."""
        self.run, t0 = run, time.perf_counter()
        self.scores = teacher_and_student(run)
        self.eval_seconds += time.perf_counter() - t0
        student = self.scores["knn_student"]
        use_student = run.cfg.eval.encoder == "context" and student is not None
        return student if use_student else self.scores["knn_teacher"]

    def __call__(self, row: dict) -> None:
        seconds = float(row["seconds"]) - self.in_callback
        spent = seconds >= self.budget
        if self.scores is None and (spent or seconds >= self.next_mark):
            t0 = time.perf_counter()
            self.knn(self.run)  # mid-epoch: the encoders as they are now
            self.in_callback += time.perf_counter() - t0
        if self.scores is not None:
            self.points.append(
                {
                    "seconds": round(seconds, 2),
                    "minutes": round(seconds / 60, 4),
                    "epoch": round(float(row["epoch"]), 4),
                    "step": int(row["step"]),
                    **self.scores,
                }
            )
            self.scores = None
            while self.next_mark <= seconds:
                self.next_mark += self.spacing
        if spent:
            raise BudgetSpent


def train_until_budget(method: str, overrides: dict, budget_seconds: float, points: int) -> dict:
    """One method trained until the budget is spent (or its epochs end): its points."""
    recorder = Recorder(budget_seconds, points)
    t0 = time.perf_counter()
    stopped_by = "budget"
    with mock.patch.object(train_module, "knn_eval", recorder.knn):
        try:
            train_module.train(method, callbacks=[recorder], progress=False, overrides=overrides)
            stopped_by = "epochs"
        except BudgetSpent:
            pass
    first = recorder.points[0]
    return {
        "student_is_teacher": first["knn_student"] is None,
        "init": first["knn_teacher"],
        "points": recorder.points,
        "stopped_by": stopped_by,
        "train_seconds": recorder.points[-1]["seconds"],
        "eval_seconds": round(recorder.eval_seconds, 2),
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "overrides": overrides,
    }


def raw_pixel_knn(cfg) -> dict[str, object]:
    """Raw-pixel k-NN (as they are, and mean-centred) on the run's memory bank and test set."""
    t0 = time.perf_counter()
    _, test_set, bank = run_datasets(cfg)
    load_seconds = time.perf_counter() - t0
    bank_xy = raw_pixel_features(DataLoader(bank, batch_size=FEATURE_BATCH))
    test_xy = raw_pixel_features(DataLoader(test_set, batch_size=FEATURE_BATCH))
    knn = {"k": cfg.eval.k, "temperature": cfg.eval.temperature}
    return {
        "raw_pixels": knn_accuracy(*bank_xy, *test_xy, **knn),
        "raw_pixels_centred": knn_accuracy(*bank_xy, *test_xy, **knn, center=True),
        "bank_images": len(bank),
        "test_images": len(test_set),
        "load_seconds": round(load_seconds, 2),
    }


def plot(datasets: dict[str, dict], budget_minutes: float, path_dir: Path) -> Path:
    """One panel per dataset: accuracy against training minutes, a colour per method (teacher
    solid, student dashed), raw pixels as horizontal lines, the budget as a vertical one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    colours = dict(zip(METHODS, plt.cm.tab10.colors, strict=False))
    for ax, (name, result) in zip(axes[0], datasets.items(), strict=True):
        ax.set_title(name)
        if result.get("skipped"):
            reason = textwrap.fill(result["skipped"], 40)
            ax.text(0.5, 0.5, f"skipped:\n{reason}", ha="center", va="center", fontsize=9)
            ax.set_axis_off()
            continue
        for method, run in result["methods"].items():
            minutes = [p["minutes"] for p in run["points"]]
            c = colours[method]
            ax.plot(minutes, [p["knn_teacher"] for p in run["points"]], "o-", c=c, label=method)
            if not run["student_is_teacher"]:
                student = [p["knn_student"] for p in run["points"]]
                ax.plot(minutes, student, "--", c=c, alpha=0.8, label=f"{method} (student)")
        ax.axhline(result["raw_pixels_centred"], c="0.3", ls=":", label="raw pixels, centred")
        ax.axhline(result["raw_pixels"], c="0.6", ls=":", label="raw pixels")
        ax.axvline(budget_minutes, c="0.8", lw=3, zorder=0, label="budget")
        ax.set_xlabel("training minutes (evaluation excluded)")
        ax.set_ylabel("mean-pooled 20-NN accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    path = save_figure(fig, path_dir, NAME)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per run")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument(
        "--points",
        type=int,
        default=10,
        help="score the encoders at least every minutes / points of training (and every epoch)",
    )
    parser.add_argument("--seed", type=int, default=0, help="train.seed")
    parser.add_argument(
        "--cifar-root",
        default="../shared/datasets/cifar10",
        help="CIFAR-10 as train/<class>/* and test/<class>/* (relative: to the repository)",
    )
    add_override_option(
        parser, help="a dotted override for every run, e.g. --set train.batch_size=64 (repeatable)"
    )
    parser.add_argument(
        "--set-for",
        dest="method_overrides",
        nargs=2,
        action="append",
        default=[],
        metavar=("METHOD", "KEY=VALUE"),
        help="a dotted override for one method's runs, after --set, e.g. "
        "--set-for cjepa train.epochs=2 (repeatable)",
    )
    parser.add_argument(
        "--out", "--output", dest="out", default=None, help="folder (default results/benchmarks)"
    )
    return parser


def plan_runs(args, out: Path, cifar_root: Path) -> tuple[dict, dict]:
    """``{dataset: {method: overrides}}`` for the datasets at hand, every config checked
    (ValueError before anything trains), and ``{dataset: {"skipped": reason}}`` for the rest."""
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    if args.points < 1:
        raise ValueError(f"--points must be >= 1, got {args.points}")
    user = parse_overrides(args.overrides)
    per_method: dict[str, list[str]] = {}
    for method, pair in args.method_overrides:
        if method not in args.methods:
            raise ValueError(
                f"--set-for names method {method!r}, which is not among --methods {args.methods}"
            )
        per_method.setdefault(method, []).append(pair)
    own = {m: parse_overrides(per_method.get(m)) for m in args.methods}
    plans, skipped = {}, {}
    for dataset in args.datasets:
        reason = missing_cifar(cifar_root) if dataset == "cifar10" else None
        if reason:
            skipped[dataset] = {"skipped": reason}
            continue
        common = {
            **RUN_DEFAULTS,
            **dataset_overrides(dataset, cifar_root),
            "train.seed": args.seed,
            **user,
        }
        plans[dataset] = {
            m: {**common, **own[m], "train.output_dir": str(out / f"{NAME}_runs" / dataset / m)}
            for m in args.methods
        }
        for method, overrides in plans[dataset].items():
            try:
                load_config(method, overrides)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{method} on {dataset}: {e}") from None
    return plans, skipped


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = resolve(args.out) if args.out else results_dir("benchmarks")
    cifar_root = resolve(args.cifar_root)
    try:
        plans, datasets = plan_runs(args, out, cifar_root)
    except ValueError as e:
        parser.error(str(e))
    for dataset, skipped in datasets.items():
        print(f"{dataset}: skipped ({skipped['skipped']})", flush=True)
    command = "python benchmarks/accuracy_vs_time.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    parameters = {**vars(args), "command": command, "cifar_root": str(cifar_root)}
    facts = {**machine(torch.device("cpu")), "torch": torch.__version__}

    def save() -> Path:
        metrics = {"budget_minutes": args.minutes, "machine": facts, "datasets": datasets}
        return write_metrics(out, parameters=parameters, metrics=metrics, name=f"{NAME}.json")

    for dataset, runs in plans.items():
        first_cfg = load_config(args.methods[0], runs[args.methods[0]])
        datasets[dataset] = {"skipped": None, **raw_pixel_knn(first_cfg), "methods": {}}
        pixels = datasets[dataset]
        print(
            f"{dataset}: raw pixels {pixels['raw_pixels']:.4f} (centred "
            f"{pixels['raw_pixels_centred']:.4f}); loaded in {pixels['load_seconds']:.1f}s",
            flush=True,
        )
        for method, overrides in runs.items():
            result = train_until_budget(method, overrides, args.minutes * 60, args.points)
            datasets[dataset]["methods"][method] = result
            last = result["points"][-1]
            print(
                f"{dataset} {method}: {len(result['points'])} points, init {result['init']:.4f} "
                f"-> teacher {last['knn_teacher']:.4f}, student {last['knn_student']} after "
                f"{last['minutes']:.2f} min of training ({result['wall_seconds']:.0f}s wall)",
                flush=True,
            )
            save()
    print(save())
    print(plot({d: datasets[d] for d in args.datasets}, args.minutes, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
