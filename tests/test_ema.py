from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from jepa_core.ema import ema_update, momentum_schedule


def _pair_of_modules(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    online = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    target = copy.deepcopy(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    online.train()
    online(torch.randn(8, 4))  # moves the online BatchNorm running statistics
    return target, online


# --- momentum_schedule ---------------------------------------------------------------------


def test_linear_schedule_goes_from_start_through_midpoint_to_end():
    m = momentum_schedule(0.996, 1.0, total_steps=100, kind="linear")
    assert m(0) == pytest.approx(0.996)
    assert m(50) == pytest.approx(0.998)
    assert m(100) == pytest.approx(1.0)


def test_linear_schedule_has_equal_increments():
    m = momentum_schedule(0.9, 1.0, total_steps=10, kind="linear")
    increments = [m(t + 1) - m(t) for t in range(10)]
    assert all(inc == pytest.approx(0.01) for inc in increments)


def test_cosine_schedule_starts_slow_and_meets_midpoint_and_end():
    m = momentum_schedule(0.9, 1.0, total_steps=100, kind="cosine")
    assert m(0) == pytest.approx(0.9)
    assert m(50) == pytest.approx(0.95)
    assert m(100) == pytest.approx(1.0)
    # cos shape: the first tenth moves less than a linear schedule would
    assert m(10) - m(0) < 0.1 * (1.0 - 0.9)
    assert m(10) == pytest.approx(1.0 - 0.1 * (1 + math.cos(math.pi * 0.1)) / 2)


def test_constant_schedule_is_start_everywhere():
    m = momentum_schedule(0.99, kind="constant")
    assert [m(t) for t in (0, 1, 1000, 10**9)] == [0.99] * 4
    assert momentum_schedule(0.99, 0.99, total_steps=5, kind="constant")(3) == 0.99


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_steps_past_the_end_give_end(kind):
    m = momentum_schedule(0.9, 0.99, total_steps=10, kind=kind)
    assert m(10) == pytest.approx(0.99)
    assert m(11) == pytest.approx(0.99)
    assert m(10_000) == pytest.approx(0.99)


def test_end_defaults_to_one_for_rising_schedules():
    assert momentum_schedule(0.996, total_steps=4)(4) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"start": -0.1, "total_steps": 10}, "start"),
        ({"start": 1.5, "total_steps": 10}, "start"),
        ({"start": float("nan"), "total_steps": 10}, "start"),
        ({"end": 1.01, "total_steps": 10}, "end"),
        ({"total_steps": 0}, "total_steps"),
        ({"total_steps": None, "kind": "linear"}, "total_steps"),
        ({"total_steps": None, "kind": "cosine"}, "total_steps"),
        ({"total_steps": 10, "kind": "exponential"}, "kind"),
        ({"start": 0.99, "end": 1.0, "kind": "constant"}, "end"),
    ],
)
def test_bad_schedule_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        momentum_schedule(**kwargs)


def test_unknown_kind_message_lists_the_kinds():
    with pytest.raises(ValueError, match="linear.*cosine.*constant"):
        momentum_schedule(total_steps=10, kind="exp")


def test_non_integer_total_steps_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="total_steps"):
        momentum_schedule(total_steps=10.5)


def test_negative_step_raises_value_error():
    m = momentum_schedule(total_steps=10)
    with pytest.raises(ValueError, match="step"):
        m(-1)


# --- ema_update ----------------------------------------------------------------------------


def test_update_matches_the_formula_parameter_by_parameter():
    target, online = _pair_of_modules()
    before = {name: p.detach().clone() for name, p in target.named_parameters()}
    online_params = dict(online.named_parameters())
    ema_update(target, online, 0.9)
    for name, p in target.named_parameters():
        expected = 0.9 * before[name] + 0.1 * online_params[name].detach()
        torch.testing.assert_close(p.detach(), expected)


def test_update_copies_buffers_from_online():
    target, online = _pair_of_modules()
    ema_update(target, online, 0.9)
    for (name, t_buf), (_, o_buf) in zip(
        target.named_buffers(), online.named_buffers(), strict=True
    ):
        assert torch.equal(t_buf, o_buf), name


def test_momentum_zero_makes_the_target_a_copy_of_the_online_module():
    target, online = _pair_of_modules()
    ema_update(target, online, 0.0)
    for (_, t), (_, o) in zip(target.named_parameters(), online.named_parameters(), strict=True):
        assert torch.equal(t, o)


def test_momentum_one_leaves_the_target_unchanged():
    target, online = _pair_of_modules()
    before = [p.detach().clone() for p in target.parameters()]
    ema_update(target, online, 1.0)
    for p, b in zip(target.parameters(), before, strict=True):
        assert torch.equal(p, b)


def test_update_creates_no_autograd_graph_and_keeps_requires_grad():
    target, online = _pair_of_modules()
    target.requires_grad_(False)
    target[0].bias.requires_grad_(True)
    flags = [p.requires_grad for p in target.parameters()]
    loss = sum(p.sum() for p in online.parameters())  # online params carry grad history
    ema_update(target, online, 0.5)
    assert [p.requires_grad for p in target.parameters()] == flags
    assert all(p.grad_fn is None for p in target.parameters())
    assert all(p.grad is None for p in target.parameters())
    loss.backward()  # the online graph is intact
    assert all(p.grad is not None for p in online.parameters())


def test_same_module_as_target_and_online_is_left_unchanged():
    _, online = _pair_of_modules()
    before = [p.detach().clone() for p in online.parameters()]
    ema_update(online, online, 0.7)
    for p, b in zip(online.parameters(), before, strict=True):
        assert torch.equal(p, b)


@pytest.mark.parametrize("momentum", [-0.01, 1.01, float("nan")])
def test_momentum_outside_unit_interval_is_refused(momentum):
    target, online = _pair_of_modules()
    with pytest.raises(AssertionError, match="momentum"):
        ema_update(target, online, momentum)


def test_a_target_that_is_not_a_copy_of_the_online_module_fails():
    # The pairing is checked once, where a run is built (build.check_teacher); the update
    # itself still refuses to mix tensors of different shapes.
    with pytest.raises(RuntimeError):
        ema_update(nn.Sequential(nn.Linear(4, 3)), nn.Sequential(nn.Linear(4, 5)), 0.9)


# --- the run-length rule -------------------------------------------------------------------
from jepa_core.ema import (  # noqa: E402
    OFFICIAL_EMA_START,
    OFFICIAL_RUN_STEPS,
    ema_end_for_run,
    ema_start_for_run,
    initial_weight_share,
    teacher_lag,
)


@pytest.mark.parametrize("total_steps", [2303, 5000, 190_000])
def test_rule_gives_the_papers_momentum_to_long_runs(total_steps):
    assert ema_start_for_run(total_steps) == OFFICIAL_EMA_START == 0.996


@pytest.mark.parametrize("total_steps", [10, 93, 310, 1000, 2302])
def test_rule_leaves_at_most_one_percent_of_the_initial_teacher(total_steps):
    start = ema_start_for_run(total_steps)
    assert start < OFFICIAL_EMA_START
    assert start == pytest.approx(1 - 2 * math.log(100) / total_steps)
    share = initial_weight_share(start, total_steps)
    assert share <= 0.01  # prod m <= exp(-sum(1 - m)): the approximation errs on the safe side
    if total_steps >= 93:  # where 1 - m is small the approximation is close: not much faster
        assert share > 0.005


def test_papers_momentum_over_a_short_cpu_run_keeps_most_of_the_random_teacher():
    """0.996 -> 1 over 93 steps (3 epochs of 4,000 digits at batch 128): ~exp(-0.186)."""
    share = initial_weight_share(0.996, 93)
    assert share == pytest.approx(math.exp(-0.004 * 93 / 2), rel=0.01)
    assert 0.8 < share < 0.86


# --- how far the teacher trails the student -----------------------------------------------
@pytest.mark.parametrize("m", [0.9, 0.99, 0.996])
def test_a_constant_momentum_trails_by_m_over_one_minus_m(m):
    """sum_k k (1 - m) m^k / sum_k (1 - m) m^k = m / (1 - m) once the run is long."""
    assert teacher_lag(m, 20_000, end=m) == pytest.approx(m / (1 - m), rel=1e-6)


def test_the_lag_is_a_weighted_mean_age_of_the_student_snapshots():
    # Two updates at m = 0.5: the teacher is 0.25 init + 0.25 student_0 + 0.5 student_1,
    # student_1 being the latest (age 0), student_0 one step older: lag (0.25 * 1) / 0.75.
    assert teacher_lag(0.5, 2, end=0.5) == pytest.approx(1 / 3)
    assert teacher_lag(0.0, 7, end=0.0) == 0.0  # m = 0: the teacher is the latest student


def test_a_ramp_to_one_leaves_short_runs_far_behind():
    """0.996 -> 1 trails by ~4.5% of I-JEPA's 190,000 steps, by ~40% of a 2,343-step run."""
    assert teacher_lag(0.996, 190_000) / 190_000 == pytest.approx(0.0455, abs=0.001)
    assert teacher_lag(0.996, 2343) / 2343 == pytest.approx(0.40, abs=0.01)
    assert teacher_lag(0.996, 2343, end=0.996) < teacher_lag(0.996, 2343) / 3


@pytest.mark.parametrize(
    "start,end,total_steps", [(0.9, 1.0, 50), (0.5, 0.9, 7), (0.99, 0.99, 300)]
)
def test_the_lag_matches_a_step_by_step_unrolling_of_the_schedule(start, end, total_steps):
    """An independent computation: carry the teacher as a mixture {age: weight} through every
    update of momentum_schedule, then take the weighted mean age of the student's share."""
    schedule = momentum_schedule(start, end, total_steps=total_steps, kind="linear")
    mixture: dict[int, float] = {}  # age of a student snapshot -> its share of the teacher
    for step in range(total_steps):
        m = schedule(step)
        mixture = {age + 1: m * w for age, w in mixture.items()}
        mixture[0] = 1.0 - m
    lag = sum(age * w for age, w in mixture.items()) / sum(mixture.values())
    assert teacher_lag(start, total_steps, end=end) == pytest.approx(lag, rel=1e-9)


def test_a_frozen_teacher_has_no_lag():
    with pytest.raises(ValueError, match="frozen"):
        teacher_lag(1.0, 10)


# --- the rule's other end ------------------------------------------------------------------
def test_the_papers_run_is_300_epochs_of_625_steps_and_keeps_its_ramp_to_one():
    assert OFFICIAL_RUN_STEPS == 187_500
    assert ema_end_for_run(OFFICIAL_EMA_START, OFFICIAL_RUN_STEPS) == 1.0
    assert ema_end_for_run(OFFICIAL_EMA_START, 10 * OFFICIAL_RUN_STEPS) == 1.0


@pytest.mark.parametrize("total_steps", [16, 93, 310, 1170, 2343, 5000])
def test_short_runs_hold_the_rules_start_constant(total_steps):
    """Even a constant momentum trails by more than the paper's 4.6% of these runs: any ramp
    would leave the teacher further behind, so the rule holds the start."""
    start = ema_start_for_run(total_steps)
    assert ema_end_for_run(start, total_steps) == start
    assert teacher_lag(start, total_steps, end=start) < teacher_lag(start, total_steps) / 3


@pytest.mark.parametrize("total_steps", [10_000, 50_000])
def test_between_the_two_the_ramp_ends_where_the_lag_is_the_papers_share(total_steps):
    paper_share = teacher_lag(OFFICIAL_EMA_START, OFFICIAL_RUN_STEPS) / OFFICIAL_RUN_STEPS
    assert paper_share == pytest.approx(0.0458, abs=0.0005)
    end = ema_end_for_run(OFFICIAL_EMA_START, total_steps)
    assert OFFICIAL_EMA_START < end < 1.0
    lag_share = teacher_lag(OFFICIAL_EMA_START, total_steps, end=end) / total_steps
    assert lag_share == pytest.approx(paper_share, rel=1e-6)


def test_a_frozen_start_has_nothing_to_end():
    assert ema_end_for_run(1.0, 100) == 1.0


@pytest.mark.parametrize(
    "kwargs,culprit",
    [
        ({"start": 0.9, "total_steps": 0}, "total_steps"),
        ({"start": 1.5, "total_steps": 9}, "start"),
    ],
)
def test_end_rule_refuses_bad_arguments(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        ema_end_for_run(**kwargs)


@pytest.mark.parametrize(
    "kwargs,error,culprit",
    [
        ({"total_steps": 0}, ValueError, "total_steps"),
        ({"total_steps": 9.5}, TypeError, "total_steps"),  # the wrong type: as momentum_schedule
        ({"total_steps": 10, "keep": 1.0}, ValueError, "keep"),
        ({"total_steps": 10, "keep": 0}, ValueError, "keep"),
    ],
)
def test_rule_refuses_bad_arguments(kwargs, error, culprit):
    with pytest.raises(error, match=culprit):
        ema_start_for_run(**kwargs)
