"""Several processes, one run: the process group that ``torchrun`` launches.

    torchrun --nproc_per_node=2 -m jepa_core.train --config ijepa --set train.device=cpu

``torchrun`` (torch.distributed.run) starts one process per device and tells each its place
through the environment: ``WORLD_SIZE``, ``RANK`` (global), ``LOCAL_RANK`` (on this node),
``MASTER_ADDR`` / ``MASTER_PORT``. :func:`setup` reads them and joins the process group:
NCCL on CUDA, gloo on CPU (PyTorch's own engines; nothing hand-written). Without them the run
is one process and every helper here is a no-op.

How the training loop uses it (see ``train.py``): after the backward of a step,
:func:`average_gradients` averages the gradients of everything the optimizer trains over the
ranks, in one all-reduce (what DistributedDataParallel does in buckets, overlapped with the
backward; here it is one visible line of the step); every rank starts from the same seed, so
the weights, and therefore the EMA teacher, stay identical without broadcasting them; logged
loss terms are averaged over ranks; k-NN runs on rank 0 and its result is broadcast;
checkpoints are written by rank 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created_group: bool = False  # this process called init_process_group (and must destroy it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"environment variable {name}={value!r} must be an integer (torchrun sets it)"
        ) from None


def setup(device: str) -> DistContext:
    """Join the process group that torchrun describes in the environment (or none).

    ``device`` is ``train.device``: ``cpu`` uses gloo; ``cuda`` / ``auto`` with CUDA uses NCCL
    with one GPU per local rank.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistContext()
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, created_group=False)
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPUs: "
                "lower --nproc_per_node"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size
    )
    return DistContext(rank, world_size, local_rank, created_group=True)


def teardown(ctx: DistContext) -> None:
    if ctx.created_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def mean_over_ranks(
    ctx: DistContext, values: dict[str, float], device: torch.device
) -> dict[str, float]:
    """The mean of each value over all ranks (identical on every rank afterwards)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= ctx.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def broadcast_float(ctx: DistContext, value: float | None, device: torch.device) -> float:
    """Rank 0's value on every rank (the others may pass None)."""
    if not ctx.enabled:
        return float(value)
    t = torch.tensor([float(value) if ctx.is_main else 0.0], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def gather_batch(ctx: DistContext, z: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Every rank's ``z`` concatenated along ``dim`` in rank order, *with gradient*
    (``torch.distributed.nn.functional.all_gather``): a batch statistic (VICReg, NT-Xent,
    SIGReg) computed on the result is the one process would compute on the global batch.
    Its backward sums the gradient that every rank's copy of the loss sends to this rank's
    slice (world_size times the gradient of the one loss); :func:`average_gradients` divides
    by world_size, so the step's gradient is the single-process one."""
    if not ctx.enabled:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=dim)


def average_gradients(ctx: DistContext, parameters: list[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks (one all-reduce of all of them)."""
    if not ctx.enabled:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
