"""Train a JEPA: the step, the loop around it, and the command line.

    python -m jepa_core.train --config cjepa --set train.epochs=3 --set data.name=mnist5k

:func:`train_step` is one optimizer step, read top to bottom like the official I-JEPA step
(facebookresearch/ijepa, ``src/train.py``): target forward without gradient, context forward,
prediction, loss, backward, optimizer step, EMA. :func:`train` builds the run
(``jepa_core.build``), resumes it from its checkpoint if asked, and loops over the step;
logging, collapse monitoring and checkpoints happen around the step, never inside it.

Under ``torchrun --nproc_per_node=N -m jepa_core.train ...`` the same loop runs on N processes
(``jepa_core.distributed``): ``train.batch_size`` stays the global batch, each rank takes 1/N
of it, and the gradients are averaged over ranks before the optimizer step.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from . import distributed
from .build import Run, build_run, epoch_loader, sample_masks, seed_epoch
from .checkpoint import (
    load_checkpoint,
    load_modules,
    resume_state,
    run_state,
    save_checkpoint,
    saved_config,
)
from .config import PRESETS, Config, add_override_option, load_config, parse_overrides
from .device import autocast
from .ema import ema_update
from .history import CollapseWarning, RunLog  # noqa: F401 (train() warns with it)
from .monitor import knn_eval
from .objectives import jepa_inputs, target_features, two_view_embeddings, view_embeddings
from .optim import cosine_ramp, set_schedules, warmup_cosine
from .paths import resolve
from .results import write_metrics

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainResult:
    history: pd.DataFrame
    context_encoder: nn.Module
    target_encoder: nn.Module
    predictor: nn.Module
    checkpoint_path: Path
    output_dir: Path
    config: Config
    stopped: str | None = None  # why the run stopped early (collapse alarm), else None
    seconds: float = 0.0
    objective: nn.Module | None = None  # the loss, with its projector / pixel head if any

    @property
    def final(self) -> dict[str, Any]:
        """The last history row, with the last k-NN accuracy measured."""
        row = self.history.iloc[-1].to_dict()
        knn = self.history["knn_acc"].dropna()
        row["knn_acc"] = float(knn.iloc[-1]) if len(knn) else math.nan
        return row

    def encoder(self, which: str | None = None) -> nn.Module:
        which = which or self.config.eval.encoder
        if which not in ("target", "context"):
            raise ValueError(f"which must be 'target' or 'context'; got {which!r}")
        return self.target_encoder if which == "target" else self.context_encoder


# --- the step --------------------------------------------------------------------------------
def train_step(run: Run, micro_batches: Iterable[torch.Tensor], step: int) -> dict[str, float]:
    """One optimizer step over ``train.accumulate`` micro-batches; returns the logged terms.

    Multi-view methods get each micro-batch as cat(view 1, view 2, ...) (LeJEPA's smaller local
    views as a second tensor, :func:`batch_images`); I-JEPA runs on the first view. LeJEPA has
    no teacher and no masks: its step is 2-4 on every view, then 5-6.
    """
    cfg, n_micro = run.cfg, run.cfg.train.accumulate
    logged: dict[str, float] = {}
    for micro, images in enumerate(micro_batches):
        if run.objective.method == "lejepa":  # no teacher, no masks: 2-4 on every whole view
            with autocast(run.device):
                pooled = view_embeddings(run.objective, run.context_encoder, images)
                terms = run.objective.lejepa(pooled, step)
        else:
            x = jepa_inputs(run.objective, images)
            masks = sample_masks(run, x.shape[0], step * n_micro + micro)
            with autocast(run.device):
                # 1. target forward: what to predict, under stop-gradient (the lab's switch aside)
                with torch.set_grad_enabled(not cfg.ema.stop_grad):
                    targets = target_features(
                        run.target_encoder,
                        x,
                        masks.targets,
                        levels=run.objective.levels,
                        layer_norm=cfg.loss.target_layer_norm,
                    )
                # 2. context forward: the student sees the kept context patches only
                context = run.context_encoder(x, keep=masks.context)
                # 3. predict the target blocks from the context and the targets' positions
                preds = run.predictor(context, masks.context, masks.targets)
                # 4. loss: how wrong, plus the method's term on both views' embeddings
                views = two_view_embeddings(run.objective, run.context_encoder, images, context)
                terms = run.objective(preds.float(), targets.float(), views, x, masks.targets)
        _check_finite(terms, step)
        # 5. backward, accumulated over the micro-batches
        (terms["loss"] / n_micro).backward()
        for name, value in terms.items():
            logged[name] = logged.get(name, 0.0) + float(value.detach()) / n_micro
    distributed.average_gradients(run.dist, run.trained_parameters)
    # 6. optimizer step on the scheduled learning rate and weight decay
    lr, wd = learning_rate(run, step), weight_decay(run, step)
    set_schedules(run.optimizer, lr, wd)
    if cfg.optim.clip_grad is not None:
        nn.utils.clip_grad_norm_(run.trained_parameters, cfg.optim.clip_grad)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    # 7. EMA: the teacher follows the student (LeJEPA has none)
    momentum = math.nan
    if run.momentum is not None:
        momentum = run.momentum(step)
        ema_update(run.target_encoder, run.context_encoder, momentum)
    return {**logged, "momentum": momentum, "lr": lr, "wd": wd}


def learning_rate(run: Run, step: int) -> float:
    """Linear warm-up to ``optim.lr``, then cosine to ``optim.final_lr`` (official I-JEPA)."""
    o, total = run.cfg.optim, run.total_steps
    warmup = int(round(o.warmup_epochs * run.steps_per_epoch))
    return warmup_cosine(
        step, warmup_steps=warmup, total_steps=total, start=o.start_lr, peak=o.lr, final=o.final_lr
    )


def weight_decay(run: Run, step: int) -> float:
    """Cosine from ``optim.weight_decay`` to ``optim.final_weight_decay`` (official I-JEPA)."""
    o = run.cfg.optim
    return cosine_ramp(
        step, total_steps=run.total_steps, start=o.weight_decay, end=o.final_weight_decay
    )


def _check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    bad = [name for name, value in terms.items() if not torch.isfinite(value).all()]
    if bad:
        name = next((n for n in bad if n != "loss"), "loss")
        raise FloatingPointError(
            f"non-finite loss at step {step}: term {name!r} = {terms[name].item()}"
        )


# --- the loop --------------------------------------------------------------------------------
def train(
    config: Config | str | dict,
    callbacks: Sequence[Callable[[dict], None]] | None = None,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the method a config describes; return its history, encoders and checkpoint path.

    config: a Config, a preset name, a YAML path or a dict (see ``load_config``).
    callbacks: called with each new history row (a dict), e.g. to draw live curves.
    """
    cfg = load_config(config, overrides) if overrides or not isinstance(config, Config) else config
    dist_ctx = distributed.setup(cfg.train.device)
    try:
        return _train(build_run(cfg, dist_ctx), list(callbacks or []), progress)
    finally:
        distributed.teardown(dist_ctx)


def _train(run: Run, callbacks: list[Callable[[dict], None]], progress: bool) -> TrainResult:
    cfg = run.cfg
    ckpt = run.output_dir / CHECKPOINT_NAME
    start_epoch, step, history = _start(run, ckpt)
    log = RunLog(run, callbacks, history, knn=knn_eval, progress=progress)
    for epoch in range(start_epoch, cfg.train.epochs):
        seed_epoch(run, epoch)
        log.start_epoch()
        batches = (batch_images(batch, run.device) for batch in epoch_loader(run, epoch))
        for _ in range(run.steps_per_epoch):
            try:
                terms = train_step(run, islice(batches, cfg.train.accumulate), step)
            except FloatingPointError as e:
                raise FloatingPointError(
                    f"{e} (epoch {epoch + 1}); {_last_good(ckpt, epoch)}"
                ) from None
            step += 1
            log.add(terms)
            in_epoch = step - epoch * run.steps_per_epoch  # rows evenly spaced in each epoch
            end = in_epoch == run.steps_per_epoch
            if end or (cfg.train.log_every and in_epoch % cfg.train.log_every == 0):
                last = epoch + 1 == cfg.train.epochs
                every = cfg.eval.every and (epoch + 1) % cfg.eval.every == 0
                log.row(step, step / run.steps_per_epoch, terms, evaluate=end and (last or every))
                if log.stopped:
                    break
        log.end_epoch()
        if run.dist.is_main:  # a run stopped by the alarm keeps its last state, marked stopped
            state = run_state(run, epoch + (not log.stopped), step, history, log.stopped)
            save_checkpoint(ckpt, state)
            pd.DataFrame(history).to_csv(run.output_dir / "history.csv", index=False)
        distributed.barrier(run.dist)
        if log.stopped:
            break
    log.close()
    return _finish(run, ckpt, history, log)


def _last_good(ckpt: Path, epoch: int) -> str:
    if epoch:
        return f"the last good checkpoint is {str(ckpt)!r} (after epoch {epoch})"
    return "no checkpoint was written yet"


def _start(run: Run, ckpt: Path) -> tuple[int, int, list[dict]]:
    """(epoch, step, history) to start from: a resumed checkpoint's, or a fresh run's."""
    if run.dist.is_main:
        run.output_dir.mkdir(parents=True, exist_ok=True)
    for module in (run.context_encoder, run.predictor, run.objective):
        module.train()
    if run.target_encoder is not run.context_encoder:  # LeJEPA's one encoder keeps training
        run.target_encoder.eval()  # the teacher never drops paths: its outputs are the targets
    if run.cfg.train.resume and ckpt.exists():
        return resume_state(run, ckpt)
    if ckpt.exists() and run.dist.is_main:
        warnings.warn(
            f"{ckpt} exists and train.resume is false: starting afresh and overwriting it",
            stacklevel=4,
        )
    return 0, 0, []


def batch_images(batch, device: torch.device | str = "cpu") -> torch.Tensor | list[torch.Tensor]:
    """The batch's images on ``device``: one tensor, or the views one after another
    (cat(view 1, view 2, ...)); views of another size than the first (LeJEPA's local views)
    follow as a second tensor."""
    images = batch[0]
    if isinstance(images, (list, tuple)):
        same = [v for v in images if v.shape == images[0].shape]
        other = [v for v in images if v.shape != images[0].shape]
        groups = [torch.cat(same, dim=0)] + ([torch.cat(other, dim=0)] if other else [])
        moved = [g.to(device, non_blocking=True) for g in groups]
        return moved[0] if len(moved) == 1 else moved
    return images.to(device, non_blocking=True)


def _finish(run: Run, ckpt: Path, history: list[dict], log: RunLog) -> TrainResult:
    frame = pd.DataFrame(history)
    result = TrainResult(
        history=frame,
        context_encoder=run.context_encoder,
        target_encoder=run.target_encoder,
        predictor=run.predictor,
        checkpoint_path=ckpt,
        output_dir=run.output_dir,
        config=run.cfg,
        stopped=log.stopped,
        seconds=log.seconds,
        objective=run.objective,
    )
    if run.dist.is_main:
        frame.to_csv(run.output_dir / "history.csv", index=False)
        write_metrics(
            run.output_dir,
            parameters=run.cfg.flat(),
            metrics={**result.final, "stopped": log.stopped, "world_size": run.dist.world_size},
            timings={"train_seconds": log.seconds},
        )
    return result


# --- a finished run, and the command line ----------------------------------------------------
def load_trained(checkpoint: str | Path, device: str = "cpu") -> TrainResult:
    """Rebuild the encoders, predictor and history of a saved run (e.g. for evaluation)."""
    path = resolve(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = load_checkpoint(path, map_location=device)
    cfg = saved_config(state, path, {"train.device": device, "train.compile": False})
    run = build_run(cfg)
    load_modules(run, state, path)
    for module in (run.context_encoder, run.target_encoder, run.predictor, run.objective):
        module.eval()
    return TrainResult(
        history=pd.DataFrame(state["history"]),
        context_encoder=run.context_encoder,
        target_encoder=run.target_encoder,
        predictor=run.predictor,
        checkpoint_path=path,
        output_dir=path.parent,
        config=cfg,
        stopped=state.get("stopped"),
        objective=run.objective,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jepa_core.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--config",
        default="ijepa",
        help=f"a preset ({', '.join(PRESETS)}) or a YAML path",
    )
    add_override_option(parser, help="a dotted override, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, parse_overrides(args.overrides))
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.error(str(e))
    if args.print_config:
        for key, value in cfg.flat().items():
            print(f"{key} = {value!r}")
        return 0
    result = train(cfg, progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    final = result.final
    print(
        f"{cfg.loss.method} on {cfg.data.name}: "
        f"knn_acc={final['knn_acc']:.4f} rankme={final['rankme']:.2f} "
        f"std_mean={final['std_mean']:.4f} in {result.seconds:.0f}s"
    )
    print(f"checkpoint: {result.checkpoint_path}\nhistory: {result.output_dir / 'history.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
