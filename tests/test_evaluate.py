from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from jepa_core.evaluate import (
    extract_features,
    knn_accuracy,
    knn_predict,
    linear_probe_accuracy,
    raw_pixel_features,
)


def _clusters(n_per_class: int, n_classes: int, dim: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    x = centres[labels] + rng.normal(scale=spread, size=(labels.size, dim))
    order = rng.permutation(labels.size)
    return x[order].astype(np.float32), labels[order]


def _knn_brute_force(train_x, train_y, test_x, k, temperature):
    train = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    test = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    predictions = []
    for row in test:
        sims = [float(row @ t) for t in train]
        nearest = sorted(range(len(sims)), key=lambda j: -sims[j])[:k]
        votes: dict[int, float] = {}
        for j in nearest:
            votes[int(train_y[j])] = votes.get(int(train_y[j]), 0.0) + np.exp(sims[j] / temperature)
        predictions.append(max(sorted(votes), key=lambda c: votes[c]))
    return np.array(predictions)


# --- k-NN ----------------------------------------------------------------------------------


def test_knn_accuracy_is_one_on_well_separated_clusters():
    train_x, train_y = _clusters(50, 5, 16, spread=0.5, seed=0)
    test_x, test_y = _clusters(20, 5, 16, spread=0.5, seed=0)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=10) == 1.0


def test_knn_accuracy_is_near_chance_on_random_labels():
    rng = np.random.default_rng(1)
    train_x = rng.normal(size=(2000, 8)).astype(np.float32)
    test_x = rng.normal(size=(2000, 8)).astype(np.float32)
    train_y = rng.integers(0, 4, size=2000)
    test_y = rng.integers(0, 4, size=2000)
    assert abs(knn_accuracy(train_x, train_y, test_x, test_y, k=20) - 0.25) < 0.05


@pytest.mark.parametrize(("k", "temperature"), [(1, 0.07), (5, 0.07), (15, 0.5)])
def test_knn_predict_matches_a_brute_force_weighted_vote(k, temperature):
    rng = np.random.default_rng(2)
    train_x = rng.normal(size=(60, 6))
    train_y = rng.integers(0, 4, size=60)
    test_x = rng.normal(size=(25, 6))
    expected = _knn_brute_force(train_x, train_y, test_x, k, temperature)
    predicted = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature)
    np.testing.assert_array_equal(predicted.numpy(), expected)


def test_knn_predictions_do_not_depend_on_chunk_size():
    train_x, train_y = _clusters(40, 6, 12, spread=8.0, seed=3)
    test_x, _ = _clusters(15, 6, 12, spread=8.0, seed=4)
    whole = knn_predict(train_x, train_y, test_x, k=7, chunk_size=10_000)
    for chunk_size in (1, 7, 64):
        assert torch.equal(knn_predict(train_x, train_y, test_x, k=7, chunk_size=chunk_size), whole)


def test_knn_accepts_tensors_and_arrays_alike():
    train_x, train_y = _clusters(20, 3, 5, spread=4.0, seed=5)
    test_x, test_y = _clusters(10, 3, 5, spread=4.0, seed=6)
    from_numpy = knn_accuracy(train_x, train_y, test_x, test_y, k=5)
    from_torch = knn_accuracy(
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
        k=5,
    )
    assert from_numpy == from_torch


def test_knn_center_subtracts_the_training_mean_before_cosine():
    # Along a shared offset, every point has cosine ~1 with every other; centring restores the
    # class structure.
    base_x, train_y = _clusters(30, 3, 8, spread=0.5, seed=7)
    test_base, test_y = _clusters(10, 3, 8, spread=0.5, seed=7)
    offset = np.full(8, 1000.0, dtype=np.float32)
    centred = knn_accuracy(base_x + offset, train_y, test_base + offset, test_y, k=5, center=True)
    assert centred == 1.0
    expected = _knn_brute_force(
        base_x - base_x.mean(0), train_y, test_base - base_x.mean(0), 5, 0.07
    )
    predicted = knn_predict(base_x + offset, train_y, test_base + offset, k=5, center=True)
    assert (predicted.numpy() == expected).mean() > 0.95  # float32 rounding after the offset


def test_k_larger_than_the_training_set_raises_naming_k_and_the_size():
    with pytest.raises(ValueError, match=r"\(10\).*k=11"):
        knn_predict(np.ones((10, 3)), np.zeros(10, dtype=np.int64), np.ones((2, 3)), k=11)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"k": 0}, ValueError, "k"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"k": 2.5}, TypeError, "k"),
    ],
)
def test_bad_knn_arguments_raise_naming_them(kwargs, error, name):
    with pytest.raises(error, match=name):
        knn_predict(np.ones((30, 3)), np.zeros(30, dtype=np.int64), np.ones((2, 3)), **kwargs)


def test_knn_label_count_mismatch_raises():
    with pytest.raises(ValueError, match="test_y"):
        knn_accuracy(
            np.ones((30, 3)),
            np.zeros(30, dtype=np.int64),
            np.ones((2, 3)),
            np.zeros(3, dtype=np.int64),
        )


# --- linear probe --------------------------------------------------------------------------


def test_linear_probe_is_accurate_on_linearly_separable_data():
    train_x, train_y = _clusters(60, 4, 10, spread=1.0, seed=8)
    test_x, test_y = _clusters(30, 4, 10, spread=1.0, seed=8)
    assert (
        linear_probe_accuracy(torch.from_numpy(train_x), torch.from_numpy(train_y), test_x, test_y)
        > 0.95
    )


def test_linear_probe_is_near_chance_on_random_labels():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(800, 4))
    y = rng.integers(0, 2, size=800)
    assert abs(linear_probe_accuracy(x[:400], y[:400], x[400:], y[400:]) - 0.5) < 0.1


def test_linear_probe_rejects_mismatched_feature_sizes():
    with pytest.raises(ValueError, match="feature size"):
        linear_probe_accuracy(np.ones((4, 3)), np.arange(4) % 2, np.ones((2, 5)), np.arange(2))


# --- feature extraction --------------------------------------------------------------------


class _Patchify(nn.Module):
    """A fixed 'encoder': 2x2 patches of a 1-channel 4x4 image, projected to D = 3."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.dropout = nn.Dropout(0.5)
        self.seen_training: list[bool] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        patches = images.unfold(2, 2, 2).unfold(3, 2, 2).reshape(images.shape[0], 4, 4)
        return self.dropout(self.proj(patches))  # [B, N=4, D=3]


def _loader(two_views: bool = False):
    g = torch.Generator().manual_seed(0)
    batches = []
    for start in (0, 3):
        images = torch.randn(3, 1, 4, 4, generator=g)
        labels = torch.arange(start, start + 3)
        batches.append((((images, images.flip(0)) if two_views else images), labels))
    return batches


@pytest.mark.parametrize(("pool", "width"), [("mean", 3), ("flatten", 12)])
def test_extract_features_shapes_per_pool(pool, width):
    features, labels = extract_features(_Patchify(), _loader(), pool=pool)
    assert features.shape == (6, width)
    assert features.dtype == torch.float32 and features.device.type == "cpu"
    assert labels.dtype == torch.int64
    assert labels.tolist() == list(range(6))


def test_mean_pool_is_the_token_average_of_flatten():
    encoder = _Patchify()
    mean, _ = extract_features(encoder, _loader(), pool="mean")
    flat, _ = extract_features(encoder, _loader(), pool="flatten")
    torch.testing.assert_close(mean, flat.reshape(6, 4, 3).mean(dim=1))


def test_extract_features_runs_in_eval_mode_and_restores_train_mode():
    encoder = _Patchify().train()
    encoder.proj.eval()  # a mixed state must come back exactly
    extract_features(encoder, _loader())
    assert encoder.seen_training == [False, False]
    assert encoder.training and encoder.dropout.training and not encoder.proj.training


def test_extract_features_restores_mode_even_when_the_loader_fails():
    encoder = _Patchify().train()
    with pytest.raises(ValueError, match="loader"):
        extract_features(encoder, [(torch.randn(2, 1, 4, 4),)])
    assert encoder.training


def test_extract_features_takes_the_first_of_two_views():
    encoder = _Patchify()
    one_view, _ = extract_features(encoder, _loader())
    first_of_two, _ = extract_features(encoder, _loader(two_views=True))
    assert torch.equal(one_view, first_of_two)


def test_extract_features_unknown_pool_lists_the_valid_ones():
    with pytest.raises(ValueError, match="mean.*flatten"):
        extract_features(_Patchify(), _loader(), pool="cls")


def test_extract_features_rejects_an_encoder_without_token_output():
    with pytest.raises(ValueError, match=r"\[B, N, D\]"):
        extract_features(nn.Flatten(), _loader())


def test_feature_extraction_leaves_the_global_rng_where_it_was():
    """A DataLoader draws a base seed from the global torch RNG on every pass, and with
    num_workers=0 the training's augmentations draw from that RNG too: an evaluation in the
    middle of an epoch must not shift the draws after it."""
    dataset = TensorDataset(torch.randn(6, 1, 4, 4), torch.arange(6))
    encoder = _Patchify()  # built first: its initialisation draws from the global RNG
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    extract_features(encoder, DataLoader(dataset, batch_size=3))
    raw_pixel_features(DataLoader(dataset, batch_size=3))
    assert torch.equal(torch.rand(3), expected)


def test_raw_pixel_features_are_the_flattened_images():
    features, labels = raw_pixel_features(_loader(two_views=True))
    images = torch.cat([images for images, _ in _loader()])
    assert torch.equal(features, images.reshape(6, 16))
    assert labels.tolist() == list(range(6))
