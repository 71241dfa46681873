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


# --- batch statistics over the global batch ------------------------------------------------
TERMS_WORKER = textwrap.dedent("""
    import os, sys, torch
    import torch.distributed as dist
    from jepa_core import distributed
    from jepa_core.config import load_config
    from jepa_core.objectives import Objective
    out = sys.argv[1]
    ctx = distributed.setup("cpu")
    results = {}
    for method in ("cjepa", "ijepa_ntxent", "lejepa"):
        cfg = load_config(method).loss
        torch.manual_seed(0)  # the same projector on every rank (as build_run seeds the models)
        objective = Objective(cfg, embed_dim=16, patch_size=4, in_chans=1, dist=ctx)
        z = torch.load(os.path.join(out, f"{method}-z.pt"))  # the global batch [V, 8, 16]
        half = z.shape[1] // ctx.world_size
        mine = z[:, ctx.rank * half : (ctx.rank + 1) * half].clone().requires_grad_(True)
        terms = objective.view_terms(mine, step=3)
        terms["views"].backward()
        params = [p for p in objective.parameters()]
        distributed.average_gradients(ctx, params)
        results[method] = {
            "terms": {k: float(v) for k, v in terms.items()},
            "z_grad": mine.grad,
            "param_grads": [p.grad.clone() for p in params],
        }
    torch.save(results, os.path.join(out, f"terms-rank{ctx.rank}.pt"))
    distributed.teardown(ctx)
""")


def test_batch_terms_on_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    """VICReg (cjepa), NT-Xent (ijepa_ntxent) and LeJEPA's prediction + SIGReg, computed by 2
    gloo processes on half a batch each, equal the terms of one process on the whole batch;
    after the step's gradient averaging, so do the gradients (embeddings and projector)."""
    from jepa_core.objectives import Objective

    views = {"cjepa": 2, "ijepa_ntxent": 2, "lejepa": 4}
    generator = torch.Generator().manual_seed(1)
    for method, v in views.items():
        z = torch.randn(v, 8, 16, generator=generator) + torch.linspace(0, 1, 16)
        torch.save(z, tmp_path / f"{method}-z.pt")
    script = tmp_path / "terms_worker.py"
    script.write_text(TERMS_WORKER)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        + [str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"terms-rank{r}.pt", weights_only=False) for r in (0, 1)]
    for method in views:
        torch.manual_seed(0)
        objective = Objective(load_config(method).loss, embed_dim=16, patch_size=4, in_chans=1)
        z = torch.load(tmp_path / f"{method}-z.pt").requires_grad_(True)
        terms = objective.view_terms(z, step=3)
        terms["views"].backward()
        for rank, result in enumerate(ranks):
            got = result[method]
            for name, value in terms.items():
                assert got["terms"][name] == pytest.approx(
                    float(value.detach()), rel=1e-5, abs=1e-6
                ), (
                    method,
                    rank,
                    name,
                )
            # the gather's backward sums every rank's copy of the loss: world_size x the slice's
            # gradient, which average_gradients divides back for the parameters
            torch.testing.assert_close(got["z_grad"] / 2, z.grad[:, rank * 4 : (rank + 1) * 4])
            for mine, reference in zip(got["param_grads"], objective.parameters(), strict=True):
                torch.testing.assert_close(mine, reference.grad, rtol=1e-4, atol=1e-6)
        # and a single rank's half batch alone would have given another loss
        half = objective.view_terms(z[:, :4].detach(), step=3)["views"]
        assert float(half.detach()) != pytest.approx(float(terms["views"].detach()), rel=1e-3)
