"""Overrides for training runs of seconds, shared by the tests that train."""

from __future__ import annotations

from pathlib import Path


def tiny(out: Path, **extra) -> dict:
    """Overrides for a run of seconds: 64 images, 2 steps of 32 per epoch, 2 epochs, k-NN
    only at initialisation and at the end."""
    return {
        "data.train_samples": 64,
        "train.batch_size": 32,
        "train.epochs": 2,
        "eval.every": 0,
        "eval.train_samples": 100,
        "monitor.samples": 64,
        "train.device": "cpu",
        "train.output_dir": str(out),
        **extra,
    }


# A run of seconds on the 8x8 ``digits`` set (a 4x4 grid of 2-px patches), one epoch, collapse
# alarms off; for tests that train runs into a store (``train.output_dir`` left to it).
TINY_DIGITS = {
    "data.name": "digits",
    "model.patch_size": 2,
    "masks.min_keep": 2,
    "data.train_samples": 64,
    "train.batch_size": 32,
    "train.epochs": 1,
    "eval.train_samples": 40,
    "monitor.samples": 16,
    "train.device": "cpu",
    "monitor.alarm_rankme": 0.0,
    "monitor.alarm_std_mean": 0.0,
}
