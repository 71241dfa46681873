from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from jepa_core.data import make_datasets
from jepa_core.models import build_models
from jepa_core.monitor import embedding_stats, encoder_position_share, position_share, rankme


def _equal_singular_values(n: int, d: int, rank: int, seed: int = 0) -> torch.Tensor:
    """U V^T with orthonormal columns: an n x d matrix whose `rank` singular values are all 1."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, rank, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, rank, generator=g, dtype=torch.float64))
    return u @ v.T


@pytest.mark.parametrize("rank", [1, 3, 10])
def test_rankme_of_rank_r_matrix_with_equal_singular_values_is_r(rank):
    z = _equal_singular_values(64, 16, rank)
    assert rankme(z) == pytest.approx(rank, abs=1e-3)


def test_rankme_of_a_rank_one_matrix_is_one():
    z = torch.outer(torch.arange(1.0, 33.0), torch.linspace(-1, 2, 8))
    assert rankme(z) == pytest.approx(1.0, abs=1e-3)


def test_rankme_of_many_gaussian_samples_is_close_to_the_dimension():
    torch.manual_seed(0)
    z = torch.randn(4000, 32)
    assert 0.95 * 32 < rankme(z) <= 32


def test_rankme_ignores_scale_and_accepts_numpy_and_float32():
    z = _equal_singular_values(40, 10, 4)
    assert rankme(1000.0 * z.float().numpy()) == pytest.approx(4.0, abs=1e-3)


def test_rankme_of_the_zero_matrix_is_one_not_nan():
    assert rankme(torch.zeros(8, 4)) == 1.0


def test_rankme_of_non_finite_embeddings_is_nan():
    z = torch.randn(8, 4)
    z[2, 1] = math.nan
    assert math.isnan(rankme(z))


def test_rankme_rejects_non_2d_input_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        rankme(torch.zeros(2, 3, 4))


def test_embedding_stats_std_matches_torch_std_on_hand_data():
    z = torch.tensor([[1.0, 0.0, 5.0], [3.0, 0.0, 5.0], [5.0, 3.0, 5.0]])
    stats = embedding_stats(z)
    per_dim = torch.std(z, dim=0)  # [2, sqrt(3), 0]
    assert stats["std_mean"] == pytest.approx(float(per_dim.mean()))
    assert stats["std_mean"] == pytest.approx((2.0 + math.sqrt(3.0)) / 3)
    assert stats["std_min"] == 0.0


def test_embedding_stats_are_python_floats_and_do_not_keep_the_graph():
    z = torch.randn(6, 3, requires_grad=True)
    stats = embedding_stats(z * 2)
    assert set(stats) == {"std_mean", "std_min", "rankme", "mean_cosine", "norm_mean"}
    assert all(type(v) is float for v in stats.values())


def test_mean_cosine_is_one_for_identical_rows():
    z = torch.tensor([1.0, -2.0, 0.5]).repeat(5, 1)
    assert embedding_stats(z)["mean_cosine"] == pytest.approx(1.0)


def test_mean_cosine_matches_pairwise_average_on_random_rows():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 4)) + 0.5
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    pairs = [unit[i] @ unit[j] for i in range(7) for j in range(7) if i != j]
    assert embedding_stats(z)["mean_cosine"] == pytest.approx(np.mean(pairs), rel=1e-12)


def test_mean_cosine_is_minus_one_for_two_opposite_rows():
    z = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    assert embedding_stats(z)["mean_cosine"] == pytest.approx(-1.0)


def test_norm_mean_is_the_mean_row_norm():
    z = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert embedding_stats(z)["norm_mean"] == pytest.approx(3.0)


def test_embedding_stats_rankme_agrees_with_rankme():
    z = _equal_singular_values(30, 8, 5)
    assert embedding_stats(z)["rankme"] == pytest.approx(rankme(z))


@pytest.mark.parametrize("shape", [(1, 4), (4,)])
def test_embedding_stats_needs_at_least_two_rows(shape):
    with pytest.raises(ValueError, match="z"):
        embedding_stats(torch.zeros(shape))


def test_embedding_stats_rejects_lists_with_type_error():
    with pytest.raises(TypeError, match="z"):
        embedding_stats([[1.0, 2.0], [3.0, 4.0]])


# --- position share ------------------------------------------------------------------------
def _position_embedding(p: int, d: int, variance: float, seed: int = 0) -> torch.Tensor:
    """[P, D], centred over positions, with mean squared coordinate exactly ``variance``."""
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(p, d, generator=g, dtype=torch.float64)
    e = e - e.mean(dim=0)
    return e * math.sqrt(variance / e.pow(2).mean())


def test_position_share_on_a_hand_example_is_one_half():
    # tokens [N=2, P=2, D=1]: image 0 = (0, 2), image 1 = (2, 4); per-position means (1, 3),
    # residual 4 * 1^2 = 4; overall mean 2, total 4 + 0 + 0 + 4 = 8; share 1 - 4/8.
    tokens = torch.tensor([[[0.0], [2.0]], [[2.0], [4.0]]])
    assert position_share(tokens) == pytest.approx(0.5, abs=1e-12)


def test_position_share_of_identical_images_is_one():
    e = _position_embedding(16, 8, 1.0).float()
    assert position_share(e.expand(5, 16, 8)) == pytest.approx(1.0, abs=1e-6)


def test_position_share_of_constant_tokens_is_one_by_convention():
    assert position_share(torch.full((4, 3, 2), 2.5)) == 1.0
    assert position_share(np.zeros((2, 2, 1))) == 1.0


@pytest.mark.parametrize("variance", [1 / 3, 1.0, 9.0])
def test_position_share_of_embedding_plus_noise_matches_the_variance_ratio(variance):
    # h_np = e_p + eps_np, e centred over p with mean squared coordinate v, eps ~ N(0, s^2 I).
    # Residual W = sum ||h_np - mu_p||^2 = s^2 chi2_k, k = P D (N - 1): E[W] = k s^2.
    # Total T = W + N sum_p ||e_p + epsbar_p - epsbar||^2: E[T] = N P D v + (N P - 1) D s^2.
    # Share = 1 - W/T. Relative spread of W/T <= that of W, sqrt(2 / k), plus that of T:
    # std(T) <= s^2 sqrt(2k) (W) + 2 s sqrt(N P D v) (cross term) + s^2 sqrt(2 (P - 1) D)
    # (noise between positions). Tolerance: 6 of these spreads.
    n, p, d, s = 300, 16, 16, 1.0
    e = _position_embedding(p, d, variance, seed=1)
    g = torch.Generator().manual_seed(2)
    tokens = e + s * torch.randn(n, p, d, generator=g, dtype=torch.float64)
    k = p * d * (n - 1)
    mean_w, mean_t = k * s**2, n * p * d * variance + (n * p - 1) * d * s**2
    std_t = s**2 * math.sqrt(2 * k) + 2 * s * math.sqrt(n * p * d * variance)
    std_t += s**2 * math.sqrt(2 * (p - 1) * d)
    expected = 1 - mean_w / mean_t
    tolerance = 6 * (mean_w / mean_t) * (math.sqrt(2 / k) + std_t / mean_t)
    assert tolerance < 0.1  # tight enough to tell the shares 1/4, 1/2 and 9/10 apart
    assert position_share(tokens) == pytest.approx(expected, abs=tolerance)
    assert expected == pytest.approx(variance / (variance + s**2), abs=0.01)


def test_position_share_of_features_independent_of_position_is_close_to_zero():
    # i.i.d. N(0, 1) tokens: between-position and residual sums of squares are independent
    # chi2 with (P - 1) D and P (N - 1) D degrees of freedom, so the share is
    # Beta(a, b), a = (P - 1) D / 2, b = P (N - 1) D / 2: mean (P - 1) / (N P - 1).
    n, p, d = 100, 16, 8
    a, b = (p - 1) * d / 2, p * (n - 1) * d / 2
    mean = a / (a + b)
    std = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    tokens = torch.randn(n, p, d, generator=torch.Generator().manual_seed(3))
    share = position_share(tokens)
    assert mean + 6 * std < 0.02
    assert abs(share - mean) < 6 * std


def test_position_share_ignores_scale_and_offset_and_keeps_no_graph():
    g = torch.Generator().manual_seed(4)
    tokens = torch.randn(6, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    share = position_share(tokens)
    assert type(share) is float
    assert position_share(3.0 * tokens - 7.0) == pytest.approx(share, abs=1e-9)


@pytest.mark.parametrize(
    ("tokens", "error", "match"),
    [
        ([[[1.0, 2.0]]], TypeError, "tokens must be a torch.Tensor"),
        (torch.ones(3, 4, 2, dtype=torch.int64), TypeError, "floating"),
        (torch.randn(3, 4), ValueError, r"\[N, P, D\].*\(3, 4\)"),
        (torch.randn(1, 4, 2), ValueError, r"N >= 2.*\(1, 4, 2\)"),
        (torch.randn(3, 1, 2), ValueError, r"P >= 2.*\(3, 1, 2\)"),
        (torch.randn(3, 4, 0), ValueError, r"D >= 1.*\(3, 4, 0\)"),
        (torch.tensor([[[1.0], [math.nan]], [[0.0], [1.0]]]), ValueError, "finite"),
    ],
)
def test_position_share_rejects_bad_tokens_naming_what_it_accepts(tokens, error, match):
    with pytest.raises(error, match=match):
        position_share(tokens)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    _, test = make_datasets("mnist5k")
    return torch.stack([test[i][0] for i in range(40)])


def test_encoder_position_share_of_a_fresh_vit_on_digits_is_between_0_and_1(digits):
    torch.manual_seed(0)
    context, target, _ = build_models("cpu", img_size=28, patch_size=4, in_chans=1)
    context.train()
    context.blocks[0].eval()  # a mixed state must come back exactly
    modes = [m.training for m in context.modules()]
    share = encoder_position_share(context, digits, batch_size=16)
    assert 0.0 < share < 1.0
    assert [m.training for m in context.modules()] == modes
    assert not target.training
    with torch.no_grad():
        direct = position_share(target(digits))
    assert encoder_position_share(target, digits) == pytest.approx(direct, abs=1e-6)
    assert not target.training
    # context and target are equal at initialisation: same tokens in eval mode, same share
    assert share == pytest.approx(direct, abs=1e-6)


class _Flat(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def test_encoder_position_share_restores_the_mode_when_the_encoder_output_is_wrong():
    encoder = _Flat().train()
    with pytest.raises(ValueError, match=r"\[B, N, D\]"):
        encoder_position_share(encoder, torch.randn(4, 1, 2, 2))
    assert encoder.training


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((_Flat(), torch.randn(4, 4)), ValueError, r"images must be a tensor \[M, C, H, W\]"),
        ((_Flat(), torch.randn(1, 1, 2, 2)), ValueError, r"M >= 2.*\(1, 1, 2, 2\)"),
        ((_Flat(), torch.randn(4, 1, 2, 2), 0), ValueError, "batch_size must be an int >= 1"),
        ((_Flat(), torch.randn(4, 1, 2, 2), 2.5), TypeError, "batch_size"),
        ((lambda x: x, torch.randn(4, 1, 2, 2)), TypeError, "encoder must be a torch.nn.Module"),
    ],
)
def test_encoder_position_share_rejects_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        encoder_position_share(*args)
