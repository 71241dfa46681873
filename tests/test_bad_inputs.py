"""Bad input, one row each: every entry point refuses it with an error that names the culprit.

Each row is (what is wrong, a call that must fail, the exception type, a pattern the message
must contain: the culprit's name and, where there is a short list, the accepted values).
"""

from __future__ import annotations

import pytest
import torch

from jepa_core.checkpoint import load_checkpoint
from jepa_core.config import load_config, parse_overrides
from jepa_core.data import make_datasets
from jepa_core.device import resolve_device
from jepa_core.ema import momentum_schedule
from jepa_core.evaluate import knn_accuracy
from jepa_core.lessons.notebook import env_smoke, prepare
from jepa_core.losses import jepa_loss, nt_xent_loss
from jepa_core.masks import sample_multiblock_masks
from jepa_core.paths import notebooks_dir
from jepa_core.runner.sweep import parse_grid, plan_sweep
from jepa_core.runner.workbook import select

TRAINING_NB = notebooks_dir() / "04_training.ipynb"


def cfg(**overrides):
    return lambda: load_config("ijepa", overrides)


def masks(**kwargs):
    args = {"grid": (7, 7), "batch_size": 2} | kwargs
    return lambda: sample_multiblock_masks(**args)


def knn(train_x=None, train_y=None, test_x=None, test_y=None, **kwargs):
    x, y = torch.randn(20, 8), torch.arange(20) % 4
    return lambda: knn_accuracy(
        x if train_x is None else train_x,
        y if train_y is None else train_y,
        x if test_x is None else test_x,
        y if test_y is None else test_y,
        **kwargs,
    )


def smoke_env(monkeypatch):
    monkeypatch.setenv("JEPA_SMOKE", "maybe")
    return env_smoke()


CASES = [
    # --- config: keys, types, ranges, method terms --------------------------------------------
    ("misspelt key", cfg(**{"train.epoch": 3}), ValueError, r"train\.epoch.*train\.epochs"),
    ("misspelt section", cfg(**{"trian.epochs": 3}), ValueError, r"trian\.epochs"),
    ("not a number", cfg(**{"train.epochs": "three"}), (TypeError, ValueError), r"train\.epochs"),
    ("zero epochs", cfg(**{"train.epochs": 0}), ValueError, r"train\.epochs"),
    ("negative batch", cfg(**{"train.batch_size": -1}), ValueError, r"train\.batch_size"),
    ("bool for an int", cfg(**{"train.seed": True}), (TypeError, ValueError), r"train\.seed"),
    (
        "scale low > high",
        cfg(**{"masks.target_scale": [0.3, 0.2]}),
        ValueError,
        r"masks\.target_scale",
    ),
    (
        "scale of zero",
        cfg(**{"masks.context_scale": [0.0, 1.0]}),
        ValueError,
        r"masks\.context_scale",
    ),
    ("momentum above 1", cfg(**{"ema.start": 1.5}), ValueError, r"ema\.start"),
    ("unknown schedule", cfg(**{"ema.kind": "exp"}), ValueError, r"ema\.kind.*linear"),
    ("unknown loss kind", cfg(**{"loss.kind": "l3"}), ValueError, r"loss\.kind.*mse"),
    ("unknown pooling", cfg(**{"eval.pool": "max"}), ValueError, r"eval\.pool.*mean"),
    (
        "VICReg weight under I-JEPA",
        cfg(**{"loss.vicreg_weight": 0.1}),
        ValueError,
        r"loss\.vicreg_weight",
    ),
    (
        "level weights under I-JEPA",
        cfg(**{"loss.level_weights": [1, 0.5]}),
        ValueError,
        r"loss\.level_weights",
    ),
    (
        "NT-Xent weight under C-JEPA",
        lambda: load_config("cjepa", {"loss.ntxent_weight": 0.5}),
        ValueError,
        r"loss\.ntxent_weight",
    ),
    ("unknown preset", lambda: load_config("vjepa"), ValueError, r"vjepa.*ijepa"),
    (
        "missing YAML file",
        lambda: load_config("no/such/config.yaml"),
        FileNotFoundError,
        r"no/such/config\.yaml",
    ),
    ("override of 'preset'", cfg(preset="cjepa"), ValueError, r"'preset'"),
    (
        "--set without '='",
        lambda: parse_overrides(["train.epochs"]),
        ValueError,
        r"KEY=VALUE.*train\.epochs",
    ),
    ("unknown device", lambda: resolve_device("tpu"), ValueError, r"train\.device.*'cpu'"),
    # --- datasets -------------------------------------------------------------------------------
    ("unknown dataset", lambda: make_datasets("imagenet22k"), ValueError, r"imagenet22k.*mnist5k"),
    ("imagefolder without root", lambda: make_datasets("imagefolder"), ValueError, r"root"),
    (
        "imagefolder root missing",
        lambda: make_datasets("imagefolder", root="/no/such/folder"),
        (FileNotFoundError, ValueError),
        r"/no/such/folder",
    ),
    (
        "torchvision set offline",
        lambda: make_datasets("cifar10", root="/tmp/jepa-no-cifar"),
        (FileNotFoundError, RuntimeError),
        r"/tmp/jepa-no-cifar.*download",
    ),
    # --- masks ----------------------------------------------------------------------------------
    ("no targets", masks(n_targets=0), ValueError, r"n_targets"),
    ("empty batch", masks(batch_size=0), ValueError, r"batch_size"),
    ("aspect <= 0", masks(target_aspect=(0.0, 1.5)), ValueError, r"target_aspect"),
    ("target scale above 1", masks(target_scale=(0.5, 1.5)), ValueError, r"target_scale"),
    ("grid too small for min_keep", masks(grid=(2, 2), min_keep=10), ValueError, r"min_keep"),
    # --- losses, schedules, evaluation ------------------------------------------------------------
    (
        "unknown momentum schedule",
        lambda: momentum_schedule(total_steps=10, kind="exp"),
        ValueError,
        r"kind.*linear",
    ),
    (
        "unknown JEPA loss",
        lambda: jepa_loss(torch.zeros(2, 3), torch.zeros(2, 3), kind="l3"),
        ValueError,
        r"kind.*mse",
    ),
    (
        "NT-Xent temperature 0",
        lambda: nt_xent_loss(torch.randn(4, 8), torch.randn(4, 8), temperature=0.0),
        ValueError,
        r"temperature",
    ),
    ("k of zero", knn(k=0), ValueError, r"\bk\b"),
    ("labels of the wrong length", knn(train_y=torch.arange(19) % 4), ValueError, r"train_y"),
    ("float labels", knn(test_y=torch.zeros(20)), TypeError, r"test_y"),
    # --- checkpoints ------------------------------------------------------------------------------
    (
        "missing checkpoint",
        lambda: load_checkpoint("/no/such/checkpoint.pt"),
        RuntimeError,
        r"/no/such/checkpoint\.pt",
    ),
    # --- sweeps, notebooks, the workbook ----------------------------------------------------------
    ("grid item without '='", lambda: parse_grid(["loss.vicreg_weight"]), ValueError, r"key=v1,v2"),
    (
        "grid key without values",
        lambda: parse_grid({"loss.vicreg_weight": []}),
        ValueError,
        r"loss\.vicreg_weight",
    ),
    (
        "grid naming an unknown key",
        lambda: plan_sweep(TRAINING_NB, {"loss.vicreg_wieght": [0.1]}),
        ValueError,
        r"loss\.vicreg_wieght",
    ),
    (
        "grid naming an unknown method",
        lambda: plan_sweep(TRAINING_NB, {"method": ["vjepa"]}),
        ValueError,
        r"vjepa",
    ),
    (
        "sweep of a missing notebook",
        lambda: plan_sweep("notebooks/99_none.ipynb", {"seed": [0]}),
        FileNotFoundError,
        r"99_none",
    ),
    ("notebook seed negative", lambda: prepare("01_masking", seed=-1), ValueError, r"seed"),
    (
        "notebook device unknown",
        lambda: prepare("01_masking", device="tpu"),
        ValueError,
        r"device.*'cpu'",
    ),
    ("--only matching nothing", lambda: select(["09"]), ValueError, r"--only '09'.*01"),
]


def test_the_table_is_long_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("culprit", "call", "error", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_culprit(culprit, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_a_bad_JEPA_SMOKE_value_is_named(monkeypatch):
    with pytest.raises(ValueError, match=r"JEPA_SMOKE.*'maybe'"):
        smoke_env(monkeypatch)
