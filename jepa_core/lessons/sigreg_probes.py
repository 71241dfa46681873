"""SIGReg taken apart on embeddings you can check by hand (notebook 03, section 4).

LeJEPA (Balestriero & LeCun 2025, arXiv 2511.08544; github.com/rbalestr-lab/lejepa) tests
each random 1-D projection ``x`` [N] of an embedding against N(0, 1) through its empirical
characteristic function (:func:`empirical_cf`)

    phi_hat(t) = mean_n exp(i t x_n) = mean_n cos(t x_n) + i mean_n sin(t x_n)

and the Epps-Pulley statistic (:func:`epps_pulley`), on the quadrature of
``jepa_core.losses.sigreg_loss`` (:func:`sigreg_quadrature`):

    EP(x) = N * sum_k w_k |phi_hat(t_k) - exp(-t_k^2/2)|^2

For x_1..x_N i.i.d. N(0, 1), E[N |phi_hat(t) - exp(-t^2/2)|^2] = 1 - exp(-t^2) for every N,
so E[EP] = sum_k w_k (1 - exp(-t_k^2)) (:func:`sigreg_null_expectation`); a sample whose
law is not N(0, 1) keeps |phi_hat - phi| away from 0 and EP grows like N.

Three embeddings [N, D] (:func:`sigreg_examples`):

    gaussian             z ~ N(0, I_D)
    collapsed            z_n = c + s e_n,  c ~ N(0, I_D) one row for all     (s = 0: rank 1)
    dimension_collapsed  z = u W,  u ~ N(0, I_k),  W [k, D] with unit-norm columns
                         rank k; every coordinate has variance exactly 1 (as in the
                         population), yet a random direction a sees variance |W a|^2,
                         which is 1 only on average.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import pandas as pd
import torch
from torch import Tensor

from ..checks import int_at_least
from ..losses import sigreg_directions, sigreg_loss

SIGREG_EXAMPLES = ("gaussian", "collapsed", "dimension_collapsed")


def _check_t_max(t_max: object) -> float:
    if isinstance(t_max, bool) or not isinstance(t_max, Real):
        raise TypeError(f"t_max must be a real number > 0, got {t_max!r}")
    if not 0 < float(t_max) < float("inf"):
        raise ValueError(f"t_max must be a finite real number > 0, got {t_max!r}")
    return float(t_max)


def _check_samples(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point torch.Tensor, got "
            f"{getattr(x, 'dtype', type(x).__name__)}"
        )
    if x.ndim not in (1, 2) or x.shape[0] < 1:
        raise ValueError(
            f"{name} must be [N] or [N, M] (columns are separate samples) with N >= 1, "
            f"got shape {tuple(x.shape)}"
        )
    return x


def sigreg_quadrature(
    t_max: float = 3.0, num_points: int = 17, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """The nodes ``t`` [K] = linspace(0, t_max, K) and weights ``w`` [K] of ``sigreg_loss``:
    trapezoid weights times exp(-t^2/2), doubled (the integrand is even in t, so this is
    the integral over [-t_max, t_max])."""
    t_max = _check_t_max(t_max)
    num_points = int_at_least("num_points", num_points, 2)
    t = torch.linspace(0.0, t_max, num_points, dtype=dtype)
    trapezoid = torch.full_like(t, t_max / (num_points - 1))
    trapezoid[0] = trapezoid[-1] = trapezoid[0] / 2
    return t, 2.0 * trapezoid * torch.exp(-0.5 * t.square())


def empirical_cf(x: Tensor, t: Tensor) -> Tensor:
    """phi_hat(t) = mean_n exp(i t x_n), a complex tensor: [K] for ``x`` [N], [M, K] for ``x``
    [N, M] (each column one sample); ``t`` [K] real. ``.real`` is mean cos(t x), ``.imag``
    mean sin(t x)."""
    x = _check_samples("x", x)
    if not isinstance(t, Tensor) or not t.is_floating_point() or t.ndim != 1:
        raise TypeError(
            f"t must be a 1-D floating-point torch.Tensor, got "
            f"{getattr(t, 'shape', type(t).__name__)}"
        )
    xt = x.unsqueeze(-1) * t.to(x)  # [N, K] or [N, M, K]
    return torch.complex(torch.cos(xt).mean(dim=0), torch.sin(xt).mean(dim=0))


def epps_pulley(x: Tensor, *, t_max: float = 3.0, num_points: int = 17) -> Tensor:
    """EP(x) (module docstring): a scalar for ``x`` [N], one value per column [M] for ``x``
    [N, M]; computed in ``x``'s dtype, as ``sigreg_loss`` does."""
    x = _check_samples("x", x)
    t, weights = sigreg_quadrature(t_max, num_points, dtype=x.dtype)
    gap = empirical_cf(x, t.to(x.device)) - torch.exp(-0.5 * t.square()).to(x.device)
    return x.shape[0] * (gap.abs().square() * weights.to(x.device)).sum(dim=-1)


def sigreg_per_direction(
    z: Tensor,
    *,
    step: int = 0,
    num_directions: int = 1024,
    t_max: float = 3.0,
    num_points: int = 17,
) -> Tensor:
    """EP of ``z`` [N, D] projected on each of ``sigreg_directions(D, num_directions,
    step=step)``: [num_directions] values whose mean is ``sigreg_loss`` of ``z``."""
    if not isinstance(z, Tensor) or not z.is_floating_point() or z.ndim != 2:
        raise TypeError(
            f"z must be a floating-point torch.Tensor [N, D], got "
            f"{getattr(z, 'shape', type(z).__name__)}"
        )
    directions = sigreg_directions(
        z.shape[1], num_directions, step=step, device=z.device, dtype=z.dtype
    )
    return epps_pulley(z @ directions, t_max=t_max, num_points=num_points)


def sigreg_null_expectation(t_max: float = 3.0, num_points: int = 17) -> float:
    """E[EP] for a sample of i.i.d. N(0, 1), any N: sum_k w_k (1 - exp(-t_k^2))."""
    t, weights = sigreg_quadrature(t_max, num_points)
    return float((weights * (1.0 - torch.exp(-t.square()))).sum())


def sigreg_examples(
    n: int, dim: int, *, rank: int = 2, collapse_noise: float = 0.0, seed: int = 0
) -> dict[str, Tensor]:
    """The three embeddings [n, dim] float32 of :data:`SIGREG_EXAMPLES` (module docstring),
    drawn from one ``torch.Generator`` seeded with ``seed``; ``rank`` is k."""
    n = int_at_least("n", n, 2)
    dim = int_at_least("dim", dim, 1)
    rank = int_at_least("rank", rank, 1)
    if rank > dim:
        raise ValueError(f"rank must be in [1, dim={dim}], got {rank}")
    if isinstance(collapse_noise, bool) or not isinstance(collapse_noise, Real):
        raise TypeError(f"collapse_noise must be a real number >= 0, got {collapse_noise!r}")
    if not 0 <= float(collapse_noise) < float("inf"):
        raise ValueError(
            f"collapse_noise must be a finite real number >= 0, got {collapse_noise!r}"
        )
    seed = int_at_least("seed", seed, 0)
    generator = torch.Generator().manual_seed(seed)

    def noise(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator)

    gaussian = noise(n, dim)
    collapsed = noise(1, dim).expand(n, dim) + float(collapse_noise) * noise(n, dim)
    w = noise(rank, dim)
    dimension_collapsed = noise(n, rank) @ (w / w.norm(dim=0, keepdim=True))
    return {
        "gaussian": gaussian,
        "collapsed": collapsed,
        "dimension_collapsed": dimension_collapsed,
    }


def sigreg_table(
    examples: Mapping[str, Tensor], *, step: int = 0, num_directions: int = 1024
) -> tuple[pd.DataFrame, dict[str, Tensor]]:
    """``sigreg_loss`` of each named embedding [N, D] and its per-direction statistics
    (:func:`sigreg_per_direction`, same ``step`` and ``num_directions``).

    Returns the table, one row per embedding: ``sigreg``, ``x_null`` (sigreg over
    :func:`sigreg_null_expectation`), ``above_gaussian_max`` (share of its directions whose
    statistic exceeds the largest of the ``gaussian`` row), ``rank`` and ``coordinate_var``
    (mean per-coordinate variance, what VICReg's variance term sees); and the dict name ->
    per-direction statistics [num_directions]."""
    if not isinstance(examples, Mapping) or "gaussian" not in examples:
        raise ValueError(
            "examples must be a mapping name -> [N, D] tensor with a 'gaussian' entry "
            f"(the reference row), got {type(examples).__name__} {list(examples or [])}"
        )
    null = sigreg_null_expectation()
    per_direction = {
        name: sigreg_per_direction(z, step=step, num_directions=num_directions)
        for name, z in examples.items()
    }
    gaussian_max = float(per_direction["gaussian"].max())
    rows = {}
    for name, z in examples.items():
        value = float(sigreg_loss(z, step=step, num_directions=num_directions))
        rows[name] = {
            "sigreg": value,
            "x_null": value / null,
            "above_gaussian_max": float((per_direction[name] > gaussian_max).double().mean()),
            "rank": int(torch.linalg.matrix_rank(z)),
            "coordinate_var": float(z.double().var(dim=0).mean()),
        }
    return pd.DataFrame.from_dict(rows, orient="index"), per_direction
