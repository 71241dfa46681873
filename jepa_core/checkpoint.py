"""Checkpoints that survive a crash and fail clearly.

Written atomically (a temporary file, fsync, then ``os.replace``), so a run killed while saving
keeps the previous checkpoint whole. Read with ``weights_only=True`` and checked for the
workbook's format tag, so a truncated or foreign file gives a :class:`CheckpointError` that
names the file, not a traceback from inside ``torch.load``.

A run's state (:func:`run_state`) holds its config, epoch, step, the four modules, the
optimizer and the history; :func:`resume_state` puts it back into a built run, refusing a
checkpoint written with another config (naming the keys that differ).
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .config import Config, config_diff, load_config

if TYPE_CHECKING:
    from .build import Run

FORMAT = "jepa_core.checkpoint/v1"
# What torch.load raises on a truncated, corrupt or foreign file. The weights-only unpickler,
# reading garbage as opcodes, also raises KeyError (memo lookups), IndexError (stack pops) and
# struct.error (short reads): seen when fuzzing with cut checkpoints and random bytes.
_UNREADABLE = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    KeyError,
    IndexError,
    struct.error,
)


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


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except _UNREADABLE as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(e).__name__}: {first_line}): "
            f"the file is truncated, "
            f"corrupt or not a PyTorch file. Delete it to start afresh, or point at another."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a JEPA Workbook checkpoint (format {found!r}, "
            f"expected {FORMAT!r})"
        )
    return state


_MODULES = ("context_encoder", "target_encoder", "predictor", "objective")
_STATE_KEYS = ("config", "epoch", "step", *_MODULES, "optimizer", "history")


def run_state(
    run: Run, epoch: int, step: int, history: list[dict], stopped: str | None = None
) -> dict[str, Any]:
    return {
        "config": run.cfg.to_dict(),
        "preset": run.cfg.preset,
        "epoch": epoch,
        "step": step,
        **{name: getattr(run, name).state_dict() for name in _MODULES},
        "optimizer": run.optimizer.state_dict(),
        "history": history,
        "stopped": stopped,
    }


def saved_config(
    state: dict[str, Any], path: Path, overrides: dict[str, Any] | None = None
) -> Config:
    """The config a checkpoint was written with; a CheckpointError if this version cannot use it."""
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} lacks {', '.join(missing)}: it was not written by "
            "jepa_core.train (or by an incompatible version)"
        )
    try:
        return load_config(state["config"] | {"preset": state.get("preset")}, overrides)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a config this version cannot read ({e}); "
            "start a new output_dir or use the version that wrote it"
        ) from None


def load_modules(run: Run, state: dict[str, Any], path: Path) -> None:
    for name in _MODULES:
        try:
            getattr(run, name).load_state_dict(state[name])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(
                f"checkpoint {str(path)!r}: its {name} does not fit the model its config "
                f"builds ({first})"
            ) from None


# Keys that say where or how a run executes, not what it computes: a checkpoint resumes across them.
# Keys that change neither the trained weights nor the run's random draws: a checkpoint written
# under other values resumes (train.log_every and eval.every only change how often the history
# logs and evaluates; a finished run asked for again returns its own history).
RUN_INDEPENDENT_KEYS = (
    "train.resume",
    "train.output_dir",
    "data.num_workers",
    "train.device",
    "train.log_every",
    "eval.every",
)


def config_changes(saved: Config, cfg: Config) -> str:
    """``"key: old -> new, ..."`` for every key that makes a checkpoint of ``saved`` unusable
    for a run of ``cfg``; ``""`` when it can be resumed."""
    diff = config_diff(saved, cfg, ignore=RUN_INDEPENDENT_KEYS)
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())


def resume_state(run: Run, path: Path) -> tuple[int, int, list[dict]]:
    """Load a checkpoint into ``run``; return (epoch, step, history) to continue from."""
    state = load_checkpoint(path, map_location=run.device)
    saved = saved_config(state, path)
    if state.get("stopped"):
        raise ValueError(
            f"train.resume: the run in {str(path.parent)!r} was stopped on purpose "
            f"({state['stopped']}); it would stop again. Load it with load_trained to inspect "
            "it, or start a new output_dir"
        )
    changes = config_changes(saved, run.cfg)
    if changes:
        raise ValueError(
            f"train.resume: the checkpoint {str(path)!r} was written with a different config "
            f"({changes}); resume with the same config or start a new output_dir"
        )
    load_modules(run, state, path)
    run.optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]), int(state["step"]), list(state["history"])
