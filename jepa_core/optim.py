"""AdamW with the official I-JEPA schedules (facebookresearch/ijepa, src/utils/schedulers.py).

    lr(t): linear warmup start_lr -> lr over the warmup steps, then cosine lr -> final_lr
    wd(t): cosine *increasing* weight_decay -> final_weight_decay (0.04 -> 0.4 in the paper)

Biases and other 1-D parameters (LayerNorm gains, the mask token's vector) get no weight decay.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def param_groups(modules: Iterable[nn.Module]) -> list[dict]:
    """Two groups: weights that decay, and biases / 1-D parameters that never do."""
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0, "wd_exclude": True}]


def make_optimizer(
    modules: Iterable[nn.Module], lr: float, weight_decay: float
) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(modules), lr=lr, weight_decay=weight_decay)


def warmup_cosine(
    step: int, *, warmup_steps: int, total_steps: int, start: float, peak: float, final: float
) -> float:
    """Linear warmup ``start -> peak`` over ``warmup_steps``, then cosine ``peak -> final``."""
    if step < warmup_steps:
        return start + (peak - start) * step / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_ramp(step: int, *, total_steps: int, start: float, end: float) -> float:
    """Cosine from ``start`` to ``end`` (increasing when end > start, as the official wd)."""
    progress = min(1.0, step / max(1, total_steps))
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_schedules(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        if not group.get("wd_exclude"):
            group["weight_decay"] = weight_decay
