"""The objectives: I-JEPA's prediction loss, VICReg, SimCLR's NT-Xent and LeJEPA's SIGReg.

I-JEPA (Assran et al., CVPR 2023), predicted vs target patch embeddings, no normalisation of
either (the targets are layer-normed by the caller, as in the official code):

    mse       = mean((pred - target)^2)                          the paper's L2
    smooth_l1 = mean(0.5 d^2 if |d| < 1 else |d| - 0.5),  d = pred - target
                                                                 the official code (beta 1)
    cosine    = mean over tokens of 1 - cos(pred, target)        along the feature dimension

VICReg (Bardes, Ponce & LeCun, ICLR 2022; facebookresearch/vicreg ``main_vicreg.py``), z [N, D]:

    invariance = mse(z_a, z_b)
    variance   = mean(relu(1 - sqrt(var(z) + eps)))       per view, averaged over the two views
    covariance = sum(offdiag(z_c^T z_c / (N - 1))^2) / D   per view, summed; z_c centred
    loss       = 25 * invariance + 25 * variance + 1 * covariance

NT-Xent (SimCLR, Chen et al., ICML 2020), z = cat(z_i, z_j) of 2B rows, L2-normalised:

    loss = mean over the 2B anchors a of
           -log( exp(s(a, a+) / tau) / sum_{b != a} exp(s(a, b) / tau) )

where a+ is the other view of the same sample; the 2B - 2 other rows are the negatives.

SIGReg (LeJEPA, Balestriero & LeCun 2025, arXiv 2511.08544; rbalestr-lab/lejepa), z [N, D] or
[V, N, D]: project on M random unit directions a_m, and for each 1-D projection x = z a_m test
it against N(0, 1) with the Epps-Pulley statistic (distance between the empirical and the
Gaussian characteristic functions):

    err(t)  = (mean_n cos(t x_n) - exp(-t^2/2))^2 + (mean_n sin(t x_n))^2
    EP(x)   = N * sum_k w_k err(t_k),   t_k = linspace(0, t_max, K),
              w_k = 2 * trapezoid_k * exp(-t_k^2/2)    (err is even in t: [0, t_max] counted twice)
    sigreg  = mean over directions (and views) of EP
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
import torch.nn.functional as F

JEPA_LOSS_KINDS = ("mse", "smooth_l1", "cosine")


def _check_tensor(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _check_real(name: str, value: object, *, low: float, low_inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    ok = value >= low if low_inclusive else value > low
    if not ok or not math.isfinite(value):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be finite and {bound} {low}, got {value!r}")
    return value


def jepa_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Distance between predicted and target embeddings, averaged to a scalar (see module
    docstring). Any shape ``[..., D]``, identical for both; ``cosine`` compares along the last
    dimension. Nothing is normalised here: I-JEPA does not L2-normalise its embeddings."""
    if kind not in JEPA_LOSS_KINDS:
        raise ValueError(f"kind must be one of {JEPA_LOSS_KINDS}, got {kind!r}")
    pred = _check_tensor("pred", pred)
    target = _check_tensor("target", target)
    _check_same_shape("pred", pred, "target", target)
    if pred.ndim == 0 or pred.numel() == 0:
        raise ValueError(
            f"pred and target must be non-empty with a feature dimension, "
            f"got shape {tuple(pred.shape)}"
        )
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=1.0)
    return (1.0 - F.cosine_similarity(pred, target, dim=-1)).mean()


def _off_diagonal_square_sum(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.pow(2).sum() - torch.diagonal(matrix).pow(2).sum()


def vicreg_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """VICReg on two batches of embeddings ``[N, D]`` (N >= 2), as the official code computes it.

    Returns ``loss`` (the weighted sum) and the unweighted ``invariance``, ``variance`` and
    ``covariance``, all scalar tensors still in the autograd graph (so a caller may reweight
    them); call ``.item()`` to log.
    """
    z_a = _check_tensor("z_a", z_a)
    z_b = _check_tensor("z_b", z_b)
    _check_same_shape("z_a", z_a, "z_b", z_b)
    if z_a.ndim != 2 or z_a.shape[0] < 2 or z_a.shape[1] < 1:
        raise ValueError(
            f"z_a and z_b must be [N, D] with N >= 2 and D >= 1, got shape {tuple(z_a.shape)}"
        )
    sim_coeff = _check_real("sim_coeff", sim_coeff, low=0.0, low_inclusive=True)
    std_coeff = _check_real("std_coeff", std_coeff, low=0.0, low_inclusive=True)
    cov_coeff = _check_real("cov_coeff", cov_coeff, low=0.0, low_inclusive=True)
    eps = _check_real("eps", eps, low=0.0, low_inclusive=False)
    n, d = z_a.shape

    invariance = F.mse_loss(z_a, z_b)
    a = z_a - z_a.mean(dim=0)
    b = z_b - z_b.mean(dim=0)
    std_a = torch.sqrt(a.var(dim=0) + eps)
    std_b = torch.sqrt(b.var(dim=0) + eps)
    variance = F.relu(1.0 - std_a).mean() / 2 + F.relu(1.0 - std_b).mean() / 2
    cov_a = (a.T @ a) / (n - 1)
    cov_b = (b.T @ b) / (n - 1)
    covariance = _off_diagonal_square_sum(cov_a) / d + _off_diagonal_square_sum(cov_b) / d
    loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
    return {"loss": loss, "invariance": invariance, "variance": variance, "covariance": covariance}


def nt_xent_loss(
    z_i: torch.Tensor,
    z_j: torch.Tensor,
    temperature: float = 0.1,
    cosine: bool = True,
) -> dict[str, torch.Tensor]:
    """SimCLR's NT-Xent over the 2B embeddings of two views ``[B, D]`` (B >= 2).

    Returns ``loss`` (a scalar in the autograd graph) and three detached scalar tensors, kept
    on the input's device so logging them costs no synchronisation until read: ``accuracy``
    (share of the 2B anchors whose positive has the highest similarity among the 2B - 1
    candidates), ``pos_sim`` and ``neg_sim`` (mean similarity of positive / negative pairs,
    before division by the temperature; cosine similarity if ``cosine`` else dot product).
    """
    z_i = _check_tensor("z_i", z_i)
    z_j = _check_tensor("z_j", z_j)
    _check_same_shape("z_i", z_i, "z_j", z_j)
    if z_i.ndim != 2 or z_i.shape[0] < 2 or z_i.shape[1] < 1:
        raise ValueError(
            f"z_i and z_j must be [B, D] with B >= 2 and D >= 1, got shape {tuple(z_i.shape)}"
        )
    temperature = _check_real("temperature", temperature, low=0.0, low_inclusive=False)
    if not isinstance(cosine, bool):
        raise TypeError(f"cosine must be a bool, got {cosine!r} ({type(cosine).__name__})")
    batch = z_i.shape[0]

    z = torch.cat([z_i, z_j], dim=0)
    if cosine:
        z = F.normalize(z, dim=1)
    similarity = z @ z.T
    self_mask = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
    logits = (similarity / temperature).masked_fill(self_mask, float("-inf"))
    anchors = torch.arange(2 * batch, device=z.device)
    positives = (anchors + batch) % (2 * batch)
    loss = F.cross_entropy(logits, positives)

    with torch.no_grad():
        hits = logits.argmax(dim=1) == positives
        accuracy = hits.to(torch.promote_types(similarity.dtype, torch.float32)).mean()
        pos_sim = similarity[anchors, positives].mean()
        negative_mask = ~self_mask
        negative_mask[anchors, positives] = False
        neg_sim = similarity[negative_mask].mean()
    return {
        "loss": loss,
        "accuracy": accuracy.detach(),
        "pos_sim": pos_sim.detach(),
        "neg_sim": neg_sim.detach(),
    }


def _check_int(name: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int >= {low}, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def sigreg_directions(
    dim: int,
    num_directions: int,
    *,
    step: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``[dim, num_directions]`` matrix of unit columns that :func:`sigreg_loss` uses at
    ``step``: standard Gaussian entries, each column divided by its L2 norm (so the columns are
    uniform on the unit sphere).

    They are drawn from a fresh ``torch.Generator`` on ``device`` seeded with ``step``: a new
    set every step, and the same set in every process that passes the same step, so all ranks
    of a distributed run project on the same directions without communicating (the LeJEPA
    reference code does the same with the global step). The stream depends on the device type
    (a CPU and a CUDA generator with the same seed draw different numbers) but not on the rank.
    """
    dim = _check_int("dim", dim, low=1)
    num_directions = _check_int("num_directions", num_directions, low=1)
    step = _check_int("step", step, low=0)
    device = torch.device("cpu") if device is None else torch.device(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(step)
    a = torch.randn(dim, num_directions, generator=generator, device=device, dtype=dtype)
    return a / a.norm(dim=0, keepdim=True)


def sigreg_loss(
    z: torch.Tensor,
    *,
    step: int,
    num_directions: int = 1024,
    t_max: float = 3.0,
    num_points: int = 17,
) -> torch.Tensor:
    """SIGReg, LeJEPA's Sketched Isotropic Gaussian Regulariser (see module docstring): the
    Epps-Pulley test statistic of each random 1-D projection of ``z`` against N(0, 1), averaged
    over the directions and, for ``z`` of shape ``[V, N, D]``, over the V views. Zero-ish (about
    1, independent of N) for z ~ N(0, I); grows like N for collapsed or low-rank z.

    ``z``: ``[N, D]`` or ``[V, N, D]`` float tensor, N >= 2. All views are projected on the same
    directions, ``sigreg_directions(D, num_directions, step=step)`` drawn on z's device and in
    its dtype (a new set every step, identical on all ranks: see :func:`sigreg_directions`).
    ``num_directions`` M: 1024 as in the LeJEPA README, stable-pretraining and lightly (the
    minimal example uses 256). The quadrature follows the reference code: t on
    ``linspace(0, t_max, num_points)`` = [0, 3] with 17 points, trapezoid weights times the
    weight function exp(-t^2/2), doubled since the integrand is even, i.e. the integral over
    [-t_max, t_max] (the paper's Algorithm 1 writes linspace(-5, 5, 17) instead; the paper
    reports the domain and the number of points to matter little). The statistic is scaled by
    N, as the test statistic is N * integral. Not divided by anything else: the loss weight
    (LeJEPA's lambda) is the caller's.

    Returns a scalar tensor in the autograd graph of ``z``.
    """
    z = _check_tensor("z", z)
    if z.ndim not in (2, 3) or z.shape[-2] < 2 or z.shape[-1] < 1:
        raise ValueError(
            f"z must be [N, D] or [V, N, D] with N >= 2 and D >= 1, got shape {tuple(z.shape)}"
        )
    if z.ndim == 3 and z.shape[0] < 1:
        raise ValueError(f"z of shape [V, N, D] must have V >= 1, got shape {tuple(z.shape)}")
    step = _check_int("step", step, low=0)
    num_directions = _check_int("num_directions", num_directions, low=1)
    num_points = _check_int("num_points", num_points, low=2)
    t_max = _check_real("t_max", t_max, low=0.0, low_inclusive=False)

    views = z if z.ndim == 3 else z.unsqueeze(0)  # [V, N, D]
    n, d = views.shape[1], views.shape[2]
    directions = sigreg_directions(
        d, num_directions, step=step, device=z.device, dtype=z.dtype
    )  # [D, M]
    t = torch.linspace(0.0, t_max, num_points, device=z.device, dtype=z.dtype)  # [K]
    gaussian_cf = torch.exp(-0.5 * t.square())  # also the weight function
    dt = t_max / (num_points - 1)
    trapezoid = torch.full_like(t, dt)
    trapezoid[0] = trapezoid[-1] = dt / 2
    weights = 2.0 * trapezoid * gaussian_cf  # [K]

    x = views @ directions  # [V, N, M]
    xt = x.unsqueeze(-1) * t  # [V, N, M, K]
    cos_mean = torch.cos(xt).mean(dim=1)  # [V, M, K]
    sin_mean = torch.sin(xt).mean(dim=1)
    err = (cos_mean - gaussian_cf).square() + sin_mean.square()
    statistic = n * (err * weights).sum(dim=-1)  # [V, M]
    return statistic.mean()
