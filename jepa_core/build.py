"""A run built from its config: data, models, optimizer, schedules and seeded random streams.

    run = build_run(load_config("cjepa"))
    run.context_encoder, run.target_encoder, run.predictor, run.objective, run.optimizer

Every random draw of a run depends on (train.seed, epoch, step, rank) alone: the model is
initialised from ``train.seed``; each epoch's data order and augmentations, and each
micro-step's masks, come from generators seeded by :func:`stream_seed`. So a run resumed from
its last epoch checkpoint ends exactly where the uninterrupted run ends (CPU).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from . import distributed
from .config import Config, load_config
from .data import (
    dataset_info,
    local_view_size,
    make_datasets,
    make_loader,
    with_crop,
    with_multi_views,
    with_two_views,
)
from .device import resolve_device
from .ema import ema_end_for_run, ema_start_for_run, momentum_schedule
from .masks import sample_multiblock_masks
from .models import MODEL_PRESETS, build_models
from .objectives import Objective
from .optim import make_optimizer
from .paths import resolve, results_dir


@dataclass
class Run:
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
    dist: distributed.DistContext = field(default_factory=distributed.DistContext)
    momentum: Callable[[int], float] = field(repr=False, default=None)

    @property
    def total_steps(self) -> int:
        return self.cfg.train.epochs * self.steps_per_epoch

    @property
    def trained_parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates (and, under torchrun, what is averaged over ranks)."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]


def default_output_dir(cfg: Config) -> Path:
    """Where a run of ``cfg`` writes: ``train.output_dir``, else
    ``results/runs/<method>-<dataset>-seed<seed>/``. Created by ``train`` when it writes, not
    here: building a run only to read its encoders leaves no empty folder behind."""
    if cfg.train.output_dir:
        return resolve(cfg.train.output_dir)
    return results_dir("runs") / f"{cfg.loss.method}-{cfg.data.name}-seed{cfg.train.seed}"


def shared_run_dir(cfg: Config, root: str | Path) -> Path:
    """The folder of the run ``cfg`` describes in a store of finished runs shared by the
    notebooks: ``<root>/<method>-<dataset>-seed<seed>-<key>``, ``key`` a hash of every config
    value that changes the trained weights (``checkpoint.RUN_INDEPENDENT_KEYS`` excluded) and of
    the library's source (:func:`library_fingerprint`). Two notebooks asking for the same run
    (notebook 02's healthy I-JEPA and notebook 05's, say) find one folder: the first trains it,
    the next resumes it at once. After a change to the library, a recipe change no config key
    names included, the same config gets a new folder and trains afresh."""
    from .checkpoint import RUN_INDEPENDENT_KEYS

    values = {k: v for k, v in cfg.flat().items() if k not in RUN_INDEPENDENT_KEYS}
    values["library"] = library_fingerprint()
    key = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    name = f"{cfg.loss.method}-{cfg.data.name}-seed{cfg.train.seed}-{key[:10]}"
    return resolve(root) / name


def store_config(method: str, overrides: dict[str, Any] | None, root: str | Path) -> Config:
    """The config of the run ``method`` with ``overrides`` in the store of shared runs ``root``:
    the same config with ``train.output_dir`` set to its :func:`shared_run_dir`."""
    folder = shared_run_dir(load_config(method, overrides), root)
    return load_config(method, {**(overrides or {}), "train.output_dir": str(folder)})


def initial_scores_file(run: Run) -> Path | None:
    """Where a run in a store of shared runs keeps the scores of its initial weights (history
    row 0: the monitor's collapse metrics and the k-NN accuracy), for the store's other runs that
    start from the same weights: ``<store>/initial-scores/<key>.json``.

    Every preset builds the same encoder from the same seed, so the runs a notebook trains
    (notebook 02's seven, say) would otherwise score one set of weights again and again (a k-NN
    pass and a monitor pass each). ``key`` hashes what the scores depend on: the weights of the
    evaluated and the trained encoder, the monitor images, the data / model / eval / monitor
    sections of the config, the seed (it picks the k-NN bank), the device, ``train.compile`` and
    the library's source (:func:`library_fingerprint`). None for a run outside a store (its
    folder is not the one :func:`shared_run_dir` names for its config) and under several
    processes (every rank must take part in the same evaluation)."""
    from .checkpoint import RUN_INDEPENDENT_KEYS

    cfg = run.cfg
    store = run.output_dir.parent
    if run.dist.world_size > 1 or run.output_dir != shared_run_dir(cfg, store):
        return None
    scored = {
        k: v
        for k, v in cfg.flat().items()
        if k.split(".")[0] in ("data", "model", "eval", "monitor") and k not in RUN_INDEPENDENT_KEYS
    }
    scored |= {"train.seed": cfg.train.seed, "train.compile": cfg.train.compile}
    scored["device"] = str(run.device)
    digest = hashlib.sha1(library_fingerprint().encode())
    digest.update(json.dumps(scored, sort_keys=True, default=str).encode())
    evaluated = run.target_encoder if cfg.eval.encoder == "target" else run.context_encoder
    weights = [*evaluated.state_dict().values(), *run.context_encoder.state_dict().values()]
    for tensor in (*weights, run.monitor_images):
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return store / "initial-scores" / f"{digest.hexdigest()}.json"


@functools.cache
def library_fingerprint(package: Path = Path(__file__).parent) -> str:
    """A hash of the source of the library layer (``jepa_core/*.py``, ``jepa_core/data/*.py``
    under ``package``): the code that decides what a run learns. The lessons, the runner and the
    notebooks are left out; an edit anywhere in the library, a comment included, changes it."""
    digest = hashlib.sha1()
    for path in sorted([*package.glob("*.py"), *(package / "data").glob("*.py")]):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stream_seed(*parts: int) -> int:
    """A 63-bit seed from (seed, epoch, step, ...): independent streams, same on every run."""
    value = 0x9E3779B97F4A7C15
    for p in parts:
        value = (value * 6364136223846793005 + int(p) + 1442695040888963407) % (1 << 63)
    return value


def run_datasets(cfg: Config) -> tuple[Any, Any, Any]:
    """(training set, test set, k-NN memory bank) exactly as a run of ``cfg`` uses them: the
    training set cut to ``data.train_samples`` (a subset fixed by ``train.seed``), the bank a
    fixed subset of it of at most ``eval.train_samples`` plain (un-augmented) images."""
    train_set, test_set = make_datasets(
        cfg.data.name,
        root=cfg.data.root,
        download=cfg.data.download,
        image_size=cfg.data.image_size,
    )
    if cfg.data.train_samples is not None and cfg.data.train_samples < len(train_set):
        keep = torch.randperm(
            len(train_set), generator=torch.Generator().manual_seed(cfg.train.seed)
        )
        train_set = Subset(train_set, keep[: cfg.data.train_samples].tolist())
    return train_set, test_set, fixed_subset(train_set, cfg.eval.train_samples)


def fixed_subset(dataset: Any, cap: int | None) -> Any:
    """At most ``cap`` items of ``dataset``, the same ones every time (a permutation seeded by 0):
    the k-NN memory bank of a run, and of notebook 05's evaluation."""
    if cap is None or cap >= len(dataset):
        return dataset
    pick = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    subset = Subset(dataset, pick[:cap].tolist())
    if hasattr(dataset, "classes"):
        subset.classes = dataset.classes  # plots and per-class tables need the class names
    return subset


def build_run(cfg: Config, dist_ctx: distributed.DistContext | None = None) -> Run:
    dist_ctx = dist_ctx or distributed.DistContext()
    device = resolve_device(
        cfg.train.device, local_rank=dist_ctx.local_rank if dist_ctx.enabled else None
    )
    if dist_ctx.enabled:
        if cfg.train.batch_size % (dist_ctx.world_size * cfg.train.accumulate):
            raise ValueError(
                f"train.batch_size={cfg.train.batch_size} is the global batch: it must divide by "
                f"the {dist_ctx.world_size} processes x train.accumulate={cfg.train.accumulate}"
            )
        if not cfg.ema.stop_grad or cfg.ema.target_in_optimizer:
            raise ValueError(
                "ema.stop_grad=False and ema.target_in_optimizer=True are the collapse lab's "
                "single-process switches; run them without torchrun"
            )
    torch.manual_seed(cfg.train.seed)
    train_set, test_set, eval_bank = run_datasets(cfg)
    in_chans, height, width = train_set[0][0].shape
    if height != width:
        raise ValueError(
            f"images must be square for the ViT presets; dataset {cfg.data.name!r} gives "
            f"{height}x{width}: set data.image_size"
        )
    if cfg.model.size not in MODEL_PRESETS:
        raise ValueError(
            f"model.size must be one of {', '.join(MODEL_PRESETS)}; got {cfg.model.size!r}"
        )
    depth = MODEL_PRESETS[cfg.model.size]["depth"]
    levels = len(cfg.loss.level_weights) if cfg.loss.method == "hjepa" else 1
    if levels > depth:
        raise ValueError(
            f"loss.level_weights has {levels} levels but model.size={cfg.model.size!r} has only "
            f"{depth} blocks"
        )
    context_encoder, target_encoder, predictor = build_models(
        cfg.model.size,
        img_size=height,
        patch_size=cfg.model.patch_size,
        in_chans=in_chans,
        out_levels=levels,
        drop_path_rate=cfg.model.drop_path_rate,
    )
    objective = Objective(
        cfg.loss,
        embed_dim=context_encoder.embed_dim,
        patch_size=cfg.model.patch_size,
        in_chans=in_chans,
        dist=dist_ctx,
    )
    lejepa = cfg.loss.method == "lejepa"
    if lejepa:  # no teacher: the "target encoder" of a LeJEPA run is its one encoder
        target_encoder = context_encoder
    # Collapse-lab switches: the target joins autograd / the optimizer only when asked.
    trained_target = cfg.ema.target_in_optimizer or not cfg.ema.stop_grad
    if not lejepa:
        target_encoder.requires_grad_(trained_target)
    for module in (context_encoder, target_encoder, predictor, objective):
        module.to(device)
    train_set = training_views(cfg, train_set)
    trained = [context_encoder, objective] if lejepa else [context_encoder, predictor, objective]
    if cfg.ema.target_in_optimizer and not lejepa:
        trained.append(target_encoder)
    optimizer = make_optimizer(trained, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)

    micro_batch = cfg.train.batch_size // (cfg.train.accumulate * dist_ctx.world_size)
    steps_per_epoch = len(train_set) // cfg.train.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"train.batch_size={cfg.train.batch_size} is larger than the training set "
            f"({len(train_set)} images): lower it"
        )
    n_monitor = min(cfg.monitor.samples, len(test_set))
    monitor_images = torch.stack([test_set[i][0] for i in range(n_monitor)]).to(device)
    if cfg.train.compile:  # in place: the modules (and their state_dict keys) stay the same
        context_encoder.compile()
        predictor.compile()
    run = Run(
        cfg=cfg,
        device=device,
        train_set=train_set,
        test_set=test_set,
        eval_bank=eval_bank,
        context_encoder=context_encoder,
        target_encoder=target_encoder,
        predictor=predictor,
        objective=objective,
        optimizer=optimizer,
        steps_per_epoch=steps_per_epoch,
        micro_batch=micro_batch,
        output_dir=default_output_dir(cfg),
        monitor_images=monitor_images,
        dist=dist_ctx,
    )
    if cfg.loss.method != "lejepa":  # LeJEPA has no teacher
        total = cfg.train.epochs * steps_per_epoch
        start = ema_start_for_run(total) if cfg.ema.start is None else cfg.ema.start
        end = cfg.ema.end
        if cfg.ema.kind == "constant":
            end = start
        elif end is None:  # the run-length rule's end for the linear ramp, BYOL's 1 for cosine
            end = ema_end_for_run(start, total) if cfg.ema.kind == "linear" else 1.0
        run.momentum = momentum_schedule(start, end, total_steps=total, kind=cfg.ema.kind)
    check_teacher(run)
    return run


def training_views(cfg: Config, train_set: Any) -> Any:
    """The training images as the method sees them: I-JEPA's one random resized crop (ijepa,
    hjepa), two augmented views (cjepa, ijepa_ntxent) or LeJEPA's global and local views."""
    method = cfg.loss.method
    if method in ("ijepa", "hjepa"):
        return with_crop(train_set, crop_scale=cfg.data.crop_scale)
    if method == "lejepa":
        return with_multi_views(
            train_set,
            local_views=cfg.loss.local_views,
            global_scale=cfg.data.crop_scale,
            local_scale=cfg.loss.local_crop_scale,
            local_size=local_view_size(
                dataset_info(train_set).image_size, cfg.model.patch_size, cfg.loss.local_resolution
            ),
        )
    return with_two_views(train_set, crop_scale=cfg.data.crop_scale)


def check_teacher(run: Run) -> None:
    """Fail loudly if the target encoder is wired wrong for the chosen switches.

    Healthy I-JEPA: no target parameter requires grad, none is in the optimizer, and the target
    is only ever changed by ``ema_update``. LeJEPA: there is no teacher; the target encoder is
    the trained encoder itself.
    """
    if run.cfg.loss.method == "lejepa":
        if run.target_encoder is not run.context_encoder or run.momentum is not None:
            raise RuntimeError("a LeJEPA run has no teacher: target_encoder is context_encoder")
        return
    ema = run.cfg.ema
    target_ids = {id(p) for p in run.target_encoder.parameters()}
    in_opt = {id(p) for g in run.optimizer.param_groups for p in g["params"]} & target_ids
    needs_grad = [p.requires_grad for p in run.target_encoder.parameters()]
    shared = target_ids & {id(p) for p in run.context_encoder.parameters()}
    if shared:
        raise RuntimeError(
            "the target encoder shares parameters with the context encoder: it must be a copy"
        )
    shapes = [
        [(n, p.shape) for n, p in m.named_parameters()]
        for m in (run.target_encoder, run.context_encoder)
    ]
    if shapes[0] != shapes[1]:
        raise RuntimeError(
            "the target encoder must be a copy of the context encoder (the same parameter "
            "names and shapes): ema_update pairs them in order"
        )
    if ema.target_in_optimizer:
        if len(in_opt) != len(target_ids):
            raise RuntimeError(
                "ema.target_in_optimizer=True but the target encoder is not in the optimizer"
            )
        return
    if in_opt:
        raise RuntimeError(
            f"{len(in_opt)} target-encoder parameters are in the optimizer: the target "
            "must be updated only by ema_update (set ema.target_in_optimizer only on purpose)"
        )
    if ema.stop_grad and any(needs_grad):
        raise RuntimeError("target-encoder parameters require grad although ema.stop_grad=True")


def _stream(run: Run, kind: int) -> int:
    """Random stream ``kind`` of this rank.

    Rank 0 of any world size draws what one process does.
    """
    return kind + 16 * run.dist.rank


def seed_epoch(run: Run, epoch: int) -> None:
    """Every random draw of an epoch (order, augmentations) depends on (seed, epoch, rank) alone."""
    torch.manual_seed(stream_seed(run.cfg.train.seed, epoch, _stream(run, 1)) % (1 << 62))


def epoch_loader(run: Run, epoch: int) -> DataLoader:
    cfg = run.cfg
    pin = run.device.type == "cuda"
    if not run.dist.enabled:
        return make_loader(
            run.train_set,
            run.micro_batch,
            shuffle=True,
            seed=stream_seed(cfg.train.seed, epoch, 2) % (1 << 62),
            num_workers=cfg.data.num_workers,
            drop_last=True,
            pin_memory=pin,
        )
    # Each rank reads its own 1/N of a permutation that depends on (seed, epoch) alone.
    sampler = DistributedSampler(
        run.train_set,
        num_replicas=run.dist.world_size,
        rank=run.dist.rank,
        shuffle=True,
        seed=stream_seed(cfg.train.seed, 2) % (1 << 62),
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        run.train_set,
        batch_size=run.micro_batch,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        drop_last=True,
        pin_memory=pin,
    )


def sample_masks(run: Run, batch_size: int, micro_step: int):
    """This rank's masks for one micro-step, from a generator seeded by (seed, step, rank)."""
    m = run.cfg.masks
    g = torch.Generator().manual_seed(
        stream_seed(run.cfg.train.seed, micro_step, _stream(run, 3)) % (1 << 62)
    )
    masks = sample_multiblock_masks(
        run.context_encoder.grid,
        batch_size,
        n_targets=m.n_targets,
        target_scale=m.target_scale,
        target_aspect=m.target_aspect,
        context_scale=m.context_scale,
        min_keep=m.min_keep,
        allow_overlap=m.allow_overlap,
        generator=g,
    )
    return masks.to(run.device)
