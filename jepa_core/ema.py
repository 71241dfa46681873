"""The teacher: an exponential moving average of the student (the target encoder of I-JEPA).

    theta_target <- m * theta_target + (1 - m) * theta_online          (every parameter)

with the momentum m rising over training, linearly from 0.996 to 1.0 in I-JEPA (Assran et al.,
CVPR 2023; facebookresearch/ijepa ``src/train.py``, stepped after ``optimizer.step()``), along a
cosine in BYOL (Grill et al., NeurIPS 2020):

    linear:   m(t) = start + (end - start) * min(t / T, 1)
    cosine:   m(t) = end - (end - start) * (1 + cos(pi * min(t / T, 1))) / 2
    constant: m(t) = start

m = 0 makes the teacher a copy of the student; m = 1 freezes it.

The run-length rule (:func:`ema_start_for_run`, ``ema.start = None`` in the config). A
momentum m averages over about 1 / (1 - m) steps. With m rising linearly from m0 to 1 over T
steps, the share of its initial weights the teacher still holds at the end is

    prod_t m(t) ~= exp(-sum_t (1 - m(t))) = exp(-(1 - m0) T / 2)

The official 0.996 over I-JEPA's 187,500 steps (300 ImageNet epochs at batch 2,048) leaves
exp(-375), nothing; over a 93-step CPU run it leaves exp(-0.19) = 83%: the "teacher" is
mostly its random initialisation and the student learns to predict noise. The rule asks the
teacher to keep at most ``keep`` = 1% of its initialisation: 1 - m0 >= 2 ln(1 / keep) / T,
m0 = min(0.996, 1 - 2 ln(100) / T), the paper's value for every run of >= 2,303 steps.

The other end (:func:`ema_end_for_run`, ``ema.end = None``). A ramp to 1 freezes the teacher
towards the end while the student goes on learning: the teacher trails its student by
:func:`teacher_lag` steps. The paper's ramp leaves it 4.6% of its 187,500-step run behind; the
same ramp over a short run, from the rule's start, about 40% (37 of 93 steps). The rule ends
the ramp where the teacher trails by at most the paper's share of the run, or, where even a
constant momentum trails by more, holds the start constant (about 10% of a short run): the
paper's schedule for the paper's run, a constant momentum for runs of 16 to ~5,500 steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import numpy as np
import torch
from torch import nn

from .checks import int_at_least

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


OFFICIAL_EMA_START = 0.996  # I-JEPA's configs (ema: [0.996, 1.0])
# I-JEPA's run: 300 epochs of ImageNet-1k (1,281,167 images) at batch 2,048 with the last
# partial batch dropped (official configs, in1k_vith14_ep300.yaml): 625 steps an epoch.
OFFICIAL_RUN_STEPS = 300 * (1_281_167 // 2_048)


def ema_start_for_run(total_steps: int, keep: float = 0.01) -> float:
    """The starting momentum of a linear ramp to 1 that leaves at most ``keep`` of the teacher's
    initial weights after ``total_steps`` (module docstring):
    ``min(0.996, 1 - 2 ln(1 / keep) / total_steps)``, never below 0."""
    total_steps = int_at_least("total_steps", total_steps, 1)
    if isinstance(keep, bool) or not isinstance(keep, Real) or not 0.0 < keep < 1.0:
        raise ValueError(f"keep must be a number in (0, 1), got {keep!r}")
    return max(0.0, min(OFFICIAL_EMA_START, 1.0 - 2.0 * math.log(1.0 / keep) / total_steps))


def initial_weight_share(start: float, total_steps: int, end: float = 1.0) -> float:
    """The share of the teacher's initial weights left after ``total_steps`` EMA updates along
    the linear schedule ``start -> end``: the product of the momenta (exact, not the
    exponential approximation of the module docstring)."""
    schedule = momentum_schedule(start, end, total_steps=total_steps, kind="linear")
    return math.prod(schedule(step) for step in range(total_steps))


def teacher_lag(start: float, total_steps: int, end: float = 1.0) -> float:
    """How many optimizer steps the teacher trails the student at the end of the linear
    schedule ``start -> end`` over ``total_steps`` updates: the mean age of the student
    snapshots it averages, weighted by their share of its weights (the initial weights left
    out). Unrolling the update, the student after step t carries the weight
    ``w_t = (1 - m_t) * prod_{r > t} m_r``, at an age of ``total_steps - 1 - t`` steps:

        lag = sum_t w_t (total_steps - 1 - t) / sum_t w_t

    A constant momentum m over a long run gives ``m / (1 - m)`` (249 steps at 0.996). A ramp
    to 1 freezes the teacher towards the end: 0.996 -> 1 over I-JEPA's 187,500 steps leaves
    it about 8,600 steps (4.6% of the run) behind; over a 2,343-step CPU run, about 940 steps
    (40% of the run), and the run-length rule's start leaves the same share over short runs
    (37 of 93 steps)."""
    momentum_schedule(start, end, total_steps=total_steps, kind="linear")  # validates them
    steps = np.arange(total_steps)
    m = start + (end - start) * steps / total_steps  # the linear schedule at steps 0..T-1
    later = np.append(np.cumprod(m[::-1])[::-1][1:], 1.0)  # prod_{r > t} m_r
    weight = (1.0 - m) * later
    total_weight = weight.sum()
    if total_weight == 0.0:
        raise ValueError(
            f"a teacher frozen at momentum 1 (start={start!r}, end={end!r}) never takes the "
            "student's weights, so it has no lag"
        )
    return float((weight * (total_steps - 1 - steps)).sum() / total_weight)


def ema_end_for_run(start: float, total_steps: int) -> float:
    """The end of the linear ramp from ``start`` over ``total_steps`` that leaves the teacher
    no further behind its student, as a share of the run, than I-JEPA's ramp leaves it behind
    over its own run (0.996 -> 1 over :data:`OFFICIAL_RUN_STEPS`: 4.6%), and never below
    ``start`` (where even a constant momentum trails by more, the momentum is held):

        end = start                                  if lag(start, T, start) >= s_paper T
        end = max{e in [start, 1] : lag(start, T, e) <= s_paper T}                  otherwise

    with ``lag`` = :func:`teacher_lag`, found by bisection (the lag grows with e). 1.0 for the
    paper's own run and longer; ``start`` itself (a constant momentum) for runs of 16 to about
    5,500 steps at the run-length rule's start, whose constant lag is about a tenth of a short
    run (9 of 93 steps) and 249 steps at 0.996 (below 16 steps the rule's start is so low that
    a partial ramp still trails by less than the paper's share)."""
    total_steps = int_at_least("total_steps", total_steps, 1)
    start = _check_unit_interval("start", start)
    if start == 1.0:  # a frozen teacher: nothing to end
        return 1.0
    paper_share = teacher_lag(OFFICIAL_EMA_START, OFFICIAL_RUN_STEPS) / OFFICIAL_RUN_STEPS
    allowed = paper_share * total_steps
    if teacher_lag(start, total_steps, end=start) >= allowed:  # any ramp would trail more
        return start
    if teacher_lag(start, total_steps, end=1.0) <= allowed:
        return 1.0
    low, high = start, 1.0  # lag(low) <= allowed < lag(high)
    for _ in range(50):
        middle = (low + high) / 2.0
        if teacher_lag(start, total_steps, end=middle) <= allowed:
            low = middle
        else:
            high = middle
    return low


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
    else:
        total_steps = int_at_least("total_steps", total_steps, 1)

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
