"""The one check the public entry points share: an integer argument with a lower bound.

Entry points a notebook or a user calls directly (``sample_multiblock_masks``, ``knn_accuracy``,
the models' constructors, the lessons' helpers) check their arguments with it and name the
culprit; what they call internally trusts what was checked.
"""

from __future__ import annotations

from numbers import Integral


def int_at_least(name: str, value: object, minimum: int) -> int:
    """``value`` as an int, or a TypeError / ValueError naming ``name`` and the bound."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(
            f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)
