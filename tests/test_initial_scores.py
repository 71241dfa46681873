"""History row 0 (the encoders at initialisation) scored once per store of shared runs: the
runs a notebook trains from the same seed start from the same weights."""

from __future__ import annotations

import math

import pytest
from tiny_runs import TINY_DIGITS as TINY

import jepa_core.history as history_module
import jepa_core.train as train_module
from jepa_core.build import build_run, initial_scores_file, store_config
from jepa_core.config import load_config
from jepa_core.lessons.evaluation import train_or_resume
from jepa_core.monitor import knn_eval, monitor_stats

SCORES = ["std_mean", "std_min", "rankme", "mean_cosine", "student_std_mean", "student_rankme"]


def test_a_store_scores_the_initial_weights_its_runs_share_once(tmp_path, monkeypatch):
    first = train_or_resume("ijepa", TINY, tmp_path)
    calls = {"knn": 0, "monitor": 0}

    def counting_knn(run):
        calls["knn"] += 1
        return knn_eval(run)

    def counting_monitor(run):
        calls["monitor"] += 1
        return monitor_stats(run)

    monkeypatch.setattr(train_module, "knn_eval", counting_knn)
    monkeypatch.setattr(history_module, "monitor_stats", counting_monitor)
    # another run of the store, from the same seed: the same encoder at initialisation
    other = train_or_resume("ijepa", {**TINY, "loss.kind": "smooth_l1"}, tmp_path)
    assert other.checkpoint_path.parent != first.checkpoint_path.parent
    assert calls == {"knn": 1, "monitor": len(other.history) - 1}  # only the rows after row 0
    row0, first_row0 = other.history.iloc[0], first.history.iloc[0]
    assert [row0[k] for k in ["knn_acc", *SCORES]] == [first_row0[k] for k in ["knn_acc", *SCORES]]
    assert len(list((tmp_path / "initial-scores").glob("*.json"))) == 1
    # what was read is what scoring the run's own initial weights gives
    fresh = build_run(store_config("ijepa", {**TINY, "loss.kind": "smooth_l1"}, tmp_path))
    computed = monitor_stats(fresh)
    assert [row0[k] for k in SCORES] == pytest.approx([computed[k] for k in SCORES], rel=1e-6)
    assert row0["knn_acc"] == knn_eval(fresh)


def test_initial_scores_are_shared_only_where_nothing_they_depend_on_differs(tmp_path):
    def path(preset="ijepa", **extra):
        return initial_scores_file(build_run(store_config(preset, {**TINY, **extra}, tmp_path)))

    base = path()
    assert base.parent == tmp_path / "initial-scores"
    # the method's loss and the logging do not change the initial weights or their scores
    assert path(**{"loss.kind": "smooth_l1"}) == base
    assert path(**{"train.log_every": 1, "eval.every": 1}) == base
    # other weights (another seed), another bank, another k, other monitor images do
    changed = [
        path(**{"train.seed": 1}),
        path(**{"eval.train_samples": 30}),
        path(**{"eval.k": 5}),
        path(**{"monitor.samples": 8}),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    # a run outside a store (its own folder) scores its initial weights itself
    own = load_config("ijepa", {**TINY, "train.output_dir": str(tmp_path / "my_run")})
    assert initial_scores_file(build_run(own)) is None


def test_a_run_outside_a_store_leaves_no_initial_scores_behind(tmp_path):
    cfg = load_config("ijepa", {**TINY, "train.output_dir": str(tmp_path / "my_run")})
    result = train_module.train(cfg, progress=False)
    assert math.isfinite(result.history["knn_acc"].iloc[0])
    assert not (tmp_path / "initial-scores").exists()
