"""Which device a run uses: one rule for the trainer, the notebooks and the benchmarks."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(
    name: str, key: str = "train.device", local_rank: int | None = None
) -> torch.device:
    """``auto`` -> cuda when available, else cpu; a device that is not here is an error naming
    ``key``. Under torchrun (``local_rank`` given) each process takes ``cuda:<local_rank>``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "mps", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ValueError(f"{key} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{key}={name!r} but CUDA is not available here; use 'cpu' or 'auto'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{key}='mps' but MPS is not available here; use 'cpu' or 'auto'")
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (as the official I-JEPA code), nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
