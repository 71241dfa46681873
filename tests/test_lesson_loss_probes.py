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
from jepa_core.losses import vicreg_loss
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
