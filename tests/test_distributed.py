"""torchrun with two CPU processes (gloo): DistributedDataParallel keeps the ranks in step."""

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from jepa_core.build import build_run
from jepa_core.config import load_config
from jepa_core.distributed import DistContext

WORKER = textwrap.dedent("""
    import os, sys, torch
    from jepa_core.train import train
    out = sys.argv[1]
    result = train("ijepa", progress=False, overrides={
        "data.train_samples": 512, "train.batch_size": 64, "train.epochs": 2, "train.log_every": 2,
        "train.device": "cpu", "train.output_dir": out, "eval.train_samples": 256,
        "monitor.samples": 64, "optim.warmup_epochs": 0.5})
    torch.save({"context": result.context_encoder.state_dict(),
                "target": result.target_encoder.state_dict(),
                "history": result.history.to_dict("list")},
               os.path.join(out, f"rank{os.environ['RANK']}.pt"))
""")


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    script = out / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return out, ranks


def test_both_ranks_end_with_identical_context_and_target_weights(two_rank_run):
    _, (a, b) = two_rank_run
    for which in ("context", "target"):
        assert a[which].keys() == b[which].keys()
        differing = [k for k in a[which] if not torch.equal(a[which][k], b[which][k])]
        assert not differing, f"{which} weights differ between ranks: {differing[:3]}"


def test_two_rank_training_moved_the_weights_and_the_loss_fell(two_rank_run):
    out, (a, _) = two_rank_run
    history = pd.DataFrame(a["history"])
    losses = history["loss"].dropna()
    assert len(losses) >= 4
    assert losses.iloc[-1] < losses.iloc[0], losses.tolist()
    # one checkpoint, written by rank 0, with the global batch as the config's batch size
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"]["train"]["batch_size"] == 64
    assert state["step"] == 2 * (512 // 64)


def test_ranks_log_the_same_history(two_rank_run):
    _, (a, b) = two_rank_run
    pd.testing.assert_frame_equal(
        pd.DataFrame(a["history"]).drop(columns="seconds"),
        pd.DataFrame(b["history"]).drop(columns="seconds"),
    )


def test_global_batch_must_divide_over_the_processes():
    cfg = load_config("ijepa", {"train.batch_size": 63, "train.device": "cpu"})
    with pytest.raises(ValueError, match=r"train.batch_size=63 is the global batch"):
        build_run(cfg, DistContext(rank=0, world_size=2))


def test_collapse_lab_switches_are_refused_under_torchrun():
    cfg = load_config("ijepa", {"ema.stop_grad": False, "train.device": "cpu"})
    with pytest.raises(ValueError, match="ema.stop_grad=False"):
        build_run(cfg, DistContext(rank=0, world_size=2))
