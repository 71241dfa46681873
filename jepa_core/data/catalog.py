"""What datasets the workbook knows by name, and the statistics each is normalised with.

``x_norm = (x - mean) / std`` per channel with ``x`` in [0, 1]: each set's own statistics where
it has well-known ones (MNIST, Fashion-MNIST, CIFAR-10, digits), ImageNet's otherwise.
"""

from __future__ import annotations

DATASET_NAMES = (
    "mnist5k",
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "stl10",
    "imagefolder",
)
EMBEDDED_NAMES = ("mnist5k", "digits")
TORCHVISION_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "stl10")
# Digits and other line drawings: no flips (a flipped 2 is not a 2) and no colour jitter.
NON_NATURAL_NAMES = ("mnist5k", "mnist", "fashion_mnist", "digits")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist5k": ((0.1307,), (0.3081,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": (IMAGENET_MEAN, IMAGENET_STD),
    "stl10": (IMAGENET_MEAN, IMAGENET_STD),
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),
    # ImageNet's 3-channel statistics do not fit a 1-channel set: these are the mean / std of
    # all 1,797 load_digits images scaled by 1/16.
    "digits": ((0.3053,), (0.3760,)),
}

# The one fixed split of the embedded sets: independent of any run seed, so that every run,
# whatever its seed, is evaluated on the same test images.
EMBEDDED_SPLIT_SEED = 0
