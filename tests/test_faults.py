"""Runs that survive faults: SIGKILL mid-epoch, checkpoints from elsewhere, a run the alarm stopped.

The SIGKILL test runs training in child processes (a real kill, not an exception): the
uninterrupted run, the run that kills itself in the middle of epoch 2, and its restart with
``train.resume``, all with the same seed and the same thread count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from tiny_runs import tiny

from jepa_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jepa_core.train import CollapseWarning, load_trained, train

WORKER = textwrap.dedent("""
    import os, signal, sys, torch
    from jepa_core.train import train
    out, mode = sys.argv[1], sys.argv[2]
    overrides = {"data.train_samples": 96, "train.batch_size": 32, "train.epochs": 3,
                 "train.log_every": 1, "eval.every": 0, "eval.train_samples": 100,
                 "monitor.samples": 64, "train.device": "cpu",
                 "train.output_dir": out, "train.resume": mode == "resume"}

    def kill_mid_epoch_2(row):
        # epoch 2 is steps 4-6; epoch 1's checkpoint is on disk
        if mode == "kill" and row["step"] == 4:
            os.kill(os.getpid(), signal.SIGKILL)

    result = train("cjepa", overrides=overrides, callbacks=[kill_mid_epoch_2], progress=False)
    torch.save({name: getattr(result, name).state_dict()
                for name in ("context_encoder", "target_encoder")}
               | {"history": result.history.to_dict("list")}, os.path.join(out, "final.pt"))
""")


def run_worker(script, out, mode) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, str(script), str(out), mode],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    base = tmp_path_factory.mktemp("sigkill")
    script = base / "worker.py"
    script.write_text(WORKER)
    full = run_worker(script, base / "full", "full")
    assert full.returncode == 0, full.stderr[-3000:]
    killed = run_worker(script, base / "killed", "kill")
    checkpoint_after_kill = load_checkpoint(base / "killed" / "checkpoint.pt")
    resumed = run_worker(script, base / "killed", "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return (
        killed,
        checkpoint_after_kill,
        (
            torch.load(base / "full" / "final.pt", weights_only=False),
            torch.load(base / "killed" / "final.pt", weights_only=False),
        ),
    )


def test_sigkill_mid_epoch_leaves_the_last_epoch_checkpoint_whole(killed_and_resumed):
    killed, checkpoint, _ = killed_and_resumed
    assert killed.returncode == -9  # killed by SIGKILL, not a clean exit
    assert checkpoint["epoch"] == 1 and checkpoint["step"] == 3  # epoch 1's, loadable


def test_restart_after_sigkill_ends_where_the_uninterrupted_run_ends(killed_and_resumed):
    _, _, (full, resumed) = killed_and_resumed
    full_history = pd.DataFrame(full["history"]).drop(columns="seconds")
    resumed_history = pd.DataFrame(resumed["history"]).drop(columns="seconds")
    pd.testing.assert_frame_equal(resumed_history, full_history)
    assert full_history["step"].iloc[-1] == 9 and not pd.isna(full_history["knn_acc"].iloc[-1])
    for name in ("context_encoder", "target_encoder"):
        assert all(torch.equal(full[name][k], resumed[name][k]) for k in full[name]), name


# --- checkpoints that this version cannot use -----------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    overrides = tiny(out, **{"train.epochs": 1})
    train("ijepa", overrides=overrides, progress=False)
    return out, overrides


def rewrite(src, dst, change) -> None:
    state = load_checkpoint(src)
    state.pop("format")
    change(state)
    save_checkpoint(dst, state)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("target_encoder"), r"lacks target_encoder"),
        (
            lambda s: s["config"]["loss"].update(vicreg_on=True),
            r"config this version cannot read.*vicreg_on",
        ),
        (
            lambda s: s["context_encoder"].update(
                {key: torch.zeros(1) for key in list(s["context_encoder"])[:1]}
            ),
            r"its context_encoder does not fit",
        ),
    ],
    ids=["missing part", "config of another version", "weights of another model"],
)
def test_load_trained_refuses_an_incompatible_checkpoint_with_checkpoint_error(
    finished_run, tmp_path, change, message
):
    out, _ = finished_run
    rewrite(out / "checkpoint.pt", tmp_path / "checkpoint.pt", change)
    with pytest.raises(CheckpointError, match=message):
        load_trained(tmp_path)


def test_resume_from_a_checkpoint_of_another_version_raises_checkpoint_error(
    finished_run, tmp_path
):
    out, overrides = finished_run
    rewrite(
        out / "checkpoint.pt",
        tmp_path / "checkpoint.pt",
        lambda s: s["config"]["loss"].update(vicreg_on=True),
    )
    with pytest.raises(CheckpointError, match=r"vicreg_on"):
        train(
            "ijepa",
            overrides={**overrides, "train.output_dir": str(tmp_path), "train.resume": True},
            progress=False,
        )


def test_a_run_stopped_by_the_collapse_alarm_keeps_its_state_and_refuses_to_resume(tmp_path):
    overrides = tiny(
        tmp_path,
        **{"train.log_every": 1, "monitor.alarm_rankme": 1000.0, "monitor.on_collapse": "stop"},
    )
    with pytest.warns(CollapseWarning, match="stopping"):
        result = train("ijepa", overrides=overrides, progress=False)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["stopped"] == result.stopped and saved["step"] == 1
    inspected = load_trained(tmp_path)  # the collapsed encoders can be evaluated
    for k, v in inspected.context_encoder.state_dict().items():
        assert torch.equal(v, result.context_encoder.state_dict()[k]), k
    with pytest.raises(ValueError, match="stopped on purpose.*rankme"):
        train("ijepa", overrides={**overrides, "train.resume": True}, progress=False)
