from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jepa_core.monitor import embedding_stats, rankme


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
