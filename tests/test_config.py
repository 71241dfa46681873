"""The config system: presets, overrides, and clear errors for everything it refuses."""

from __future__ import annotations

import pytest
import yaml

from jepa_core.config import (
    PRESETS,
    Config,
    add_override_option,
    load_config,
    parse_overrides,
    valid_keys,
)


def test_every_preset_loads_and_names_its_method():
    for name in PRESETS:
        cfg = load_config(name)
        assert isinstance(cfg, Config)
        assert cfg.loss.method == name
        assert cfg.preset == name


def test_ijepa_preset_is_ijepa_as_published():
    """I-JEPA as published (Assran et al. 2023; official code facebookresearch/ijepa): a linear
    EMA sized to the run (0.996 -> 1.0 over the paper's run), MSE (the paper's L2), no
    embedding normalisation, 4 targets at 0.15-0.2 with aspect 0.75-1.5, one context block at
    0.85-1.0, no VICReg."""
    cfg = load_config("ijepa")
    # ema.start / ema.end None: the run-length rule, which gives the paper's 0.996 -> 1 to a run
    # as long as the paper's (tests/test_ema.py); the paper's values are one override away
    assert (cfg.ema.kind, cfg.ema.start, cfg.ema.end) == ("linear", None, None)
    assert load_config("ijepa", {"ema.start": 0.996}).ema.start == 0.996
    assert load_config("ijepa", {"ema.end": 1.0}).ema.end == 1.0
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
    assert cfg.loss.vicreg_coeffs == (25.0, 25.0, 1.0)  # VICReg's own, invariance on
    assert cfg.loss.views_from == "full_view"
    assert len(cfg.loss.projector_dims) == 3  # VICReg's expander: 3 layers


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
        ("loss.sigreg_weight", 0.05),
        ("loss.sigreg_directions", 64),
        ("loss.local_views", 2),
        ("loss.local_crop_scale", [0.1, 0.3]),
        ("loss.local_resolution", 0.5),
        ("loss.projector_dims", [64, 64]),
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


def test_lejepa_preset_sizes_lambda_to_the_run_and_has_no_teacher_terms():
    cfg = load_config("lejepa")
    assert cfg.loss.method == "lejepa"
    # sized to CPU budgets (docs/results.md, "The LeJEPA recipe")
    assert cfg.loss.sigreg_weight == 0.2
    # the paper's lambda is one override away
    assert load_config("lejepa", {"loss.sigreg_weight": 0.05}).loss.sigreg_weight == 0.05
    assert cfg.loss.local_views >= 0 and cfg.loss.sigreg_directions >= 1
    assert cfg.loss.vicreg_weight is None and cfg.loss.ntxent_weight is None
    # a saved run's full config (every key set, the teacher's at their defaults) loads again
    assert load_config(cfg.to_dict() | {"preset": "lejepa"}).flat() == cfg.flat()


@pytest.mark.parametrize(
    "key,value",
    [
        ("ema.start", 0.99),
        ("ema.end", 0.999),
        ("ema.kind", "cosine"),
        ("ema.stop_grad", False),
        ("ema.target_in_optimizer", True),
        ("masks.n_targets", 2),
        ("masks.target_scale", [0.1, 0.2]),
        ("loss.kind", "smooth_l1"),
        ("loss.target_layer_norm", False),
        ("loss.pixel_weight", 0.5),
    ],
)
def test_teacher_ema_and_mask_keys_are_refused_under_lejepa(key, value):
    with pytest.raises(ValueError, match=rf"'lejepa' has no teacher.*{key.replace('.', '[.]')}"):
        load_config("lejepa", {key: value})


@pytest.mark.parametrize(
    "overrides,culprit",
    [
        ({"loss.sigreg_weight": 1.5}, "loss.sigreg_weight"),
        ({"loss.sigreg_weight": -0.1}, "loss.sigreg_weight"),
        ({"loss.sigreg_directions": 0}, "loss.sigreg_directions"),
        ({"loss.local_views": -1}, "loss.local_views"),
        ({"loss.local_crop_scale": [0.5, 0.2]}, "loss.local_crop_scale"),
        ({"loss.local_resolution": 0.0}, "loss.local_resolution"),
        ({"loss.local_resolution": 0.75}, "loss.local_views=0"),
        ({"loss.local_crop_scale": [0.1, 0.3]}, "loss.local_views=0"),
        ({"loss.local_resolution": 1.5}, "loss.local_resolution"),
        ({"loss.projector_dims": [64, 0]}, "loss.projector_dims"),
        ({"loss.vicreg_weight": 1.0}, "loss.vicreg_weight"),
    ],
)
def test_bad_lejepa_terms_name_the_culprit(overrides, culprit):
    with pytest.raises(ValueError, match=culprit.replace(".", r"\.")):
        load_config("lejepa", overrides)


@pytest.mark.parametrize("method", ["cjepa", "ijepa_ntxent", "lejepa"])
def test_accumulation_is_refused_where_the_loss_is_a_batch_statistic(method):
    with pytest.raises(ValueError, match=r"train\.accumulate=2.*statistic of the whole batch"):
        load_config(method, {"train.accumulate": 2})
    assert load_config("ijepa", {"train.accumulate": 2}).train.accumulate == 2


def test_ema_start_null_is_refused_for_a_constant_schedule():
    with pytest.raises(ValueError, match=r"ema\.start"):
        load_config("ijepa", {"ema.kind": "constant"})


def test_the_set_option_collects_repeated_pairs_for_parse_overrides():
    import argparse

    parser = argparse.ArgumentParser()
    add_override_option(parser, dest="fixed")
    args = parser.parse_args(["--set", "train.epochs=2", "--set", "masks.target_scale=[0.1,0.2]"])
    assert parse_overrides(args.fixed) == {"train.epochs": 2, "masks.target_scale": [0.1, 0.2]}
    assert parser.parse_args([]).fixed == []


def test_parse_overrides_rejects_a_pair_without_equals():
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["train.epochs"])


def test_a_saved_config_with_a_constant_schedule_loads_again():
    """A checkpoint stores every key, the unused ema.end at its default included; reading it back
    must not count that as a choice (the collapse lab's momentum-0 run resumes)."""
    cfg = load_config("ijepa", {"ema.kind": "constant", "ema.start": 0.0})
    again = load_config(cfg.to_dict() | {"preset": "ijepa"})
    assert again.flat() == cfg.flat()
    with pytest.raises(ValueError, match=r"ema\.end"):
        load_config("ijepa", {"ema.kind": "constant", "ema.start": 0.0, "ema.end": 0.5})
