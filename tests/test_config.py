"""The config system: presets, overrides, and clear errors for everything it refuses."""

from __future__ import annotations

import pytest
import yaml

from jepa_core.config import PRESETS, Config, load_config, parse_overrides, valid_keys


def test_every_preset_loads_and_names_its_method():
    for name in PRESETS:
        cfg = load_config(name)
        assert isinstance(cfg, Config)
        assert cfg.loss.method == name
        assert cfg.preset == name


def test_ijepa_preset_is_ijepa_as_published():
    """I-JEPA as published (Assran et al. 2023; official code facebookresearch/ijepa): linear
    EMA 0.996 -> 1.0, MSE (the paper's L2), no embedding normalisation, 4 targets at 0.15-0.2
    with aspect 0.75-1.5, one context block at 0.85-1.0, no VICReg."""
    cfg = load_config("ijepa")
    assert (cfg.ema.kind, cfg.ema.start, cfg.ema.end) == ("linear", 0.996, 1.0)
    assert cfg.loss.kind == "mse"
    assert cfg.masks.n_targets == 4
    assert cfg.masks.target_scale == (0.15, 0.2)
    assert cfg.masks.target_aspect == (0.75, 1.5)
    assert cfg.masks.context_scale == (0.85, 1.0)
    assert cfg.masks.allow_overlap is False
    assert cfg.loss.vicreg_weight is None and cfg.loss.ntxent_weight is None
    # Layer-normed targets (official code) are not an L2 normalisation of embeddings.
    assert cfg.loss.target_layer_norm is True
    assert not any("normalize" in key for key in valid_keys())
    assert cfg.ema.stop_grad is True and cfg.ema.target_in_optimizer is False


def test_cjepa_fills_vicreg_defaults_and_accepts_overrides():
    cfg = load_config("cjepa", {"loss.vicreg_weight": 0.05})
    assert cfg.loss.vicreg_weight == 0.05
    assert cfg.loss.vicreg_coeffs == (0.0, 25.0, 1.0)  # invariance off at CPU scale (measured)
    assert cfg.loss.views_from == "full_view"


def test_vicreg_weight_under_pure_ijepa_is_an_error():
    with pytest.raises(ValueError, match=r"'ijepa' does not use loss\.vicreg_weight=0\.1"):
        load_config("ijepa", {"loss.vicreg_weight": 0.1})


@pytest.mark.parametrize(
    "key,value",
    [
        ("loss.ntxent_weight", 0.1),
        ("loss.ntxent_temperature", 0.2),
        ("loss.level_weights", [1.0, 0.5]),
        ("loss.vicreg_coeffs", [25, 25, 1]),
        ("loss.views_from", "masked_context"),
    ],
)
def test_terms_of_other_methods_are_refused_under_ijepa(key, value):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config("ijepa", {key: value})


def test_switching_method_away_from_a_preset_with_its_terms_is_refused():
    cfg = load_config("cjepa")
    with pytest.raises(ValueError, match="vicreg_weight"):
        load_config(cfg, {"loss.method": "ijepa"})


def test_unknown_key_names_the_closest_valid_key():
    with pytest.raises(
        ValueError, match=r"unknown config key 'train\.epoch'.*did you mean 'train\.epochs'"
    ):
        load_config("ijepa", {"train.epoch": 3})
    with pytest.raises(ValueError, match=r"did you mean 'masks\.target_scale'"):
        load_config("ijepa", {"mask.target_scale": [0.1, 0.2]})


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="ijepa, cjepa, ijepa_ntxent, hjepa"):
        load_config("bjepa")


def test_overrides_from_the_command_line_are_typed():
    cfg = load_config(
        "ijepa",
        parse_overrides(
            [
                "train.epochs=5",
                "optim.lr=1e-3",
                "masks.target_scale=[0.1, 0.3]",
                "ema.stop_grad=false",
                "train.output_dir=null",
            ]
        ),
    )
    assert cfg.train.epochs == 5 and isinstance(cfg.train.epochs, int)
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.masks.target_scale == (0.1, 0.3)
    assert cfg.ema.stop_grad is False
    assert cfg.train.output_dir is None


def test_yaml_file_with_a_preset_base(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        yaml.safe_dump({"preset": "cjepa", "train": {"epochs": 7}, "loss": {"vicreg_weight": 0.2}})
    )
    cfg = load_config(path, {"train.seed": 3})
    assert (cfg.loss.method, cfg.train.epochs, cfg.loss.vicreg_weight, cfg.train.seed) == (
        "cjepa",
        7,
        0.2,
        3,
    )


def test_config_round_trips_through_its_flat_form():
    cfg = load_config("hjepa", {"train.epochs": 2})
    again = load_config(cfg.to_dict() | {"preset": cfg.preset})
    assert again.flat() == cfg.flat()


@pytest.mark.parametrize(
    "overrides,culprit",
    [
        ({"train.epochs": 0}, "train.epochs"),
        ({"train.epochs": "three"}, "train.epochs"),
        ({"train.epochs": 2.5}, "train.epochs"),
        ({"train.batch_size": 1}, "train.batch_size"),
        ({"train.accumulate": 3}, "train.accumulate"),
        ({"train.device": "tpu"}, "train.device"),
        ({"ema.start": 1.5}, "ema.start"),
        ({"ema.end": -0.1}, "ema.end"),
        ({"ema.kind": "exponential"}, "ema.kind"),
        ({"ema.kind": "constant", "ema.start": 0.5, "ema.end": 0.9}, "ema.end"),
        ({"ema.stop_grad": "maybe"}, "ema.stop_grad"),
        ({"loss.kind": "l1"}, "loss.kind"),
        ({"loss.method": "dino"}, "loss.method"),
        ({"loss.pixel_weight": -1}, "loss.pixel_weight"),
        ({"masks.target_scale": [0.3, 0.2]}, "masks.target_scale"),
        ({"masks.target_scale": [0.0, 0.2]}, "masks.target_scale"),
        ({"masks.target_scale": 0.2}, "masks.target_scale"),
        ({"masks.context_scale": [0.85, 1.2]}, "masks.context_scale"),
        ({"masks.target_aspect": [-1, 1.5]}, "masks.target_aspect"),
        ({"masks.n_targets": 0}, "masks.n_targets"),
        ({"masks.min_keep": 0}, "masks.min_keep"),
        ({"optim.lr": 0}, "optim.lr"),
        ({"optim.clip_grad": -1}, "optim.clip_grad"),
        ({"eval.k": 0}, "eval.k"),
        ({"eval.pool": "max"}, "eval.pool"),
        ({"eval.encoder": "student"}, "eval.encoder"),
        ({"monitor.on_collapse": "panic"}, "monitor.on_collapse"),
        ({"data.image_size": 0}, "data.image_size"),
        ({"data.crop_scale": [0.5]}, "data.crop_scale"),
    ],
)
def test_bad_values_name_the_culprit(overrides, culprit):
    with pytest.raises(ValueError, match=culprit.replace(".", r"\.")):
        load_config("ijepa", overrides)


@pytest.mark.parametrize(
    "overrides,culprit",
    [
        ({"loss.vicreg_weight": -0.1}, "loss.vicreg_weight"),
        ({"loss.vicreg_coeffs": [25, 25]}, "loss.vicreg_coeffs"),
    ],
)
def test_bad_cjepa_terms_name_the_culprit(overrides, culprit):
    with pytest.raises(ValueError, match=culprit.replace(".", r"\.")):
        load_config("cjepa", overrides)


def test_parse_overrides_rejects_a_pair_without_equals():
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["train.epochs"])
