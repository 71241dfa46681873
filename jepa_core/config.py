"""The one config system: typed dataclasses, named presets, dotted overrides.

    cfg = load_config("cjepa", {"train.epochs": 3, "loss.vicreg_weight": 0.05})

``source`` is a preset name, a YAML path or a dict; a YAML file or dict may name a ``preset``
to start from. ``overrides`` maps dotted keys to values: the same form the CLI's
``--set key=value``, papermill's ``overrides`` parameter and sweep grids use. Field names
mirror the arguments of the functions they feed (``masks.target_scale`` feeds
``sample_multiblock_masks(target_scale=...)``, ``ema.start`` feeds ``momentum_schedule``).

Nothing is silently ignored: an unknown key raises ValueError naming the closest valid key, a
value of the wrong type or out of range names the key and what is accepted, and a coefficient of
a loss term the chosen method does not use (a VICReg weight under pure I-JEPA, say) is an error.

The presets and each method's terms live in ``jepa_core.presets``; the checks of values (types,
ranges, method terms) in ``jepa_core.config_checks``; ``PRESETS``, ``METHOD_TERMS``,
``coerce_value`` and ``parse_value`` are importable from here too.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .config_checks import apply_method_terms, check_ranges, coerce_value, parse_value
from .presets import METHOD_TERMS, PRESETS

__all__ = [
    "METHODS",
    "METHOD_TERMS",
    "PRESETS",
    "Config",
    "DataConfig",
    "EmaConfig",
    "EvalConfig",
    "LossConfig",
    "MasksConfig",
    "ModelConfig",
    "MonitorConfig",
    "OptimConfig",
    "TrainConfig",
    "add_override_option",
    "build_config",
    "coerce_value",
    "config_diff",
    "default_config",
    "load_config",
    "parse_overrides",
    "parse_value",
    "valid_keys",
]

METHODS = ("ijepa", "cjepa", "ijepa_ntxent", "hjepa", "lejepa")


@dataclass
class DataConfig:
    name: str = "mnist5k"  # one of jepa_core.data.DATASET_NAMES (checked by make_datasets)
    root: str | None = None  # None: data/<name> (imagefolder: required)
    download: bool = False  # torchvision sets only; never needed for mnist5k / digits
    image_size: int | None = None  # None: the dataset's native size
    train_samples: int | None = None  # a fixed random subset of the training set (smoke runs)
    # RandomResizedCrop scale of the training views; None: (0.3, 1.0) for I-JEPA's single view
    # and for photographs, (0.85, 1.0) for C-JEPA's and NT-Xent's digit views, (0.5, 1.0) for
    # LeJEPA's digit views (data/views.py)
    crop_scale: tuple[float, float] | None = None
    num_workers: int = 0


@dataclass
class MasksConfig:
    n_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    min_keep: int = 4  # official: 10 at 224 px / patch 16; a 7x7 grid needs fewer
    allow_overlap: bool = False


@dataclass
class ModelConfig:
    size: str = "cpu"  # see jepa_core.models.MODEL_PRESETS
    patch_size: int = 4
    drop_path_rate: float = 0.0


@dataclass
class LossConfig:
    method: Literal["ijepa", "cjepa", "ijepa_ntxent", "hjepa", "lejepa"] = "ijepa"
    kind: Literal["mse", "smooth_l1", "cosine"] = "mse"  # the paper's L2 by default
    target_layer_norm: bool = True  # official code: F.layer_norm on target features
    # Method-specific terms: None means "the method's default" (or "unused").
    vicreg_weight: float | None = None  # cjepa
    vicreg_coeffs: tuple[float, float, float] | None = None  # cjepa: (sim, std, cov)
    # cjepa / ijepa_ntxent: which context-encoder embeddings of the two views are compared:
    # "full_view" (each whole view, mean-pooled) or "masked_context" (the mean of the masked
    # context tokens; I-JEPA then runs on both views). The C-JEPA paper leaves this open.
    views_from: Literal["full_view", "masked_context"] | None = None
    ntxent_weight: float | None = None  # ijepa_ntxent
    ntxent_temperature: float | None = None  # ijepa_ntxent
    level_weights: tuple[float, ...] | None = None  # hjepa: weights of the last L depths
    # cjepa, lejepa: widths of the projector MLP between the pooled embedding and the loss
    # (VICReg's "expander"; LeJEPA's projector): Linear-BN-ReLU ... Linear
    projector_dims: tuple[int, ...] | None = None
    sigreg_weight: float | None = (
        None  # lejepa: lambda in (1 - lambda) * prediction + lambda * SIGReg
    )
    sigreg_directions: int | None = None  # lejepa: random directions M of SIGReg, new every step
    local_views: int | None = None  # lejepa: local views beside the 2 global ones
    local_crop_scale: tuple[float, float] | None = None  # lejepa: RandomResizedCrop of local views
    # lejepa: side of the local views as a fraction of the global views' side, rounded to whole
    # patches (the paper: 96 px against 224, 0.43); 1.0 encodes them at full resolution
    local_resolution: float | None = None
    pixel_weight: float = 0.0  # any method: pixel-reconstruction auxiliary (0 = off)


@dataclass
class EmaConfig:
    # None: the run-length rule, jepa_core.ema.ema_start_for_run (0.996, the paper's, for runs of
    # >= 2,303 steps; faster for shorter runs, so the teacher forgets its initialisation)
    start: float | None = None
    # None: the rule's other end, jepa_core.ema.ema_end_for_run (linear): the teacher trails its
    # student by at most the paper's share of the run (1.0 for the paper's 187,500 steps; the
    # start held constant for runs of 16 to ~5,500 steps); 1.0 for cosine; the start for constant
    end: float | None = None
    kind: Literal["linear", "cosine", "constant"] = "linear"
    # Collapse-lab switches that break I-JEPA's asymmetry on purpose:
    stop_grad: bool = True  # False: the target branch stays in the autograd graph
    target_in_optimizer: bool = False  # True: the optimizer also trains the target encoder


@dataclass
class OptimConfig:
    lr: float = 1e-3  # peak, after warmup
    start_lr: float = 2e-4
    final_lr: float = 1e-6
    warmup_epochs: float = 1.0
    weight_decay: float = 0.04  # cosine *increasing* to final_weight_decay (official)
    final_weight_decay: float = 0.4
    clip_grad: float | None = None  # max gradient norm; None: no clipping (official)


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 128  # images per optimizer step (accumulated if accumulate > 1)
    accumulate: int = 1  # gradient accumulation: micro-batches of batch_size / accumulate
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    output_dir: str | None = None  # None: results/runs/<method>-<data>-seed<seed>
    resume: bool = False
    # optimizer steps between history rows, counted from each epoch's start (its last step
    # always logs one); 0: once per epoch
    log_every: int = 0
    compile: bool = False  # torch.compile the trained forward (GPUs; first steps pay the compile)


@dataclass
class EvalConfig:
    every: int = 1  # epochs between k-NN evaluations (0: only after the last epoch)
    k: int = 20
    temperature: float = 0.07
    pool: Literal["mean", "flatten"] = "mean"
    encoder: Literal["target", "context"] = "target"  # official: the target encoder
    train_samples: int | None = 10000  # k-NN memory bank size cap (None: the whole train set)


@dataclass
class MonitorConfig:
    samples: int = 512  # test images whose pooled embeddings give std / rankme
    alarm_std_mean: float = 0.01  # collapse alarm when std_mean falls below this ...
    alarm_rankme: float = 1.5  # ... or rankme below this (0 disables a check)
    on_collapse: Literal["warn", "stop"] = "warn"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    masks: MasksConfig = field(default_factory=MasksConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, the form overrides and metrics.json use."""
        return _flatten(self.to_dict())


def default_config() -> Config:
    return Config()


def load_config(
    source: str | Path | dict | Config | None = "ijepa", overrides: dict[str, Any] | None = None
) -> Config:
    """Build a validated :class:`Config`.

    source: a preset name (``ijepa``, ``cjepa``, ``ijepa_ntxent``, ``hjepa``, ``lejepa``), a
    path to a
    YAML file, a nested dict (optionally with a top-level ``preset``), an existing Config, or
    None (the defaults). overrides: ``{"train.epochs": 3, ...}`` applied last.
    """
    flat: dict[str, Any] = {}
    preset_name: str | None = None
    if source is None:
        pass
    elif isinstance(source, Config):
        flat = source.flat()
        preset_name = source.preset
    elif isinstance(source, dict):
        preset_name, flat = _from_mapping(source, "the config dict")
    elif isinstance(source, (str, Path)):
        text = str(source)
        if text in PRESETS:
            preset_name = text
        elif text.endswith((".yaml", ".yml")) or Path(text).exists():
            path = Path(text).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"config file {str(path)!r} does not exist")
            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict):
                raise ValueError(
                    f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}"
                )
            preset_name, flat = _from_mapping(data, f"config file {str(path)!r}")
        else:
            raise ValueError(
                f"unknown config {text!r}: give a preset name "
                f"({', '.join(PRESETS)}), a YAML path or a dict"
            )
    else:
        raise TypeError(
            f"config source must be a preset name, path, dict or Config, "
            f"got {type(source).__name__}"
        )

    merged: dict[str, Any] = {}
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise ValueError(f"unknown preset {preset_name!r}; valid presets: {', '.join(PRESETS)}")
        merged.update(PRESETS[preset_name])
    merged.update({k: v for k, v in flat.items() if k != "preset"})
    for key, value in (overrides or {}).items():
        if not isinstance(key, str):
            raise TypeError(
                f"override keys must be dotted strings like 'train.epochs', got {key!r}"
            )
        if key == "preset":
            raise ValueError("'preset' cannot be overridden: pass it as the config source instead")
        merged[key] = value
    return build_config(merged, preset=preset_name)


def build_config(flat: dict[str, Any], preset: str | None = None) -> Config:
    """Defaults <- ``flat`` (dotted keys), type-checked, range-checked, method-checked."""
    cfg = Config(preset=preset)
    valid = valid_keys()
    for key, raw in flat.items():
        if key not in valid:
            raise ValueError(_unknown_key_message(key, valid))
        section, name = key.split(".", 1)
        sub = getattr(cfg, section)
        hint = _field_types(type(sub))[name]
        setattr(sub, name, coerce_value(key, raw, hint))
    # A key "set" to its default value is not a choice (a saved run's config lists every key):
    # the checks that refuse keys a method or schedule does not use look at real choices only.
    values, defaults = cfg.flat(), Config().flat()
    chosen = {key for key in flat if values[key] != defaults[key]}
    check_ranges(cfg, explicitly_set=chosen)
    apply_method_terms(cfg, explicitly_set=chosen)
    return cfg


def valid_keys() -> list[str]:
    return sorted(k for k in _flatten(dataclasses.asdict(Config())) if k != "preset")


def add_override_option(parser: Any, *, dest: str = "overrides", help: str | None = None) -> None:
    """The one ``--set KEY=VALUE`` option of every command line (repeatable), collected into
    ``dest`` as a list of strings for :func:`parse_overrides`."""
    parser.add_argument(
        "--set",
        dest=dest,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=help or "a dotted config override, e.g. --set train.epochs=3 (repeatable)",
    )


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=3", "masks.target_scale=[0.1,0.2]"]`` -> dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"an override must be KEY=VALUE (e.g. train.epochs=3); got {pair!r}")
        key, text = pair.split("=", 1)
        out[key.strip()] = parse_value(text)
    return out


def config_diff(a: Config, b: Config, ignore: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    fa, fb = a.flat(), b.flat()
    return {
        k: (fa.get(k), fb.get(k))
        for k in sorted(set(fa) | set(fb))
        if k not in ignore and k != "preset" and fa.get(k) != fb.get(k)
    }


# ---------------------------------------------------------------------------------------------
def _from_mapping(data: dict, where: str) -> tuple[str | None, dict[str, Any]]:
    preset = data.get("preset")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "preset":
            continue
        if isinstance(value, dict):
            for sub_key, sub_value in _flatten(value).items():
                flat[f"{key}.{sub_key}"] = sub_value
        elif "." in str(key):
            flat[str(key)] = value
        else:
            sections = [f.name for f in dataclasses.fields(Config) if f.name != "preset"]
            raise ValueError(
                f"{where}: top-level key {key!r} must be a section mapping "
                f"(one of {', '.join(sections)}) or 'preset'"
            )
    return preset, flat


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _unknown_key_message(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:  # try the last part alone: 'epoch' -> 'train.epochs'
        leaf = key.rsplit(".", 1)[-1]
        leaves = {k.rsplit(".", 1)[-1]: k for k in valid}
        match = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)
        close = [leaves[match[0]]] if match else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown config key {key!r}{hint} (valid keys: {', '.join(valid)})"


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
