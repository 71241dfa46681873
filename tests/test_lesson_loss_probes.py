from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jepa_core.config import load_config
from jepa_core.lessons.loss_probes import (
    EMBEDDING_KINDS,
    anchor_softmax,
    gradient_norm,
    jepa_loss_probe,
    loss_contributions,
    objective_terms,
    parameter_gradients,
    synthetic_views,
    temperature_sweep,
    vicreg_table,
)
from jepa_core.lessons.sigreg_probes import (
    SIGREG_EXAMPLES,
    empirical_cf,
    epps_pulley,
    sigreg_examples,
    sigreg_null_expectation,
    sigreg_per_direction,
    sigreg_quadrature,
    sigreg_table,
)
from jepa_core.losses import sigreg_loss, vicreg_loss
from jepa_core.masks import sample_multiblock_masks
from jepa_core.models import build_models
from jepa_core.monitor import rankme
from jepa_core.objectives import TWO_VIEW_METHODS


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- synthetic_views ------------------------------------------------------------------------


def test_healthy_views_have_unit_std_and_nearly_full_rank():
    z_a, z_b = synthetic_views("healthy", 1024, 32, view_noise=0.0, generator=_gen())
    assert torch.equal(z_a, z_b)  # no view noise: the views coincide
    assert z_a.std(dim=0).mean().item() == pytest.approx(1.0, abs=0.05)
    assert rankme(z_a) > 0.8 * 32


def test_dimension_collapsed_views_have_exactly_rank_k_and_unit_variance_on_average():
    z_a, z_b = synthetic_views("dimension_collapsed", 256, 128, rank=3, generator=_gen())
    assert torch.linalg.matrix_rank(z_a).item() == 3
    assert torch.linalg.matrix_rank(torch.cat([z_a, z_b])).item() == 3  # view noise stays in rank k
    assert z_a.var(dim=0).mean().item() == pytest.approx(1.0, abs=0.25)


def test_fully_collapsed_views_lie_within_the_noise_of_one_shared_point():
    z_a, z_b = synthetic_views("fully_collapsed", 256, 16, collapse_noise=1e-3, generator=_gen())
    center = z_a.mean(dim=0)
    assert (z_a - center).abs().max().item() < 10e-3
    assert (z_b - center).abs().max().item() < 10e-3
    assert center.abs().max().item() > 0.1  # a point away from the origin, not zero


def test_view_noise_sets_the_difference_between_the_two_views():
    z_a, z_b = synthetic_views("healthy", 2048, 64, view_noise=0.3, generator=_gen())
    # z_a - z_b = s (e_a - e_b): variance 2 s^2
    assert (z_a - z_b).var().item() == pytest.approx(2 * 0.3**2, rel=0.05)


def test_the_same_generator_seed_gives_the_same_views():
    for kind in EMBEDDING_KINDS:
        first = synthetic_views(kind, 8, 6, rank=2, generator=_gen(5))
        second = synthetic_views(kind, 8, 6, rank=2, generator=_gen(5))
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kind": "partial"}, ValueError, "kind.*healthy.*'partial'"),
        ({"rank": 9}, ValueError, r"rank must be in \[1, dim=8\], got 9"),
        ({"view_noise": -0.1}, ValueError, "view_noise.*-0.1"),
        ({"n": 1}, ValueError, "n must be an int >= 2, got 1"),
        ({"dim": 2.5}, TypeError, "dim must be an int"),
        ({"generator": 3}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_synthetic_views_rejects_bad_arguments_by_name(kwargs, error, match):
    args = {"kind": "healthy", "n": 4, "dim": 8, **kwargs}
    with pytest.raises(error, match=match):
        synthetic_views(**args)


# --- jepa_loss_probe ------------------------------------------------------------------------


def test_loss_probe_matches_the_hand_formulas():
    target = F.layer_norm(torch.randn(16, 32, generator=_gen()), (32,))
    scaled, outlier = jepa_loss_probe(target, scales=[0.5, 2.0], outliers=[0.5, 4.0])
    mean_square = target.double().pow(2).mean().item()
    mse = scaled[scaled.kind == "mse"].set_index("scale")["loss"]
    assert mse[0.5] == pytest.approx(0.25 * mean_square, rel=1e-6)
    assert mse[2.0] == pytest.approx(1.0 * mean_square, rel=1e-6)
    assert scaled[scaled.kind == "cosine"]["loss"].abs().max() < 1e-9

    rows = outlier.set_index(["kind", "magnitude"])
    n = target.numel()
    assert rows.loc[("mse", 4.0), "loss"] == pytest.approx(16.0 / n)
    assert rows.loc[("smooth_l1", 4.0), "loss"] == pytest.approx(3.5 / n)  # |d| - 1/2
    assert rows.loc[("smooth_l1", 0.5), "loss"] == pytest.approx(0.125 / n)  # d^2 / 2
    assert rows.loc[("mse", 4.0), "outlier_grad"] == pytest.approx(8.0)  # 2 m
    assert rows.loc[("smooth_l1", 4.0), "outlier_grad"] == pytest.approx(1.0)  # capped
    assert rows.loc[("smooth_l1", 0.5), "outlier_grad"] == pytest.approx(0.5)


def test_loss_probe_rejects_non_positive_scales():
    with pytest.raises(ValueError, match="scales.*> 0"):
        jepa_loss_probe(torch.randn(2, 4), scales=[0.0, 1.0], outliers=[1.0])


# --- vicreg_table / temperature_sweep / anchor_softmax --------------------------------------


def test_vicreg_table_reports_the_terms_of_vicreg_loss_and_passes_coefficients_on():
    z_a, z_b = synthetic_views("healthy", 64, 8, generator=_gen())
    table = vicreg_table({"x": (z_a, z_b)}, sim_coeff=0.0)
    direct = vicreg_loss(z_a, z_b, sim_coeff=0.0)
    for column in ("invariance", "variance", "covariance", "loss"):
        assert table.loc["x", column] == pytest.approx(direct[column].item())
    assert table.loc["x", "rankme"] == pytest.approx(rankme(z_a))


def test_vicreg_table_names_a_malformed_entry():
    with pytest.raises(ValueError, match=r"views\['bad'\] must be a pair"):
        vicreg_table({"bad": torch.zeros(4, 2)})


def _nt_xent_reference(z_i: np.ndarray, z_j: np.ndarray, tau: float) -> float:
    z = np.concatenate([z_i, z_j]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z)
    total = 0.0
    for a in range(n):
        positive = (a + n // 2) % n
        logits = [z[a] @ z[b] / tau for b in range(n) if b != a]
        total += -(z[a] @ z[positive] / tau) + math.log(sum(math.exp(v) for v in logits))
    return total / n


def test_temperature_sweep_matches_a_reference_and_keeps_accuracy_fixed():
    z_i, z_j = torch.randn(6, 5, generator=_gen()), torch.randn(6, 5, generator=_gen(1))
    sweep = temperature_sweep(z_i, z_j, [0.1, 0.5, 1e5])
    for tau, loss in zip(sweep.temperature, sweep.loss, strict=True):
        assert loss == pytest.approx(_nt_xent_reference(z_i.numpy(), z_j.numpy(), tau), rel=1e-5)
    assert sweep.accuracy.nunique() == 1
    assert sweep.loss.iloc[-1] == pytest.approx(math.log(2 * 6 - 1), rel=1e-4)


def test_anchor_softmax_is_a_distribution_over_the_other_candidates():
    z_i, z_j = torch.randn(5, 3, generator=_gen()), torch.randn(5, 3, generator=_gen(2))
    probs = anchor_softmax(z_i, z_j, temperature=0.2, anchor=2)
    assert probs[2].item() == 0.0
    assert probs.sum().item() == pytest.approx(1.0)
    z = F.normalize(torch.cat([z_i, z_j]).double(), dim=1)
    sims = (z @ z[2]).numpy()
    expected = np.exp(np.delete(sims, 2) / 0.2)
    assert np.allclose(np.delete(probs.numpy(), 2), expected / expected.sum())
    with pytest.raises(ValueError, match="temperature must be a real number > 0, got 0"):
        anchor_softmax(z_i, z_j, temperature=0)


# --- objective_terms / loss_contributions / gradients ---------------------------------------


@pytest.fixture(scope="module")
def batch():
    images = torch.randn(8, 1, 28, 28, generator=_gen())  # 4 pairs: view a then view b
    masks = sample_multiblock_masks((7, 7), 8, generator=_gen(1))
    return images, masks


@pytest.mark.parametrize("method", ["cjepa", "ijepa_ntxent", "hjepa"])
def test_loss_contributions_add_up_to_the_objectives_loss(batch, method):
    images, masks = batch
    cfg = load_config(method).loss
    levels = len(cfg.level_weights) if method == "hjepa" else 1
    torch.manual_seed(0)
    models = build_models("cpu", img_size=28, patch_size=4, in_chans=1, out_levels=levels)
    if method in TWO_VIEW_METHODS:  # I-JEPA runs on view a: masks for the first half
        masks = sample_multiblock_masks((7, 7), len(images) // 2, generator=_gen(1))
    terms = objective_terms(cfg, *models, images, masks)
    parts = loss_contributions(terms, cfg)
    assert sum(parts.values()) == pytest.approx(terms["loss"].item(), rel=1e-5)
    assert len(parts) == (levels if method == "hjepa" else 2)
    assert terms["loss"].requires_grad


def test_objective_terms_refuses_a_predictor_with_the_wrong_number_of_levels(batch):
    images, masks = batch
    models = build_models("cpu", img_size=28, patch_size=4, in_chans=1, out_levels=1)
    with pytest.raises(ValueError, match=r"out_levels must equal.*3.*hjepa.*got 1"):
        objective_terms(load_config("hjepa").loss, *models, images, masks)


def test_a_term_on_no_grad_features_gives_no_gradient_and_one_on_outputs_does():
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3, generator=_gen())
    with torch.no_grad():
        frozen = layer(x).pow(2).sum()
    live = layer(x).pow(2).sum()
    assert parameter_gradients(frozen, layer) == [None, None]
    grads = parameter_gradients(live, layer)
    again = parameter_gradients(live, layer)  # the graph is kept between calls
    assert all(torch.equal(a, b) for a, b in zip(grads, again, strict=True))
    assert gradient_norm(grads) > 0
    assert gradient_norm(parameter_gradients(frozen, layer)) == 0.0


def test_gradient_norm_is_the_global_l2_norm_with_none_as_zero():
    assert gradient_norm([torch.tensor([3.0]), None, torch.tensor([[4.0]])]) == pytest.approx(5.0)
    assert gradient_norm([None]) == 0.0


# --- SIGReg probes: empirical_cf / epps_pulley / sigreg_examples / sigreg_table -------------

T_GRID = torch.linspace(-4.0, 4.0, 33, dtype=torch.float64)


def test_empirical_cf_of_a_large_gaussian_sample_is_close_to_the_gaussian_cf():
    n = 100_000
    x = torch.randn(n, generator=_gen(), dtype=torch.float64)
    phi = empirical_cf(x, T_GRID)
    # var(cos tX) and var(sin tX) are at most 1/2: each mean is within 5 sd of its expectation
    tol = 5 * math.sqrt(0.5 / n)
    assert (phi.real - torch.exp(-0.5 * T_GRID.square())).abs().max().item() < tol
    assert phi.imag.abs().max().item() < tol
    assert abs(phi[T_GRID == 0].real.item() - 1.0) < 1e-12  # phi(0) = 1 for any sample


def test_empirical_cf_of_constant_samples_is_cos_and_sin_of_t_times_the_constant():
    constants = torch.tensor([0.8, -2.0, 0.0], dtype=torch.float64)
    x = constants.expand(7, 3)  # [N, M]: column m is the constant c_m, seven times
    phi = empirical_cf(x, T_GRID)
    expected_angle = constants[:, None] * T_GRID  # [M, K]
    assert torch.allclose(phi.real, torch.cos(expected_angle), rtol=0, atol=1e-14)
    assert torch.allclose(phi.imag, torch.sin(expected_angle), rtol=0, atol=1e-14)
    assert torch.equal(empirical_cf(x[:, 0], T_GRID), phi[0])  # [N] gives the first row


def test_empirical_cf_shapes_and_dtype():
    x = torch.randn(10, 4, generator=_gen())
    t = torch.linspace(0.0, 3.0, 5)
    assert empirical_cf(x, t).shape == (4, 5) and empirical_cf(x, t).dtype == torch.complex64
    assert empirical_cf(x[:, 1], t).shape == (5,)


@pytest.mark.parametrize(
    ("x", "t", "error", "match"),
    [
        ([1.0, 2.0], T_GRID, TypeError, "x must be a floating-point torch.Tensor"),
        (torch.arange(4), T_GRID, TypeError, "x must be a floating-point.*int64"),
        (torch.zeros(2, 3, 4), T_GRID, ValueError, r"x must be \[N\] or \[N, M\].*\(2, 3, 4\)"),
        (torch.zeros(0), T_GRID, ValueError, "N >= 1"),
        (torch.zeros(3), T_GRID[None], TypeError, "t must be a 1-D floating-point"),
        (torch.zeros(3), 1.0, TypeError, "t must be a 1-D floating-point"),
    ],
)
def test_empirical_cf_rejects_bad_inputs_by_name(x, t, error, match):
    with pytest.raises(error, match=match):
        empirical_cf(x, t)


def test_quadrature_integrates_the_gaussian_weight_over_minus_t_max_to_t_max():
    t, w = sigreg_quadrature(3.0, 17)
    assert t[0].item() == 0.0 and t[-1].item() == 3.0 and len(w) == 17
    exact = math.sqrt(2 * math.pi) * math.erf(3 / math.sqrt(2))  # integral of exp(-t^2/2)
    assert w.sum().item() == pytest.approx(exact, abs=1e-3)  # trapezoid error, dt = 3/16
    with pytest.raises(ValueError, match="t_max must be a finite real number > 0, got -1"):
        sigreg_quadrature(-1.0)
    with pytest.raises(ValueError, match="num_points must be an int >= 2, got 1"):
        sigreg_quadrature(3.0, 1)


def test_the_null_expectation_is_the_integral_of_its_closed_form():
    # integral over [-3, 3] of exp(-t^2/2) (1 - exp(-t^2))
    exact = math.sqrt(2 * math.pi) * math.erf(3 / math.sqrt(2)) - math.sqrt(
        2 * math.pi / 3
    ) * math.erf(3 * math.sqrt(1.5))
    assert sigreg_null_expectation() == pytest.approx(exact, abs=1e-3)


def test_epps_pulley_of_gaussian_samples_averages_to_the_null_expectation_at_any_n():
    for n, seed in ((16, 0), (256, 1)):
        ep = epps_pulley(torch.randn(n, 4000, generator=_gen(seed), dtype=torch.float64))
        assert ep.shape == (4000,)
        standard_error = ep.std().item() / math.sqrt(len(ep))
        assert abs(ep.mean().item() - sigreg_null_expectation()) < 5 * standard_error


def test_epps_pulley_of_a_constant_sample_is_n_times_the_weighted_gap():
    t, w = sigreg_quadrature()
    c, n = 0.7, 50
    gap = 1 - 2 * torch.cos(t * c) * torch.exp(-0.5 * t.square()) + torch.exp(-t.square())
    expected = n * (w * gap).sum().item()
    assert epps_pulley(torch.full((n,), c, dtype=torch.float64)).item() == pytest.approx(expected)


def test_the_mean_of_the_per_direction_statistics_is_sigreg_loss():
    z = torch.randn(32, 8, generator=_gen()) * 1.5 + 0.3
    for kwargs in ({}, {"t_max": 2.0, "num_points": 9}):
        per_direction = sigreg_per_direction(z, step=3, num_directions=50, **kwargs)
        assert per_direction.shape == (50,)
        direct = sigreg_loss(z, step=3, num_directions=50, **kwargs).item()
        assert per_direction.mean().item() == pytest.approx(direct, rel=1e-5)
    with pytest.raises(TypeError, match=r"z must be a floating-point torch.Tensor \[N, D\]"):
        sigreg_per_direction(torch.zeros(2, 3, 4))


def test_sigreg_examples_have_the_advertised_ranks_and_variances():
    n, dim, k = 4096, 16, 2
    ex = sigreg_examples(n, dim, rank=k, seed=3)
    assert list(ex) == list(SIGREG_EXAMPLES)
    assert all(z.shape == (n, dim) and z.dtype == torch.float32 for z in ex.values())
    sd = math.sqrt(2 / (n - 1))  # of a sample variance of N(0, 1)
    assert torch.linalg.matrix_rank(ex["gaussian"]).item() == dim
    assert (ex["gaussian"].var(dim=0) - 1).abs().max().item() < 5 * sd
    assert torch.equal(ex["collapsed"], ex["collapsed"][:1].expand(n, dim))  # one row, n times
    assert ex["collapsed"][0].abs().max().item() > 0.1  # a point away from the origin
    assert torch.linalg.matrix_rank(ex["dimension_collapsed"]).item() == k
    # every coordinate is N(0, 1): unit variance, invisible to a per-coordinate variance term
    assert (ex["dimension_collapsed"].var(dim=0) - 1).abs().max().item() < 5 * sd


def test_sigreg_examples_noise_seed_and_bad_arguments():
    noisy = sigreg_examples(64, 8, collapse_noise=1e-3, seed=0)["collapsed"]
    assert 0 < (noisy - noisy.mean(dim=0)).abs().max().item() < 10e-3
    first, again = sigreg_examples(8, 4, seed=5), sigreg_examples(8, 4, seed=5)
    assert all(torch.equal(first[k], again[k]) for k in SIGREG_EXAMPLES)
    assert not torch.equal(first["gaussian"], sigreg_examples(8, 4, seed=6)["gaussian"])
    with pytest.raises(ValueError, match=r"rank must be in \[1, dim=4\], got 5"):
        sigreg_examples(8, 4, rank=5)
    with pytest.raises(ValueError, match="collapse_noise must be a finite real number >= 0"):
        sigreg_examples(8, 4, collapse_noise=-1.0)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        sigreg_examples(8, 4, seed=-1)


def test_sigreg_table_reports_sigreg_loss_and_the_per_direction_statistics():
    ex = sigreg_examples(128, 16, rank=2, seed=1)
    table, per_direction = sigreg_table(ex, step=2, num_directions=64)
    assert list(table.index) == list(SIGREG_EXAMPLES)
    for name, z in ex.items():
        direct = sigreg_loss(z, step=2, num_directions=64).item()
        assert table.loc[name, "sigreg"] == pytest.approx(direct)
        assert table.loc[name, "x_null"] == pytest.approx(direct / sigreg_null_expectation())
        assert per_direction[name].mean().item() == pytest.approx(direct, rel=1e-5)
    assert table.loc["gaussian", "above_gaussian_max"] == 0.0
    assert table.loc["collapsed", "above_gaussian_max"] == 1.0
    assert table["rank"].tolist() == [16, 1, 2]
    with pytest.raises(ValueError, match="'gaussian' entry"):
        sigreg_table({"collapsed": ex["collapsed"]})
