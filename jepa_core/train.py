"""Train a JEPA: the loop, its checkpoints, its collapse monitoring, and its CLI.

    python -m jepa_core.train --config cjepa --set train.epochs=3 --set data.name=mnist5k

Under ``torchrun --nproc_per_node=N -m jepa_core.train ...`` the same loop runs on N processes
with DistributedDataParallel (see ``distributed.py``); ``train.batch_size`` stays the global
batch (each rank takes batch_size / N).

One optimizer step reads like the official I-JEPA step (facebookresearch/ijepa, src/train.py):

    1. target forward   targets = LN(target_encoder(x))[target blocks]    no gradient
    2. context forward  context = context_encoder(x, keep=context block)
    3. predict          preds = predictor(context, context idx, target idx)
    4. loss             objective(preds, targets, context, ...)
    5. update           AdamW step, then the teacher follows by EMA

Reproducible on CPU: the model is initialised from ``train.seed``; each epoch's data order,
augmentations and masks are drawn from generators seeded by (seed, epoch, step), so a run
resumed from its last epoch checkpoint ends exactly where the uninterrupted run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from . import distributed
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import Config, config_diff, load_config, parse_overrides
from .data import make_datasets, make_loader, with_two_views
from .device import resolve_device
from .ema import ema_update, momentum_schedule
from .evaluate import extract_features, knn_accuracy
from .frontend import progress_bar
from .masks import sample_multiblock_masks
from .models import MODEL_PRESETS, build_models
from .monitor import embedding_stats
from .objectives import Objective, OnlineStep, jepa_batch_size, jepa_inputs, target_features
from .optim import cosine_ramp, make_optimizer, set_schedules, warmup_cosine
from .paths import resolve, results_dir
from .results import write_metrics

CHECKPOINT_NAME = "checkpoint.pt"


class CollapseWarning(UserWarning):
    """The embeddings look collapsed (std_mean or rankme under the monitor's thresholds)."""


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


@dataclass
class _Run:
    """Everything built from a config."""

    cfg: Config
    device: torch.device
    train_set: Any
    test_set: Any
    eval_bank: Any
    context_encoder: nn.Module
    target_encoder: nn.Module
    predictor: nn.Module
    objective: Objective
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    micro_batch: int
    output_dir: Path
    monitor_images: torch.Tensor
    online: nn.Module  # context encoder + predictor + objective (DDP-wrapped / compiled when asked)
    dist: distributed.DistContext = field(default_factory=distributed.DistContext)
    momentum: Callable[[int], float] = field(repr=False, default=None)


# ---------------------------------------------------------------------------------------------
def default_output_dir(cfg: Config) -> Path:
    """Where a run of ``cfg`` writes: ``train.output_dir``, else
    ``results/runs/<method>-<dataset>-seed<seed>/``. Created by ``train`` when it writes, not
    here: building a run only to read its encoders leaves no empty folder behind."""
    if cfg.train.output_dir:
        return resolve(cfg.train.output_dir)
    return results_dir("runs") / f"{cfg.loss.method}-{cfg.data.name}-seed{cfg.train.seed}"


def _seed(*parts: int) -> int:
    """A 63-bit seed from (seed, epoch, step, ...): independent streams, same on every run."""
    value = 0x9E3779B97F4A7C15
    for p in parts:
        value = (value * 6364136223846793005 + int(p) + 1442695040888963407) % (1 << 63)
    return value


def run_datasets(cfg: Config) -> tuple[Any, Any, Any]:
    """(training set, test set, k-NN memory bank) exactly as a run of ``cfg`` uses them: the
    training set cut to ``data.train_samples`` (a subset fixed by ``train.seed``), the bank a
    fixed subset of it of at most ``eval.train_samples`` plain (un-augmented) images."""
    train_set, test_set = make_datasets(cfg.data.name, root=cfg.data.root, download=cfg.data.download,
                                        image_size=cfg.data.image_size)
    if cfg.data.train_samples is not None and cfg.data.train_samples < len(train_set):
        keep = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.train.seed))
        train_set = Subset(train_set, keep[: cfg.data.train_samples].tolist())
    eval_bank = train_set
    if cfg.eval.train_samples is not None and cfg.eval.train_samples < len(train_set):
        pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))
        eval_bank = Subset(train_set, pick[: cfg.eval.train_samples].tolist())
    return train_set, test_set, eval_bank


def build_run(cfg: Config, dist_ctx: distributed.DistContext | None = None) -> _Run:
    dist_ctx = dist_ctx or distributed.DistContext()
    device = resolve_device(cfg.train.device, local_rank=dist_ctx.local_rank if dist_ctx.enabled else None)
    if dist_ctx.enabled:
        if cfg.train.batch_size % (dist_ctx.world_size * cfg.train.accumulate):
            raise ValueError(f"train.batch_size={cfg.train.batch_size} is the global batch: it must divide by "
                             f"the {dist_ctx.world_size} processes x train.accumulate={cfg.train.accumulate}")
        if not cfg.ema.stop_grad or cfg.ema.target_in_optimizer:
            raise ValueError("ema.stop_grad=False and ema.target_in_optimizer=True are the collapse lab's "
                             "single-process switches; run them without torchrun")
    torch.manual_seed(cfg.train.seed)
    train_set, test_set, eval_bank = run_datasets(cfg)
    in_chans, height, width = train_set[0][0].shape
    if height != width:
        raise ValueError(f"images must be square for the ViT presets; dataset {cfg.data.name!r} gives "
                         f"{height}x{width}: set data.image_size")
    if cfg.model.size not in MODEL_PRESETS:
        raise ValueError(f"model.size must be one of {', '.join(MODEL_PRESETS)}; got {cfg.model.size!r}")
    depth = MODEL_PRESETS[cfg.model.size]["depth"]
    levels = len(cfg.loss.level_weights) if cfg.loss.method == "hjepa" else 1
    if levels > depth:
        raise ValueError(f"loss.level_weights has {levels} levels but model.size={cfg.model.size!r} has only "
                         f"{depth} blocks")
    context_encoder, target_encoder, predictor = build_models(
        cfg.model.size, img_size=height, patch_size=cfg.model.patch_size, in_chans=in_chans,
        out_levels=levels, drop_path_rate=cfg.model.drop_path_rate)
    objective = Objective(cfg.loss, embed_dim=context_encoder.embed_dim, patch_size=cfg.model.patch_size,
                          in_chans=in_chans)
    # Collapse-lab switches: the target joins autograd / the optimizer only when asked.
    trained_target = cfg.ema.target_in_optimizer or not cfg.ema.stop_grad
    target_encoder.requires_grad_(trained_target)
    for module in (context_encoder, target_encoder, predictor, objective):
        module.to(device)
    if objective.views == 2:
        train_set = with_two_views(train_set, crop_scale=cfg.data.crop_scale)
    trained = [context_encoder, predictor, objective]
    if cfg.ema.target_in_optimizer:
        trained.append(target_encoder)
    optimizer = make_optimizer(trained, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)

    micro_batch = cfg.train.batch_size // (cfg.train.accumulate * dist_ctx.world_size)
    steps_per_epoch = len(train_set) // cfg.train.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is larger than the training set "
                         f"({len(train_set)} images): lower it")
    n_monitor = min(cfg.monitor.samples, len(test_set))
    monitor_images = torch.stack([test_set[i][0] for i in range(n_monitor)]).to(device)
    online = OnlineStep(context_encoder, predictor, objective)
    if dist_ctx.enabled:  # gradients averaged over ranks; every rank starts from the same seed
        online = DistributedDataParallel(online, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        online = torch.compile(online)
    run = _Run(cfg=cfg, device=device, train_set=train_set, test_set=test_set, eval_bank=eval_bank,
               context_encoder=context_encoder, target_encoder=target_encoder, predictor=predictor,
               objective=objective, optimizer=optimizer, steps_per_epoch=steps_per_epoch,
               micro_batch=micro_batch, output_dir=default_output_dir(cfg), monitor_images=monitor_images,
               online=online, dist=dist_ctx)
    total = cfg.train.epochs * steps_per_epoch
    ema_end = cfg.ema.start if cfg.ema.kind == "constant" else cfg.ema.end
    run.momentum = momentum_schedule(cfg.ema.start, ema_end, total_steps=total, kind=cfg.ema.kind)
    check_teacher(run)
    return run


def check_teacher(run: _Run) -> None:
    """Fail loudly if the target encoder is wired wrong for the chosen switches.

    Healthy I-JEPA: no target parameter requires grad, none is in the optimizer, and the target
    is only ever changed by ``ema_update``.
    """
    ema = run.cfg.ema
    target_ids = {id(p) for p in run.target_encoder.parameters()}
    in_opt = {id(p) for g in run.optimizer.param_groups for p in g["params"]} & target_ids
    needs_grad = [p.requires_grad for p in run.target_encoder.parameters()]
    shared = target_ids & {id(p) for p in run.context_encoder.parameters()}
    if shared:
        raise RuntimeError("the target encoder shares parameters with the context encoder: it must be a copy")
    if ema.target_in_optimizer:
        if len(in_opt) != len(target_ids):
            raise RuntimeError("ema.target_in_optimizer=True but the target encoder is not in the optimizer")
        return
    if in_opt:
        raise RuntimeError(f"{len(in_opt)} target-encoder parameters are in the optimizer: the target "
                           "must be updated only by ema_update (set ema.target_in_optimizer only on purpose)")
    if ema.stop_grad and any(needs_grad):
        raise RuntimeError("target-encoder parameters require grad although ema.stop_grad=True")


def _stream(run: _Run, kind: int) -> int:
    """Random stream ``kind`` of this rank (rank 0 of any world size draws what one process does)."""
    return kind + 16 * run.dist.rank


def seed_epoch(run: _Run, epoch: int) -> None:
    """Every random draw of an epoch (order, augmentations) depends on (seed, epoch, rank) alone."""
    torch.manual_seed(_seed(run.cfg.train.seed, epoch, _stream(run, 1)) % (1 << 62))


def epoch_loader(run: _Run, epoch: int) -> DataLoader:
    cfg = run.cfg
    pin = run.device.type == "cuda"
    if not run.dist.enabled:
        return make_loader(run.train_set, run.micro_batch, shuffle=True, seed=_seed(cfg.train.seed, epoch, 2) % (1 << 62),
                           num_workers=cfg.data.num_workers, drop_last=True, pin_memory=pin)
    # Each rank reads its own 1/N of a permutation that depends on (seed, epoch) alone.
    sampler = DistributedSampler(run.train_set, num_replicas=run.dist.world_size, rank=run.dist.rank, shuffle=True,
                                 seed=_seed(cfg.train.seed, 2) % (1 << 62), drop_last=True)
    sampler.set_epoch(epoch)
    return DataLoader(run.train_set, batch_size=run.micro_batch, sampler=sampler, num_workers=cfg.data.num_workers,
                      drop_last=True, pin_memory=pin)


def sample_masks(run: _Run, batch_size: int, micro_step: int):
    """This rank's masks for one micro-step, from a generator seeded by (seed, step, rank)."""
    m = run.cfg.masks
    g = torch.Generator().manual_seed(_seed(run.cfg.train.seed, micro_step, _stream(run, 3)) % (1 << 62))
    masks = sample_multiblock_masks(run.context_encoder.grid, batch_size, n_targets=m.n_targets,
                                    target_scale=m.target_scale, target_aspect=m.target_aspect,
                                    context_scale=m.context_scale, min_keep=m.min_keep,
                                    allow_overlap=m.allow_overlap, generator=g)
    return masks.to(run.device)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(run: _Run, images: torch.Tensor, masks) -> dict[str, torch.Tensor]:
    """Forward one (micro-)batch and return the loss terms; the caller steps the optimizer."""
    with _autocast(run.device):
        # 1. target forward: no gradient unless the collapse lab's ema.stop_grad=False asks for it
        with torch.set_grad_enabled(not run.cfg.ema.stop_grad):
            targets = target_features(run.target_encoder, jepa_inputs(run.objective, images), masks.targets,
                                      levels=run.objective.levels, layer_norm=run.cfg.loss.target_layer_norm)
        # 2.-4. context forward, prediction, loss (through DDP when distributed)
        return run.online(images, masks, targets)


def _batch_images(batch, device: torch.device) -> torch.Tensor:
    images = batch[0]
    if isinstance(images, (list, tuple)):  # two views: view a then view b
        images = torch.cat(list(images), dim=0)
    return images.to(device, non_blocking=True)


@torch.no_grad()
def monitor_stats(run: _Run) -> dict[str, float]:
    """Collapse metrics of the mean-pooled embeddings of the fixed monitor images: those of the
    evaluated encoder (``eval.encoder``, the teacher by default) and, as ``student_*``, those
    of the context encoder, the one the optimizer trains (a frozen or slow teacher can hide a
    collapsing student)."""
    out = {}
    for prefix, encoder in (("", run.target_encoder if run.cfg.eval.encoder == "target" else run.context_encoder),
                            ("student_", run.context_encoder)):
        was_training = encoder.training
        encoder.eval()
        with _autocast(run.device):
            z = encoder(run.monitor_images).float().mean(dim=1)
        encoder.train(was_training)
        stats = embedding_stats(z)
        keys = ("std_mean", "std_min", "rankme", "mean_cosine") if not prefix else ("std_mean", "rankme")
        out.update({prefix + k: stats[k] for k in keys})
    return out


def knn_eval(run: _Run) -> float:
    """k-NN accuracy of the evaluated encoder (computed on rank 0, broadcast to the others)."""
    if not run.dist.is_main:
        return distributed.broadcast_float(run.dist, None, run.device)
    cfg = run.cfg
    encoder = run.target_encoder if cfg.eval.encoder == "target" else run.context_encoder
    kwargs = {"batch_size": 256, "shuffle": False, "num_workers": cfg.data.num_workers}
    train_x, train_y = extract_features(encoder, DataLoader(run.eval_bank, **kwargs), pool=cfg.eval.pool)
    test_x, test_y = extract_features(encoder, DataLoader(run.test_set, **kwargs), pool=cfg.eval.pool)
    acc = knn_accuracy(train_x.to(run.device), train_y.to(run.device), test_x.to(run.device),
                       test_y.to(run.device), k=cfg.eval.k, temperature=cfg.eval.temperature)
    return distributed.broadcast_float(run.dist, acc, run.device)


_MODULES = ("context_encoder", "target_encoder", "predictor", "objective")
_STATE_KEYS = ("config", "epoch", "step", *_MODULES, "optimizer", "history")


def _state(run: _Run, epoch: int, step: int, history: list[dict], stopped: str | None = None) -> dict[str, Any]:
    return {"config": run.cfg.to_dict(), "preset": run.cfg.preset, "epoch": epoch, "step": step,
            **{name: getattr(run, name).state_dict() for name in _MODULES},
            "optimizer": run.optimizer.state_dict(), "history": history, "stopped": stopped}


def _saved_config(state: dict[str, Any], path: Path, overrides: dict[str, Any] | None = None) -> Config:
    """The config a checkpoint was written with; a CheckpointError if this version cannot use it."""
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {', '.join(missing)}: it was not written by "
                              "jepa_core.train (or by an incompatible version)")
    try:
        return load_config(state["config"] | {"preset": state.get("preset")}, overrides)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a config this version cannot read ({e}); "
                              "start a new output_dir or use the version that wrote it") from None


def _load_modules(run: _Run, state: dict[str, Any], path: Path) -> None:
    for name in _MODULES:
        try:
            getattr(run, name).load_state_dict(state[name])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint {str(path)!r}: its {name} does not fit the model its config "
                                  f"builds ({first})") from None


def _resume(run: _Run, path: Path) -> tuple[int, int, list[dict]]:
    state = load_checkpoint(path, map_location=run.device)
    saved = _saved_config(state, path)
    if state.get("stopped"):
        raise ValueError(f"train.resume: the run in {str(path.parent)!r} was stopped on purpose "
                         f"({state['stopped']}); it would stop again. Load it with load_trained to inspect "
                         "it, or start a new output_dir")
    diff = config_diff(saved, run.cfg, ignore=("train.resume", "train.output_dir", "data.num_workers",
                                                "train.device"))
    if diff:
        lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in diff.items()))
        raise ValueError(f"train.resume: the checkpoint {str(path)!r} was written with a different config "
                         f"({lines}); resume with the same config or start a new output_dir")
    _load_modules(run, state, path)
    run.optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]), int(state["step"]), list(state["history"])


def _alarm(cfg: Config, row: dict) -> str | None:
    mon = cfg.monitor
    if mon.alarm_std_mean > 0 and row["std_mean"] < mon.alarm_std_mean:
        return f"std_mean {row['std_mean']:.2e} < monitor.alarm_std_mean {mon.alarm_std_mean}"
    if mon.alarm_rankme > 0 and row["rankme"] < mon.alarm_rankme:
        return f"rankme {row['rankme']:.2f} < monitor.alarm_rankme {mon.alarm_rankme}"
    return None


def _check_finite(terms: dict[str, torch.Tensor], step: int, epoch: int, ckpt: Path, last_epoch: int) -> None:
    bad = [name for name, value in terms.items() if not torch.isfinite(value).all()]
    if not bad:
        return
    name = next((n for n in bad if n != "loss"), "loss")
    where = (f"the last good checkpoint is {str(ckpt)!r} (after epoch {last_epoch})" if last_epoch > 0
             else "no checkpoint was written yet")
    raise FloatingPointError(f"non-finite loss at step {step} (epoch {epoch + 1}): term {name!r} = "
                             f"{terms[name].item()}; {where}")


def train(config: Config | str | dict, callbacks: Sequence[Callable[[dict], None]] | None = None,
          progress: bool = True, overrides: dict[str, Any] | None = None) -> TrainResult:
    """Train the method a config describes; return its history, encoders and checkpoint path.

    config: a Config, a preset name, a YAML path or a dict (see ``load_config``).
    callbacks: called with each new history row (a dict), e.g. to draw live curves.
    """
    cfg = load_config(config, overrides) if overrides or not isinstance(config, Config) else config
    dist_ctx = distributed.setup(cfg.train.device)
    try:
        return _train(build_run(cfg, dist_ctx), callbacks, progress)
    finally:
        distributed.teardown(dist_ctx)


def _train(run: _Run, callbacks: Sequence[Callable[[dict], None]] | None, progress: bool) -> TrainResult:
    cfg, main = run.cfg, run.dist.is_main
    if main:
        run.output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run.output_dir / CHECKPOINT_NAME
    start_epoch, step, history = 0, 0, []
    if cfg.train.resume and ckpt_path.exists():
        start_epoch, step, history = _resume(run, ckpt_path)
    elif ckpt_path.exists() and main:
        warnings.warn(f"{ckpt_path} exists and train.resume is false: starting afresh and overwriting it",
                      stacklevel=3)
    total_steps = cfg.train.epochs * run.steps_per_epoch
    warmup_steps = int(round(cfg.optim.warmup_epochs * run.steps_per_epoch))
    seconds = history[-1]["seconds"] if history else 0.0
    stopped, warned = None, False

    bar = None
    if progress and main:
        bar = progress_bar(total=total_steps, initial=step, desc=f"{cfg.loss.method} on {cfg.data.name}",
                           unit="step")
    for module in (run.context_encoder, run.predictor, run.objective):
        module.train()
    run.target_encoder.eval()  # the teacher never drops paths: its outputs are the targets
    sums: dict[str, float] = {}
    n_sums = 0
    if step == 0 and not history:  # row 0: the encoders at initialisation
        row = {"epoch": 0.0, "step": 0, "images": 0, "momentum": run.momentum(0), "lr": cfg.optim.start_lr,
               "wd": cfg.optim.weight_decay, **monitor_stats(run), "knn_acc": knn_eval(run), "seconds": 0.0}
        history.append(row)
        for cb in callbacks or []:
            cb(row)

    for epoch in range(start_epoch, cfg.train.epochs):
        seed_epoch(run, epoch)
        t0 = time.perf_counter()
        micro = 0
        for batch in epoch_loader(run, epoch):
            if micro // cfg.train.accumulate >= run.steps_per_epoch:
                break
            images = _batch_images(batch, run.device)
            masks = sample_masks(run, jepa_batch_size(run.objective, images.shape[0]),
                                 step * cfg.train.accumulate + micro % cfg.train.accumulate)
            accumulating = (micro + 1) % cfg.train.accumulate != 0
            # DDP averages gradients over ranks on the backward of the last micro-batch only
            with run.online.no_sync() if run.dist.enabled and accumulating else contextlib.nullcontext():
                terms = train_step(run, images, masks)
                _check_finite(terms, step, epoch, ckpt_path, epoch)
                (terms["loss"] / cfg.train.accumulate).backward()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / cfg.train.accumulate
            micro += 1
            if micro % cfg.train.accumulate:
                continue
            # 5. update: AdamW step on the scheduled lr / wd, then the teacher follows by EMA
            lr = warmup_cosine(step, warmup_steps=warmup_steps, total_steps=total_steps, start=cfg.optim.start_lr,
                               peak=cfg.optim.lr, final=cfg.optim.final_lr)
            wd = cosine_ramp(step, total_steps=total_steps, start=cfg.optim.weight_decay,
                             end=cfg.optim.final_weight_decay)
            set_schedules(run.optimizer, lr, wd)
            if cfg.optim.clip_grad is not None:
                nn.utils.clip_grad_norm_([p for g in run.optimizer.param_groups for p in g["params"]],
                                         cfg.optim.clip_grad)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            momentum = run.momentum(step)
            ema_update(run.target_encoder, run.context_encoder, momentum)
            step += 1
            n_sums += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(terms['loss'].detach()):.4f}")
            end_of_epoch = micro // cfg.train.accumulate == run.steps_per_epoch
            if end_of_epoch or (cfg.train.log_every and step % cfg.train.log_every == 0):
                evaluate_now = end_of_epoch and (
                    (cfg.eval.every and (epoch + 1) % cfg.eval.every == 0) or epoch + 1 == cfg.train.epochs)
                seconds += time.perf_counter() - t0
                sums = distributed.mean_over_ranks(run.dist, sums, run.device)
                row = {"epoch": step / run.steps_per_epoch, "step": step, "images": step * cfg.train.batch_size,
                       **{k: v / n_sums for k, v in sums.items()}, "momentum": momentum, "lr": lr, "wd": wd,
                       **monitor_stats(run), "knn_acc": knn_eval(run) if evaluate_now else math.nan}
                t0 = time.perf_counter()
                row["seconds"] = seconds
                history.append(row)
                sums, n_sums = {}, 0
                for cb in callbacks or []:
                    cb(row)
                reason = _alarm(cfg, row)
                if reason:
                    message = f"collapse alarm at step {step}: {reason}"
                    if cfg.monitor.on_collapse == "stop":
                        stopped = message
                        if main:
                            warnings.warn(message + "; stopping (monitor.on_collapse='stop')", CollapseWarning,
                                          stacklevel=3)
                        break
                    if not warned and main:
                        warnings.warn(message + " (monitor.on_collapse='warn' keeps going)", CollapseWarning,
                                      stacklevel=3)
                        warned = True
        if not stopped:
            seconds += time.perf_counter() - t0
            history[-1]["seconds"] = seconds
        # The state at the end of each epoch; a run stopped by the alarm keeps its last state too
        # (marked stopped: load_trained reads it, train.resume refuses it).
        if main:
            save_checkpoint(ckpt_path, _state(run, epoch + 1 if not stopped else epoch, step, history, stopped))
            pd.DataFrame(history).to_csv(run.output_dir / "history.csv", index=False)
        distributed.barrier(run.dist)
        if stopped:
            break
    if bar is not None:
        bar.close()

    frame = pd.DataFrame(history)
    result = TrainResult(history=frame, context_encoder=run.context_encoder, target_encoder=run.target_encoder,
                         predictor=run.predictor, checkpoint_path=ckpt_path, output_dir=run.output_dir, config=cfg,
                         stopped=stopped, seconds=seconds)
    if main:
        frame.to_csv(run.output_dir / "history.csv", index=False)
        write_metrics(run.output_dir, parameters=cfg.flat(),
                      metrics={**result.final, "stopped": stopped, "world_size": run.dist.world_size},
                      timings={"train_seconds": seconds})
    return result


def load_trained(checkpoint: str | Path, device: str = "cpu") -> TrainResult:
    """Rebuild the encoders, predictor and history of a saved run (e.g. for evaluation)."""
    path = resolve(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = load_checkpoint(path, map_location=device)
    cfg = _saved_config(state, path, {"train.device": device, "train.compile": False})
    run = build_run(cfg)
    _load_modules(run, state, path)
    for module in (run.context_encoder, run.target_encoder, run.predictor):
        module.eval()
    return TrainResult(history=pd.DataFrame(state["history"]), context_encoder=run.context_encoder,
                       target_encoder=run.target_encoder, predictor=run.predictor, checkpoint_path=path,
                       output_dir=path.parent, config=cfg)


# ---------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa_core.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="ijepa", help="a preset (ijepa, cjepa, ijepa_ntxent, hjepa) or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a dotted override, e.g. --set train.epochs=3 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
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
    print(f"{cfg.loss.method} on {cfg.data.name}: knn_acc={final['knn_acc']:.4f} rankme={final['rankme']:.2f} "
          f"std_mean={final['std_mean']:.4f} in {result.seconds:.0f}s")
    print(f"checkpoint: {result.checkpoint_path}\nhistory: {result.output_dir / 'history.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
