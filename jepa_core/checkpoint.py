"""Checkpoints that survive a crash and fail clearly.

Written atomically (a temporary file, fsync, then ``os.replace``), so a run killed while saving
keeps the previous checkpoint whole. Read with ``weights_only=True`` and checked for the
workbook's format tag, so a truncated or foreign file gives a :class:`CheckpointError` that
names the file, not a traceback from inside ``torch.load``.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "jepa_core.checkpoint/v1"
# What torch.load raises on a truncated, corrupt or foreign file. The weights-only unpickler,
# reading garbage as opcodes, also raises KeyError (memo lookups), IndexError (stack pops) and
# struct.error (short reads): seen when fuzzing with cut checkpoints and random bytes.
_UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile,
               KeyError, IndexError, struct.error)


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: missing, truncated, foreign or incompatible."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A failed save (disk full, unpicklable state, Ctrl-C) leaves the previous checkpoint
        # as it was and no half-written .tmp beside it.
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except _UNREADABLE as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(e).__name__}: {first_line}): the file is truncated, "
            f"corrupt or not a PyTorch file. Delete it to start afresh, or point at another.") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a JEPA Workbook checkpoint (format {found!r}, "
            f"expected {FORMAT!r})")
    return state
