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
            f"end must equal start (or be None) for kind='constant', "
            f"got start={start!r}, end={end!r}"
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


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place, without autograd: ``theta_t <- m * theta_t + (1 - m) * theta_o`` for every
    parameter (I-JEPA, Assran et al. 2023; BYOL, Grill et al. 2020), and buffers copied from
    the online module (running statistics follow the student, as parameters would at m = 0).

    ``target`` is a copy of ``online`` (same parameters, same order; ``jepa_core.build`` checks
    it once when it builds a run). Passing the same module as target and online is a no-op.
    Same arithmetic as the official code: ``param_k.mul_(m).add_((1 - m) * param_q)``.
    """
    assert 0.0 <= momentum <= 1.0, f"momentum must be in [0, 1], got {momentum}"
    if target is online:  # in place, m*t + (1-m)*t would read half-updated tensors
        return
    teacher = list(target.parameters())
    torch._foreach_mul_(teacher, momentum)
    torch._foreach_add_(teacher, [p.detach() for p in online.parameters()], alpha=1.0 - momentum)
    for t_buf, o_buf in zip(target.buffers(), online.buffers(), strict=True):
        t_buf.copy_(o_buf)
