"""The one way the workbook resolves paths: from the repository, never from the cwd.

Notebooks run from JupyterLab (cwd = notebooks/), papermill (cwd = wherever it was started)
and nbval (cwd = the notebook's folder); all of them write to the same ``results/`` because
every path is built here.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The repository root: the folder holding ``pyproject.toml`` above this package.

    ``JEPA_WORKBOOK_ROOT`` overrides it (for an installed, non-editable copy).
    """
    env = os.environ.get("JEPA_WORKBOOK_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    candidate = _PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").exists():
        return candidate
    return Path.cwd().resolve()


def results_dir(*parts: str) -> Path:
    """``results/<parts...>`` under the repository root, created on demand."""
    path = repo_root().joinpath("results", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(*parts: str) -> Path:
    """``data/<parts...>``: the dataset cache (``JEPA_DATA_DIR`` overrides the root)."""
    base = (
        Path(os.environ["JEPA_DATA_DIR"]).expanduser()
        if os.environ.get("JEPA_DATA_DIR")
        else repo_root() / "data"
    )
    return base.joinpath(*parts)


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def resolve(path: str | os.PathLike) -> Path:
    """A user-given path: absolute stays; a relative one is taken from the current folder when
    it exists there, otherwise from the repository root (so ``../shared/datasets/cifar10``
    means the same thing from a notebook, papermill or the shell)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.exists():
        return p.resolve()
    return (repo_root() / p).resolve()
