"""The teacher: an exponential moving average of the student (the target encoder of I-JEPA).

    theta_target <- m * theta_target + (1 - m) * theta_online          (every parameter)

with the momentum m rising over training, linearly from 0.996 to 1.0 in I-JEPA (Assran et al.,
CVPR 2023; facebookresearch/ijepa ``src/train.py``, stepped after ``optimizer.step()``), along a
cosine in BYOL (Grill et al., NeurIPS 2020):

    linear:   m(t) = start + (end - start) * min(t / T, 1)
    cosine:   m(t) = end - (end - start) * (1 + cos(pi * min(t / T, 1))) / 2
    constant: m(t) = start

m = 0 makes the teacher a copy of the student; m = 1 freezes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import torch
from torch import nn

SCHEDULE_KINDS = ("linear", "cosine", "constant")


def _check_unit_interval(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"{name} must be a real number in [0, 1], got {value!r} ({type(value).__name__})"
        )
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def momentum_schedule(
    start: float = 0.996,
    end: float | None = None,
    total_steps: int | None = None,
    kind: str = "linear",
) -> Callable[[int], float]:
    """The EMA momentum as a function of the optimisation step: ``step -> m``.

    ``end=None`` means 1.0 for ``linear`` and ``cosine`` (I-JEPA's and BYOL's end point) and
    "the same as ``start``" for ``constant``; a ``constant`` schedule given an ``end`` different
    from ``start`` raises, so no argument is silently dropped. ``total_steps`` (an int >= 1) is
    required for ``linear`` and ``cosine``; ``constant`` accepts it (validated) so a config can
    always pass it, and its value cannot change a constant. Steps past ``total_steps`` give
    ``end``; a negative step raises ValueError.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"kind must be one of {SCHEDULE_KINDS}, got {kind!r}")
    start = _check_unit_interval("start", start)
    if end is None:
        end = start if kind == "constant" else 1.0
    end = _check_unit_interval("end", end)
    if kind == "constant" and end != start:
        raise ValueError(
            f"end must equal start (or be None) for kind='constant', got start={start!r}, end={end!r}"
        )
    if total_steps is None:
        if kind != "constant":
            raise ValueError(f"total_steps (an int >= 1) is required for kind={kind!r}, got None")
    elif isinstance(total_steps, bool) or not isinstance(total_steps, int):
        raise TypeError(
            f"total_steps must be an int >= 1, got {total_steps!r} ({type(total_steps).__name__})"
        )
    elif total_steps < 1:
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}")

    def momentum(step: int) -> float:
        if isinstance(step, bool) or not isinstance(step, Real):
            raise TypeError(
                f"step must be a non-negative number, got {step!r} ({type(step).__name__})"
            )
        if not step >= 0:  # also rejects nan
            raise ValueError(f"step must be >= 0, got {step!r}")
        if kind == "constant":
            return start
        progress = min(float(step) / total_steps, 1.0)
        if kind == "linear":
            return start + (end - start) * progress
        return end - (end - start) * (1.0 + math.cos(math.pi * progress)) / 2.0

    return momentum


def _matched_pairs(kind: str, target_items: list, online_items: list) -> None:
    """Raise ValueError at the first name or shape that differs between target and online."""
    for (t_name, t_tensor), (o_name, o_tensor) in zip(target_items, online_items, strict=False):
        if t_name != o_name:
            raise ValueError(
                f"target and online {kind} differ: target has {t_name!r} where online has {o_name!r}"
            )
        if t_tensor.shape != o_tensor.shape:
            raise ValueError(
                f"target and online {kind} {t_name!r} differ in shape: "
                f"{tuple(t_tensor.shape)} vs {tuple(o_tensor.shape)}"
            )
    if len(target_items) != len(online_items):
        longer, side = (
            (target_items, "target")
            if len(target_items) > len(online_items)
            else (online_items, "online")
        )
        first_extra = longer[min(len(target_items), len(online_items))][0]
        raise ValueError(
            f"target and online {kind} differ in number ({len(target_items)} vs {len(online_items)}): "
            f"only {side} has {first_extra!r}"
        )


def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place, without autograd: ``theta_t <- m * theta_t + (1 - m) * theta_o`` for every
    parameter (I-JEPA, Assran et al. 2023; BYOL, Grill et al. 2020), and buffers copied from
    the online module (running statistics follow the student, as parameters would at m = 0).

    The modules must have the same parameter and buffer names and shapes (ValueError names the
    first mismatch). ``requires_grad`` of the target is left as it is. Passing the same module
    as target and online is a no-op (the formula maps theta to itself).
    """
    if not isinstance(target, nn.Module) or not isinstance(online, nn.Module):
        raise TypeError(
            f"target and online must be torch.nn.Module, got {type(target).__name__} and {type(online).__name__}"
        )
    m = _check_unit_interval("momentum", momentum)
    if target is online:
        # Updating in place while reading the same tensors would compute m*t + (1-m)*m*t.
        return
    target_params = list(target.named_parameters())
    online_params = list(online.named_parameters())
    _matched_pairs("parameters", target_params, online_params)
    target_buffers = list(target.named_buffers())
    online_buffers = list(online.named_buffers())
    _matched_pairs("buffers", target_buffers, online_buffers)

    with torch.no_grad():
        t_tensors = [p for _, p in target_params]
        o_tensors = [p.detach() for _, p in online_params]
        if t_tensors:
            # Same arithmetic as the official code: param_k.mul_(m).add_((1 - m) * param_q).
            torch._foreach_mul_(t_tensors, m)
            torch._foreach_add_(t_tensors, o_tensors, alpha=1.0 - m)
        for (_, t_buf), (_, o_buf) in zip(target_buffers, online_buffers, strict=True):
            t_buf.copy_(o_buf)
