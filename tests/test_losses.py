from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jepa_core.losses import jepa_loss, nt_xent_loss, sigreg_directions, sigreg_loss, vicreg_loss

# --- jepa_loss -----------------------------------------------------------------------------


def test_mse_is_the_mean_of_squared_differences():
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    target = torch.tensor([[[0.0, 0.0], [3.0, 6.0]]])
    # squared differences 1, 4, 0, 4 -> mean 9/4
    assert jepa_loss(pred, target, "mse").item() == pytest.approx(9 / 4)


def test_smooth_l1_is_quadratic_below_one_and_linear_above():
    pred = torch.tensor([[0.5, 3.0, -2.0, 0.0]])
    target = torch.zeros(1, 4)
    # |d| = 0.5 -> 0.125; 3 -> 2.5; 2 -> 1.5; 0 -> 0
    assert jepa_loss(pred, target, "smooth_l1").item() == pytest.approx((0.125 + 2.5 + 1.5) / 4)


def test_cosine_loss_is_zero_for_identical_and_two_for_opposite_vectors():
    v = torch.tensor([[[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]]])
    assert jepa_loss(v, v.clone(), "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert jepa_loss(v, -v, "cosine").item() == pytest.approx(2.0)
    # scale does not matter, orthogonal vectors give 1
    assert jepa_loss(v, 7.0 * v, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert jepa_loss(a, b, "cosine").item() == pytest.approx((1.0 + 0.0) / 2)


def test_jepa_loss_does_not_normalise_embeddings():
    pred = torch.full((2, 3), 2.0)
    target = torch.full((2, 3), 1.0)
    # normalised, these would coincide; unnormalised, mse is 1
    assert jepa_loss(pred, target, "mse").item() == pytest.approx(1.0)


def test_jepa_loss_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        jepa_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_jepa_loss_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match="mse.*smooth_l1.*cosine"):
        jepa_loss(torch.zeros(2, 3), torch.zeros(2, 3), kind="l1")


# --- vicreg_loss ---------------------------------------------------------------------------


def _vicreg_reference(a: np.ndarray, b: np.ndarray, eps: float = 1e-4) -> dict[str, float]:
    """The official formula, written out with loops in float64."""
    n, d = a.shape
    invariance = sum((a[i, j] - b[i, j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    variance = 0.0
    covariance = 0.0
    for z in (a, b):
        mean = [sum(z[i, j] for i in range(n)) / n for j in range(d)]
        c = [[z[i, j] - mean[j] for j in range(d)] for i in range(n)]
        stds = [math.sqrt(sum(c[i][j] ** 2 for i in range(n)) / (n - 1) + eps) for j in range(d)]
        variance += sum(max(0.0, 1.0 - s) for s in stds) / d / 2
        off = 0.0
        for p in range(d):
            for q in range(d):
                if p != q:
                    cov = sum(c[i][p] * c[i][q] for i in range(n)) / (n - 1)
                    off += cov**2
        covariance += off / d
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


def test_vicreg_matches_official_formula_on_random_data():
    rng = np.random.default_rng(0)
    a = rng.normal(scale=0.7, size=(12, 5))
    b = a + rng.normal(scale=0.3, size=(12, 5))
    b[:, 0] *= 2.0  # one dimension above std 1, so relu clips there
    ref = _vicreg_reference(a, b)
    out = vicreg_loss(torch.from_numpy(a), torch.from_numpy(b), 25.0, 20.0, 3.0)
    for key in ("invariance", "variance", "covariance"):
        assert out[key].item() == pytest.approx(ref[key], rel=1e-10), key
    expected = 25.0 * ref["invariance"] + 20.0 * ref["variance"] + 3.0 * ref["covariance"]
    assert out["loss"].item() == pytest.approx(expected, rel=1e-10)


def test_vicreg_variance_is_zero_when_every_dimension_has_std_at_least_one():
    torch.manual_seed(0)
    z = torch.randn(64, 8, dtype=torch.float64)
    z = 1.5 * (z - z.mean(0)) / z.std(0)  # std exactly 1.5 per dimension
    assert vicreg_loss(z, z.flip(0))["variance"].item() == 0.0


def test_vicreg_variance_is_positive_for_collapsed_embeddings():
    z = torch.ones(16, 4)
    out = vicreg_loss(z, z)
    # std = sqrt(0 + 1e-4) = 0.01 per dimension -> relu(1 - 0.01) = 0.99 per view
    assert out["variance"].item() == pytest.approx(0.99)
    assert out["covariance"].item() == 0.0  # collapse also zeroes the covariance term


def test_vicreg_covariance_is_zero_for_exactly_uncorrelated_dimensions():
    # rows +-e_k: each dimension centred, and no two dimensions are ever non-zero together
    eye = torch.eye(4, dtype=torch.float64)
    z = torch.cat([3.0 * eye, -3.0 * eye])
    out = vicreg_loss(z, z)
    assert out["covariance"].item() == 0.0
    assert out["invariance"].item() == 0.0


def test_vicreg_gradients_flow_to_both_inputs():
    torch.manual_seed(0)
    z_a = torch.randn(8, 4, requires_grad=True)
    z_b = torch.randn(8, 4, requires_grad=True)
    vicreg_loss(z_a, z_b)["loss"].backward()
    for z in (z_a, z_b):
        assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("z_a", "z_b", "message"),
    [
        (torch.zeros(1, 4), torch.zeros(1, 4), "N >= 2"),
        (torch.zeros(4), torch.zeros(4), r"\[N, D\]"),
        (torch.zeros(4, 3), torch.zeros(4, 2), r"\(4, 3\).*\(4, 2\)"),
    ],
)
def test_vicreg_bad_shapes_raise_value_error(z_a, z_b, message):
    with pytest.raises(ValueError, match=message):
        vicreg_loss(z_a, z_b)


@pytest.mark.parametrize(
    ("name", "value"), [("sim_coeff", -1.0), ("cov_coeff", math.inf), ("eps", 0.0)]
)
def test_vicreg_bad_coefficients_raise_value_error_naming_them(name, value):
    with pytest.raises(ValueError, match=name):
        vicreg_loss(torch.randn(4, 3), torch.randn(4, 3), **{name: value})


# --- nt_xent_loss --------------------------------------------------------------------------


def _nt_xent_reference(
    zi: np.ndarray, zj: np.ndarray, tau: float, cosine: bool
) -> dict[str, float]:
    z = np.concatenate([zi, zj])
    if cosine:
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_b = z.shape[0]
    b = two_b // 2
    losses, hits, pos, neg = [], [], [], []
    for a in range(two_b):
        positive = (a + b) % two_b
        sims = {c: float(z[a] @ z[c]) for c in range(two_b) if c != a}
        denominator = sum(math.exp(s / tau) for s in sims.values())
        losses.append(-math.log(math.exp(sims[positive] / tau) / denominator))
        hits.append(all(sims[positive] > s for c, s in sims.items() if c != positive))
        pos.append(sims[positive])
        neg.extend(s for c, s in sims.items() if c != positive)
    return {
        "loss": sum(losses) / two_b,
        "accuracy": sum(hits) / two_b,
        "pos_sim": sum(pos) / len(pos),
        "neg_sim": sum(neg) / len(neg),
    }


@pytest.mark.parametrize(("tau", "cosine"), [(0.1, True), (0.5, True), (2.0, False)])
def test_nt_xent_matches_a_loop_reference(tau, cosine):
    rng = np.random.default_rng(1)
    zi = rng.normal(size=(5, 3))
    zj = zi + rng.normal(scale=0.8, size=(5, 3))
    ref = _nt_xent_reference(zi, zj, tau, cosine)
    out = nt_xent_loss(torch.from_numpy(zi), torch.from_numpy(zj), temperature=tau, cosine=cosine)
    for key in ("loss", "accuracy", "pos_sim", "neg_sim"):
        assert out[key].item() == pytest.approx(ref[key], rel=1e-9), key


def test_nt_xent_accuracy_is_one_for_perfectly_separated_pairs():
    eye = torch.eye(6)
    out = nt_xent_loss(eye, eye.clone())
    assert out["accuracy"].item() == 1.0
    assert out["pos_sim"].item() == pytest.approx(1.0)
    assert out["neg_sim"].item() == pytest.approx(0.0)


def test_nt_xent_on_separated_pairs_loss_falls_as_temperature_falls():
    # With the positive strictly most similar, a lower temperature sharpens the softmax on it.
    eye = torch.eye(4)
    losses = [nt_xent_loss(eye, eye, temperature=t)["loss"].item() for t in (1.0, 0.5, 0.1, 0.05)]
    assert losses == sorted(losses, reverse=True)
    # the floor is 0 and at tau = 1 the value is log(e + 6) - 1 (one positive, 6 negatives at 0)
    assert losses[0] == pytest.approx(math.log(math.e + 6) - 1)


def test_nt_xent_metrics_are_detached_and_gradients_reach_z_i():
    torch.manual_seed(0)
    z_i = torch.randn(8, 16, requires_grad=True)
    z_j = torch.randn(8, 16, requires_grad=True)
    out = nt_xent_loss(z_i, z_j)
    assert all(not out[k].requires_grad for k in ("accuracy", "pos_sim", "neg_sim"))
    out["loss"].backward()
    assert torch.isfinite(z_i.grad).all() and z_i.grad.abs().sum() > 0


@pytest.mark.parametrize("temperature", [0.0, -0.1, math.nan])
def test_nt_xent_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(4, 3), temperature=temperature)


def test_nt_xent_batch_of_one_raises():
    with pytest.raises(ValueError, match="B >= 2"):
        nt_xent_loss(torch.randn(1, 3), torch.randn(1, 3))


def test_nt_xent_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 3\)"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(5, 3))


# --- sigreg_loss ---------------------------------------------------------------------------


def _grid_weights(t_max: float, num_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Points t_k and the weights w_k of the doubled trapezoid rule times exp(-t^2/2), built by
    integrating each hat basis function with np.trapezoid (not by writing the rule out)."""
    t = np.linspace(0.0, t_max, num_points)
    w = np.array([np.trapezoid(np.eye(num_points)[k], t) for k in range(num_points)])
    return t, 2.0 * w * np.exp(-(t**2) / 2)


def _sigreg_numpy(z: np.ndarray, a: np.ndarray, t_max: float, num_points: int) -> float:
    """Via the complex characteristic function and np.trapezoid on the same grid."""
    n = z.shape[0]
    t = np.linspace(0.0, t_max, num_points)
    stats = []
    for m in range(a.shape[1]):
        x = z @ a[:, m]
        ecf = np.exp(1j * np.outer(t, x)).mean(axis=1)  # [K]
        integrand = np.abs(ecf - np.exp(-(t**2) / 2)) ** 2 * np.exp(-(t**2) / 2)
        stats.append(n * 2.0 * np.trapezoid(integrand, t))  # even integrand: [-t_max, t_max]
    return float(np.mean(stats))


def _epps_pulley_closed_form(x: np.ndarray) -> float:
    """N * integral over the whole real line of |ecf(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt, from
    integral cos(a t) exp(-b t^2/2) dt = sqrt(2 pi / b) exp(-a^2 / (2 b)):
    mean_jk sqrt(2 pi) e^{-(x_j-x_k)^2/2} - 2 mean_j sqrt(pi) e^{-x_j^2/4} + sqrt(2 pi / 3)."""
    n = x.shape[0]
    diff = x[:, None] - x[None, :]
    value = (
        math.sqrt(2 * math.pi) * np.exp(-(diff**2) / 2).mean()
        - 2 * math.sqrt(math.pi) * np.exp(-(x**2) / 4).mean()
        + math.sqrt(2 * math.pi / 3)
    )
    return float(n * value)


def _gaussian_expectation(t_max: float = 3.0, num_points: int = 17) -> float:
    """E[sigreg] for z ~ N(0, I): E|ecf(t) - exp(-t^2/2)|^2 = (1 - exp(-t^2)) / N at every t,
    so the N-scaled statistic has mean sum_k w_k (1 - exp(-t_k^2)) whatever N and D."""
    t, w = _grid_weights(t_max, num_points)
    return float((w * (1.0 - np.exp(-(t**2)))).sum())


def test_sigreg_matches_a_numpy_complex_ecf_computation_on_the_same_grid():
    rng = np.random.default_rng(3)
    z = rng.normal(loc=0.3, scale=1.4, size=(7, 5))
    a = sigreg_directions(5, 4, step=11, dtype=torch.float64).numpy()
    for t_max, num_points in ((3.0, 17), (5.0, 9)):
        ref = _sigreg_numpy(z, a, t_max, num_points)
        out = sigreg_loss(
            torch.from_numpy(z), step=11, num_directions=4, t_max=t_max, num_points=num_points
        )
        assert out.dtype == torch.float64
        assert out.item() == pytest.approx(ref, rel=1e-10)


def test_sigreg_on_a_fine_wide_grid_approaches_the_closed_form_integral():
    # Checks the scale (N), the doubling and the weight function against the exact integral
    # over the real line; on [-12, 12] the neglected tail is below 4 e^{-72}.
    rng = np.random.default_rng(4)
    z = rng.normal(scale=0.8, size=(9, 3)) + np.array([0.5, 0.0, -1.0])
    a = sigreg_directions(3, 5, step=2, dtype=torch.float64).numpy()
    exact = np.mean([_epps_pulley_closed_form(z @ a[:, m]) for m in range(5)])
    out = sigreg_loss(torch.from_numpy(z), step=2, num_directions=5, t_max=12.0, num_points=4001)
    assert out.item() == pytest.approx(exact, rel=1e-6)


def test_sigreg_of_a_gaussian_sample_is_near_its_null_expectation():
    torch.manual_seed(0)
    z = torch.randn(2048, 32, dtype=torch.float64)
    expected = _gaussian_expectation()  # about 1, independent of N
    score = sigreg_loss(z, step=0, num_directions=256).item()
    assert abs(score / expected - 1.0) < 0.5


def test_sigreg_of_a_collapsed_sample_is_at_least_its_lower_bound_and_far_above_gaussian():
    # all rows equal: x = c per direction, err(t) = 1 - 2 cos(ct) e^{-t^2/2} + e^{-t^2}
    # >= (1 - e^{-t^2/2})^2, so the score is at least N * sum_k w_k (1 - e^{-t_k^2/2})^2
    n = 2048
    t, w = _grid_weights(3.0, 17)
    lower = n * float((w * (1.0 - np.exp(-(t**2) / 2)) ** 2).sum())
    torch.manual_seed(1)
    z = torch.randn(1, 32, dtype=torch.float64).expand(n, 32)
    score = sigreg_loss(z, step=0, num_directions=256).item()
    assert score >= lower * (1 - 1e-9)
    assert score > 100 * _gaussian_expectation()


@pytest.mark.parametrize("rank", [1, 2])
def test_sigreg_of_a_low_rank_sample_is_far_above_gaussian(rank):
    # same total variance as N(0, I_32), concentrated on `rank` orthonormal directions
    n, d = 2048, 32
    torch.manual_seed(2)
    basis, _ = torch.linalg.qr(torch.randn(d, rank, dtype=torch.float64))
    z = torch.randn(n, rank, dtype=torch.float64) @ basis.T * math.sqrt(d / rank)
    low_rank = sigreg_loss(z, step=0, num_directions=256).item()
    gaussian = sigreg_loss(torch.randn(n, d, dtype=torch.float64), step=0, num_directions=256)
    assert low_rank > 10 * _gaussian_expectation()
    assert low_rank > 10 * gaussian.item()


def test_sigreg_directions_are_unit_columns_fixed_by_the_step():
    a = sigreg_directions(16, 8, step=5)
    assert a.shape == (16, 8)
    torch.testing.assert_close(a.norm(dim=0), torch.ones(8))
    assert torch.equal(a, sigreg_directions(16, 8, step=5))
    assert not torch.allclose(a, sigreg_directions(16, 8, step=6))


def test_sigreg_same_step_same_value_other_step_other_value():
    torch.manual_seed(3)
    z = torch.randn(64, 16) * 0.5
    first = sigreg_loss(z, step=7, num_directions=8)
    assert torch.equal(first, sigreg_loss(z, step=7, num_directions=8))
    assert first.item() != sigreg_loss(z, step=8, num_directions=8).item()


def test_sigreg_of_views_is_the_mean_over_views():
    torch.manual_seed(4)
    views = torch.stack([torch.randn(32, 6), 0.2 * torch.randn(32, 6), torch.randn(32, 6) + 1])
    per_view = [sigreg_loss(v, step=3, num_directions=16) for v in views]
    assert len({round(p.item(), 6) for p in per_view}) == 3  # the views really differ
    out = sigreg_loss(views, step=3, num_directions=16)
    assert out.item() == pytest.approx(sum(p.item() for p in per_view) / 3, rel=1e-6)


def test_sigreg_gradient_reaches_z_and_is_the_directional_derivative():
    torch.manual_seed(5)
    z = (0.3 * torch.randn(64, 8, dtype=torch.float64)).requires_grad_()
    loss = sigreg_loss(z, step=0, num_directions=32)
    loss.backward()
    g = z.grad
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # a small step against the gradient lowers the loss by about eta * |g|^2 (same directions)
    eta = 1e-6
    with torch.no_grad():
        lowered = sigreg_loss(z - eta * g, step=0, num_directions=32)
    drop = loss.item() - lowered.item()
    assert drop > 0
    assert drop == pytest.approx(eta * g.square().sum().item(), rel=1e-3)


def test_sigreg_keeps_the_input_dtype():
    assert sigreg_loss(torch.randn(8, 4), step=0, num_directions=4).dtype == torch.float32


@pytest.mark.parametrize(
    ("z", "kwargs", "error", "message"),
    [
        ([[0.0, 1.0], [1.0, 0.0]], {}, TypeError, "z must be a torch.Tensor"),
        (torch.zeros(4, 3, dtype=torch.int64), {}, TypeError, "z must be a floating-point"),
        (torch.zeros(4), {}, ValueError, r"z must be \[N, D\] or \[V, N, D\]"),
        (torch.zeros(2, 2, 4, 3), {}, ValueError, r"z must be .*\(2, 2, 4, 3\)"),
        (torch.zeros(1, 3), {}, ValueError, "N >= 2"),
        (torch.zeros(2, 1, 3), {}, ValueError, "N >= 2"),
        (torch.zeros(4, 3), {"step": -1}, ValueError, "step must be an int >= 0"),
        (torch.zeros(4, 3), {"step": 1.5}, TypeError, "step must be an int"),
        (torch.zeros(4, 3), {"step": True}, TypeError, "step must be an int"),
        (torch.zeros(4, 3), {"num_directions": 0}, ValueError, "num_directions must be .* >= 1"),
        (torch.zeros(4, 3), {"num_points": 1}, ValueError, "num_points must be an int >= 2"),
        (torch.zeros(4, 3), {"t_max": 0.0}, ValueError, "t_max must be finite and > 0"),
        (torch.zeros(4, 3), {"t_max": math.inf}, ValueError, "t_max"),
        (torch.zeros(4, 3), {"t_max": "3"}, TypeError, "t_max must be a real number"),
    ],
)
def test_sigreg_bad_inputs_raise_naming_the_culprit(z, kwargs, error, message):
    kwargs = {"step": 0, **kwargs}
    with pytest.raises(error, match=message):
        sigreg_loss(z, **kwargs)
