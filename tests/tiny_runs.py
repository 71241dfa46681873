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
