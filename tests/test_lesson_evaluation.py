from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_runs import TINY_DIGITS as TINY
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import jepa_core.build as build
from jepa_core.build import build_run, shared_run_dir
from jepa_core.config import load_config
from jepa_core.evaluate import knn_accuracy, linear_probe_accuracy
from jepa_core.lessons.evaluation import (
    FeatureSplit,
    accuracy_table,
    comparison_table,
    evaluation_loaders,
    feature_sets,
    initial_encoder,
    per_class_accuracy,
    pixel_feature_sets,
    same_weights,
    train_or_resume,
)
from jepa_core.lessons.evaluation_figures import (
    plot_comparison,
    plot_knn_vs_k,
    plot_per_class,
    plot_projection,
    project_2d,
)
from jepa_core.lessons.position_probe import (
    first_images,
    plot_position_share,
    position_share_table,
)
from jepa_core.monitor import position_share


class PatchTokens(nn.Module):
    """A parameter-free 'encoder': 2x2 patches of a 4x4 image as 4 tokens of 4 numbers."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        patches = images.reshape(b, 2, 2, 2, 2).permute(0, 1, 3, 2, 4)
        return patches.reshape(b, 4, 4)


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.randn(n, 1, 4, 4, generator=g) * 0.3
    # class c lights up the top-left pixel of patch c (positions differ, sums do not)
    for c, (r, col) in enumerate([(0, 0), (0, 2), (2, 0)]):
        images[labels == c, 0, r, col] += 3.0
    return images, labels


def _loader(n: int, seed: int) -> DataLoader:
    return DataLoader(TensorDataset(*_images(n, seed)), batch_size=16, shuffle=False)


def _split(method="m", encoder="target", pool="mean", n=60, dim=5, seed=0, centred=False):
    g = torch.Generator().manual_seed(seed)
    ytr, yte = torch.arange(n) % 3, torch.arange(n // 2) % 3
    centres = torch.randn(3, dim, generator=g) * 4
    xtr = centres[ytr] + torch.randn(n, dim, generator=g)
    xte = centres[yte] + torch.randn(n // 2, dim, generator=g)
    return FeatureSplit(method, encoder, pool, xtr, ytr, xte, yte, centred=centred)


# --- feature_sets ---------------------------------------------------------------------------
def test_feature_sets_mean_pool_is_the_token_average_and_flatten_keeps_every_token():
    images, _ = _images(20, seed=1)
    tokens = PatchTokens()(images)
    sets = feature_sets({("toy", "target"): PatchTokens()}, _loader(20, 1), _loader(10, 2))
    assert set(sets) == {("toy", "target", "mean"), ("toy", "target", "flatten")}
    torch.testing.assert_close(sets[("toy", "target", "mean")].train_x, tokens.mean(dim=1))
    torch.testing.assert_close(sets[("toy", "target", "flatten")].train_x, tokens.reshape(20, 16))
    assert sets[("toy", "target", "mean")].test_x.shape == (10, 4)


class CountingTokens(PatchTokens):
    """PatchTokens that counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(images)


def test_feature_sets_runs_an_encoder_named_twice_once_and_gives_both_keys_its_features():
    shared, other = CountingTokens(), CountingTokens()
    encoders = {("lejepa", "target"): shared, ("lejepa", "context"): shared, ("b", "x"): other}
    sets = feature_sets(encoders, _loader(20, 1), _loader(10, 2))
    assert shared.calls == other.calls == 3  # batch 16: 2 batches of 20 images, 1 of 10
    for pool in ("mean", "flatten"):
        a, b = sets[("lejepa", "target", pool)], sets[("lejepa", "context", pool)]
        assert (a.method, a.encoder, b.encoder) == ("lejepa", "target", "context")
        assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)


def test_feature_sets_rejects_unknown_pool_and_bad_keys():
    with pytest.raises(ValueError, match="pools"):
        feature_sets({("a", "b"): PatchTokens()}, _loader(8, 0), _loader(8, 1), pools=("max",))
    with pytest.raises(ValueError, match="keys"):
        feature_sets({"a": PatchTokens()}, _loader(8, 0), _loader(8, 1))


def test_pixel_feature_sets_share_the_pixels_and_only_the_copy_is_centred():
    sets = pixel_feature_sets(_loader(12, 0), _loader(6, 1))
    plain, centred = (
        sets[("raw pixels", "-", "pixels")],
        sets[("raw pixels", "-", "pixels, centred")],
    )
    assert not plain.centred and centred.centred
    assert plain.train_x is centred.train_x and plain.train_x.shape == (12, 16)


# --- accuracy_table / comparison_table -------------------------------------------------------
def test_accuracy_table_matches_the_evaluate_functions_row_by_row():
    split = _split()
    table = accuracy_table({split.key: split}, k_values=(1, 5))
    row = table.iloc[0]
    assert row["knn1"] == knn_accuracy(
        split.train_x, split.train_y, split.test_x, split.test_y, k=1
    )
    assert row["knn5"] == knn_accuracy(
        split.train_x, split.train_y, split.test_x, split.test_y, k=5
    )
    assert row["linear_probe"] == linear_probe_accuracy(
        split.train_x, split.train_y, split.test_x, split.test_y
    )
    assert row["dim"] == 5


def test_accuracy_table_centres_only_splits_marked_centred():
    # Two classes on one ray from the origin (x = 10 and x = 20): every cosine similarity is 1,
    # so uncentred k-NN cannot tell them apart; centred, they point in opposite directions.
    def ray(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 2
        x = torch.zeros(n, 2)
        x[:, 0] = 10.0 + 10.0 * y + torch.linspace(-1, 1, n)
        return x, y

    (xtr, ytr), (xte, yte) = ray(40), ray(20)
    plain = FeatureSplit("p", "-", "plain", xtr, ytr, xte, yte)
    centred = FeatureSplit("p", "-", "centred", xtr, ytr, xte, yte, centred=True)
    table = accuracy_table({"a": plain, "b": centred}, k_values=(5,), linear_probe=False).set_index(
        "pool"
    )
    assert table.loc["centred", "knn5"] == 1.0
    assert table.loc["plain", "knn5"] <= 0.6
    assert table["linear_probe"].isna().all()


def test_accuracy_table_probes_only_the_splits_the_predicate_accepts():
    splits = {"t": _split(encoder="target"), "c": _split(encoder="context", seed=1)}
    table = accuracy_table(splits, k_values=(3,), linear_probe=lambda s: s.encoder == "target")
    table = table.set_index("encoder")
    assert np.isnan(table.loc["context", "linear_probe"])
    assert 0.0 <= table.loc["target", "linear_probe"] <= 1.0


def test_accuracy_table_refuses_k_larger_than_the_training_split():
    with pytest.raises(ValueError, match="exceed"):
        accuracy_table({"a": _split(n=12)}, k_values=(20,))
    with pytest.raises(ValueError, match="k_values"):
        accuracy_table({"a": _split()}, k_values=(0,))


def test_comparison_table_keeps_the_chosen_encoder_and_both_baselines():
    splits = [
        _split("ijepa", "target"),
        _split("ijepa", "context"),
        _split("init", "target"),
        _split("raw pixels", "-", "pixels"),
    ]
    table = accuracy_table({s.key: s for s in splits}, k_values=(20,), linear_probe=False)
    small = comparison_table(table, encoder="target", k=20)
    assert list(small.columns) == ["method", "encoder", "pool", "knn20", "linear_probe"]
    assert sorted(small["method"]) == ["ijepa", "init", "raw pixels"]
    with pytest.raises(ValueError, match="k=5"):
        comparison_table(table, k=5)


# --- per-class accuracy ----------------------------------------------------------------------
def test_per_class_accuracy_counts_hits_within_each_true_class():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 0, 1, 0, 0])
    table = per_class_accuracy(pred, y, ["a", "b", "c", "d"])
    assert table["n"].tolist() == [3, 2, 1, 0]
    assert table["correct"].tolist() == [2, 1, 0, 0]
    np.testing.assert_allclose(table["accuracy"].iloc[:3], [2 / 3, 1 / 2, 0.0])
    assert np.isnan(table.loc["d", "accuracy"])
    assert table["correct"].sum() / table["n"].sum() == (pred == y).mean()


def test_per_class_accuracy_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="y must be class indices"):
        per_class_accuracy(np.array([0, 1]), np.array([0, 5]), ["a", "b"])
    with pytest.raises(ValueError, match="equal length"):
        per_class_accuracy(np.array([0]), np.array([0, 1]), ["a", "b"])


# --- projections and figures -----------------------------------------------------------------
def test_pca_projection_keeps_the_direction_of_largest_variance():
    rng = np.random.default_rng(0)
    x = np.zeros((200, 3))
    x[:, 1] = rng.normal(scale=10.0, size=200)  # the only large spread
    x[:, [0, 2]] = rng.normal(scale=0.1, size=(200, 2))
    xy = project_2d(x, "pca")
    assert abs(np.corrcoef(xy[:, 0], x[:, 1])[0, 1]) > 0.999
    with pytest.raises(ValueError, match="method"):
        project_2d(x, "umap")


def test_plots_draw_one_panel_or_bar_group_per_entry():
    split = _split()
    fig = plot_projection({"a": split.test_x, "b": split.test_x * 2}, split.test_y, ["0", "1", "2"])
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2
    tables = {
        "x": per_class_accuracy(np.array([0, 1, 2]), np.array([0, 1, 1]), ["0", "1", "2"]),
        "y": per_class_accuracy(np.array([0, 1, 1]), np.array([0, 1, 1]), ["0", "1", "2"]),
    }
    fig = plot_per_class(tables)
    assert len(fig.axes[0].patches) == 2 * 3
    comparison = comparison_table(
        accuracy_table(
            {s.key: s for s in (_split("a"), _split("init"), _split("raw pixels", "-", "pixels"))},
            k_values=(1, 20),
        )
    )
    fig = plot_comparison(comparison)
    assert len(fig.axes[0].patches) == 2 * len(comparison)
    fig = plot_knn_vs_k(accuracy_table({"a": split}, k_values=(1, 5, 20), linear_probe=False))
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [1, 5, 20])
    with pytest.raises(ValueError, match="rows"):
        plot_projection({"a": split.test_x}, split.test_y[:3], ["0", "1", "2"])


# --- position probe ------------------------------------------------------------------------
class PositionOnly(nn.Module):
    """An 'encoder' whose 4 tokens depend on their position only: every image, same tokens."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.arange(12.0).reshape(1, 4, 3).expand(images.shape[0], 4, 3)


def test_first_images_keeps_the_loader_order_and_caps_the_count():
    images, _ = _images(40, 0)
    torch.testing.assert_close(first_images(_loader(40, 0), 20), images[:20])
    torch.testing.assert_close(first_images(_loader(40, 0), 100), images)
    with pytest.raises(ValueError, match="limit"):
        first_images(_loader(40, 0), 0)
    with pytest.raises(ValueError, match="no images"):
        first_images([], 5)


def test_position_share_table_has_one_row_per_encoder_with_its_share():
    images, _ = _images(30, 1)
    encoders = {("init", "target=context"): PatchTokens(), ("m", "target"): PositionOnly()}
    table = position_share_table(encoders, images, batch_size=7)
    assert list(zip(table["method"], table["encoder"], strict=True)) == list(encoders)
    assert table["position_share"].iloc[0] == pytest.approx(position_share(PatchTokens()(images)))
    assert table["position_share"].iloc[1] == pytest.approx(1.0)
    assert table["position_share"].iloc[0] < 0.9  # patches of noisy digits are not all position
    with pytest.raises(ValueError, match="string pairs"):
        position_share_table({"init": PatchTokens()}, images)
    with pytest.raises(ValueError, match="non-empty"):
        position_share_table({}, images)


def test_plot_position_share_draws_one_bar_per_row_and_the_initial_share():
    table = pd.DataFrame(
        {
            "method": ["init", "a", "a"],
            "encoder": ["target=context", "target", "context"],
            "position_share": [0.6, 0.8, 0.7],
        }
    )
    fig = plot_position_share(table)
    ax = fig.axes[0]
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([0.6, 0.8, 0.7])
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.6, 0.6]]
    with pytest.raises(ValueError, match="position_share"):
        plot_position_share(table.drop(columns="position_share"))


# --- training and the initial encoder ------------------------------------------------------


def test_initial_encoder_equals_the_encoder_a_run_starts_from(tmp_path):
    cfg = load_config("ijepa", {**TINY, "train.output_dir": str(tmp_path / "run")})
    fresh = build_run(cfg)
    init = initial_encoder(cfg)
    assert same_weights(init, fresh.context_encoder)
    assert same_weights(init, fresh.target_encoder)
    other_seed = initial_encoder(load_config("ijepa", {**TINY, "train.seed": 1}))
    assert not same_weights(init, other_seed)
    assert not (tmp_path / "run").exists()  # building a run to read its encoders writes nothing


def test_train_or_resume_shares_one_folder_per_config(tmp_path):
    first = train_or_resume("ijepa", TINY, tmp_path)
    cfg = load_config("ijepa", TINY)
    assert first.checkpoint_path == shared_run_dir(cfg, tmp_path) / "checkpoint.pt"
    assert first.checkpoint_path.parent.parent == tmp_path
    # asked again, even with other logging, the finished run returns as it is
    again = train_or_resume("ijepa", {**TINY, "train.log_every": 1}, tmp_path)
    assert again.checkpoint_path == first.checkpoint_path
    pd.testing.assert_frame_equal(again.history, first.history)
    assert same_weights(again.target_encoder, first.target_encoder)
    changed = train_or_resume("ijepa", {**TINY, "train.batch_size": 16}, tmp_path)
    assert changed.checkpoint_path.parent != first.checkpoint_path.parent
    assert first.checkpoint_path.exists()  # another config never overwrites a finished run
    assert (
        changed.config.train.batch_size == 16 and int(changed.history["step"].iloc[-1]) == 64 // 16
    )


def test_the_run_store_is_keyed_by_the_library_source_too(tmp_path, monkeypatch):
    """A recipe change no config key names (new views, a fixed loss) must not reuse a finished
    run of the old code: the same config gets another folder once the library changes."""
    cfg = load_config("ijepa", TINY)
    before = shared_run_dir(cfg, tmp_path)
    assert shared_run_dir(load_config("ijepa", TINY), tmp_path) == before
    monkeypatch.setattr(build, "library_fingerprint", lambda: "the library after an edit")
    assert shared_run_dir(cfg, tmp_path) != before


def test_the_library_fingerprint_follows_the_library_and_only_it(tmp_path):
    package = Path(build.__file__).parent

    def copy_with(name: str, edited: str | None) -> Path:
        """A copy of the package, ``edited`` (a file under it) given one more comment line;
        every copy is a new path, so the fingerprint's cache never answers for it."""
        copy = tmp_path / name / "jepa_core"
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
        if edited:
            path = copy / edited
            path.write_text(path.read_text() + "\n# an edit\n")
        return copy

    original = build.library_fingerprint(package)
    assert build.library_fingerprint(copy_with("same", None)) == original
    assert build.library_fingerprint(copy_with("lesson", "lessons/collapse.py")) == original
    assert build.library_fingerprint(copy_with("views", "data/views.py")) != original
    assert build.library_fingerprint(copy_with("loss", "losses.py")) != original


def test_train_or_resume_rejects_unknown_methods(tmp_path):
    with pytest.raises(ValueError, match="method"):
        train_or_resume("byol", {}, tmp_path)


def test_evaluation_loaders_cap_both_splits_and_keep_the_class_names():
    cfg = load_config("ijepa", TINY)
    full_test = build_run(cfg).test_set
    train_loader, test_loader = evaluation_loaders(cfg, batch_size=64)
    assert len(train_loader.dataset) == 40
    assert len(test_loader.dataset) == len(full_test)
    _, small_test = evaluation_loaders(cfg, test_samples=25)
    assert len(small_test.dataset) == 25 and small_test.dataset.classes == full_test.classes
    with pytest.raises(ValueError, match="test_samples"):
        evaluation_loaders(cfg, test_samples=0)
