"""A config's values checked: each against its field's type, then the ranges, then the method.

``coerce_value`` converts only lossless forms (int -> float, list -> tuple, numeric strings from
the command line); ``check_ranges`` and ``apply_method_terms`` name the key and what is accepted.
``jepa_core.config.build_config`` calls them once; nothing downstream checks a config again.
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from .presets import METHOD_SPECIFIC, METHOD_TERMS, TEACHER_KEYS

if TYPE_CHECKING:
    from .config import Config


def parse_value(text: str) -> Any:
    """A command-line value: YAML scalars/lists.

    For example ``3``, ``0.1``, ``true``, ``[0.1, 0.2]``, ``null``.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def coerce_value(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's type hint, converting only lossless forms
    (int -> float, list -> tuple, numeric strings from the command line)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return coerce_value(key, value, a)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError(
            errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {hint}"
        )
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{key} must be one of {', '.join(map(repr, args))}; got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = parse_value(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list like {_example(args)}; got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            if len(value) == 0:
                raise ValueError(f"{key} must not be empty")
            return tuple(coerce_value(key, v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError(
                f"{key} must have {len(args)} values like {_example(args)}; got {value!r}"
            )
        return tuple(coerce_value(key, v, a) for v, a in zip(value, args, strict=True))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{key} must be true or false; got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be an integer; got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ValueError(f"{key} must be an integer; got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number; got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads '1e-3' as a string
            except ValueError:
                pass
        raise ValueError(f"{key} must be a number; got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise ValueError(f"{key} must be a string; got {value!r}")
    raise TypeError(f"{key}: unsupported type {hint}")


def _example(args: tuple) -> str:
    if len(args) == 2 and args[1] is Ellipsis:
        return "[1.0, 0.5]"
    return "[" + ", ".join("0.1" if a is float else "1" for a in args) + "]"


def check_ranges(cfg: Config, explicitly_set: set[str]) -> None:
    def need(ok: bool, key: str, value: Any, accepted: str) -> None:
        if not ok:
            raise ValueError(f"{key} must be {accepted}; got {value!r}")

    def unit_range(key: str, pair: tuple[float, float]) -> None:
        lo, hi = pair
        need(
            0 < lo <= 1 and 0 < hi <= 1 and lo <= hi,
            key,
            list(pair),
            "a range [low, high] with 0 < low <= high <= 1",
        )

    m, o, t, e, ev, mo, d = (
        cfg.masks,
        cfg.optim,
        cfg.train,
        cfg.ema,
        cfg.eval,
        cfg.monitor,
        cfg.data,
    )
    unit_range("masks.target_scale", m.target_scale)
    unit_range("masks.context_scale", m.context_scale)
    lo, hi = m.target_aspect
    need(
        0 < lo <= hi,
        "masks.target_aspect",
        list(m.target_aspect),
        "a range [low, high] with 0 < low <= high",
    )
    need(m.n_targets >= 1, "masks.n_targets", m.n_targets, ">= 1")
    need(m.min_keep >= 1, "masks.min_keep", m.min_keep, ">= 1")
    need(cfg.model.patch_size >= 1, "model.patch_size", cfg.model.patch_size, ">= 1")
    need(
        0 <= cfg.model.drop_path_rate < 1,
        "model.drop_path_rate",
        cfg.model.drop_path_rate,
        "in [0, 1)",
    )
    need(e.start is None or 0.0 <= e.start <= 1.0, "ema.start", e.start, "in [0, 1] or null")
    need(e.end is None or 0.0 <= e.end <= 1.0, "ema.end", e.end, "in [0, 1] or null")
    need(
        e.kind != "constant" or e.start is not None,
        "ema.start",
        e.start,
        "a number for ema.kind='constant' (the run-length rule, null, is a linear ramp)",
    )
    if e.kind == "constant" and "ema.end" in explicitly_set:
        need(
            e.end == e.start,
            "ema.end",
            e.end,
            f"left unset or equal to ema.start ({e.start}): a constant schedule has no end",
        )
    for key in ("lr", "start_lr", "final_lr"):
        v = getattr(o, key)
        need(v >= 0 and math.isfinite(v), f"optim.{key}", v, ">= 0")
    need(o.lr > 0, "optim.lr", o.lr, "> 0")
    need(o.warmup_epochs >= 0, "optim.warmup_epochs", o.warmup_epochs, ">= 0")
    need(o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, ">= 0")
    need(o.final_weight_decay >= 0, "optim.final_weight_decay", o.final_weight_decay, ">= 0")
    need(o.clip_grad is None or o.clip_grad > 0, "optim.clip_grad", o.clip_grad, "> 0 or null")
    need(t.epochs >= 1, "train.epochs", t.epochs, ">= 1")
    need(t.batch_size >= 2, "train.batch_size", t.batch_size, ">= 2")
    need(t.accumulate >= 1, "train.accumulate", t.accumulate, ">= 1")
    need(
        t.batch_size % t.accumulate == 0 and t.batch_size // t.accumulate >= 2,
        "train.accumulate",
        t.accumulate,
        f"a divisor of train.batch_size ({t.batch_size}) leaving micro-batches of >= 2",
    )
    need(t.log_every >= 0, "train.log_every", t.log_every, ">= 0")
    need(t.seed >= 0, "train.seed", t.seed, ">= 0")
    dev = t.device
    need(
        dev in ("auto", "cpu", "cuda", "mps") or dev.startswith("cuda:"),
        "train.device",
        dev,
        "one of auto, cpu, cuda, cuda:N, mps",
    )
    need(ev.every >= 0, "eval.every", ev.every, ">= 0")
    need(ev.k >= 1, "eval.k", ev.k, ">= 1")
    need(ev.temperature > 0, "eval.temperature", ev.temperature, "> 0")
    need(
        ev.train_samples is None or ev.train_samples >= ev.k,
        "eval.train_samples",
        ev.train_samples,
        f">= eval.k ({ev.k}) or null",
    )
    need(mo.samples >= 2, "monitor.samples", mo.samples, ">= 2")
    need(mo.alarm_std_mean >= 0, "monitor.alarm_std_mean", mo.alarm_std_mean, ">= 0")
    need(mo.alarm_rankme >= 0, "monitor.alarm_rankme", mo.alarm_rankme, ">= 0")
    need(d.image_size is None or d.image_size >= 1, "data.image_size", d.image_size, ">= 1 or null")
    need(
        d.train_samples is None or d.train_samples >= 2,
        "data.train_samples",
        d.train_samples,
        ">= 2 or null",
    )
    need(d.num_workers >= 0, "data.num_workers", d.num_workers, ">= 0")
    if d.crop_scale is not None:
        unit_range("data.crop_scale", d.crop_scale)
    lw = cfg.loss.pixel_weight
    need(lw >= 0, "loss.pixel_weight", lw, ">= 0")


def apply_method_terms(cfg: Config, explicitly_set: set[str]) -> None:
    """Fill the chosen method's term defaults; refuse terms the method does not use."""
    loss = cfg.loss
    if loss.method == "lejepa":
        # explicitly_set holds real choices only (build_config drops keys at their defaults)
        values = cfg.flat()
        teacher = sorted(k for k in explicitly_set if k in TEACHER_KEYS)
        if teacher:
            named = ", ".join(f"{k}={values[k]!r}" for k in teacher)
            raise ValueError(
                f"loss.method='lejepa' has no teacher, no EMA, no masks and no I-JEPA loss: "
                f"remove {named} (they apply to ijepa, cjepa, ijepa_ntxent, hjepa)"
            )
    uses = METHOD_TERMS[loss.method]
    unused = [
        name for name in METHOD_SPECIFIC if name not in uses and getattr(loss, name) is not None
    ]
    if unused:
        parts = []
        for name in unused:
            users = ", ".join(m for m, terms in METHOD_TERMS.items() if name in terms)
            parts.append(f"loss.{name}={getattr(loss, name)!r} (used by {users})")
        raise ValueError(
            f"loss.method={loss.method!r} does not use {'; '.join(parts)}: "
            "remove these keys or choose the method that uses them"
        )
    for name in uses:
        if getattr(loss, name) is None:
            setattr(loss, name, uses[name])
    if loss.method == "cjepa":
        if loss.vicreg_weight < 0:
            raise ValueError(f"loss.vicreg_weight must be >= 0; got {loss.vicreg_weight}")
        if any(c < 0 for c in loss.vicreg_coeffs):
            raise ValueError(f"loss.vicreg_coeffs must be >= 0; got {list(loss.vicreg_coeffs)}")
    if loss.method == "ijepa_ntxent":
        if loss.ntxent_weight < 0:
            raise ValueError(f"loss.ntxent_weight must be >= 0; got {loss.ntxent_weight}")
        if loss.ntxent_temperature <= 0:
            raise ValueError(f"loss.ntxent_temperature must be > 0; got {loss.ntxent_temperature}")
    if loss.method in ("cjepa", "ijepa_ntxent", "lejepa") and cfg.train.accumulate > 1:
        raise ValueError(
            f"train.accumulate={cfg.train.accumulate} with loss.method={loss.method!r}: its term "
            "is a statistic of the whole batch and would be computed per micro-batch of "
            f"{cfg.train.batch_size // cfg.train.accumulate} images; set train.accumulate=1 "
            "(accumulation is for ijepa and hjepa)"
        )
    if loss.projector_dims is not None and any(d < 1 for d in loss.projector_dims):
        raise ValueError(f"loss.projector_dims must be >= 1; got {list(loss.projector_dims)}")
    if loss.method == "lejepa":
        if not 0 <= loss.sigreg_weight <= 1:
            raise ValueError(f"loss.sigreg_weight must be in [0, 1]; got {loss.sigreg_weight}")
        if loss.sigreg_directions < 1:
            raise ValueError(f"loss.sigreg_directions must be >= 1; got {loss.sigreg_directions}")
        if loss.local_views < 0:
            raise ValueError(f"loss.local_views must be >= 0; got {loss.local_views}")
        lo, hi = loss.local_crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(
                "loss.local_crop_scale must be a range [low, high] with 0 < low <= high <= 1; "
                f"got {list(loss.local_crop_scale)}"
            )
        if not 0 < loss.local_resolution <= 1:
            raise ValueError(
                f"loss.local_resolution must be in (0, 1]; got {loss.local_resolution}"
            )
        # A local view's shape changed from LeJEPA's default while there are no local views
        # would be silently ignored (a saved run's full config repeats the defaults: allowed).
        for name in ("local_crop_scale", "local_resolution"):
            value, default = getattr(loss, name), METHOD_TERMS["lejepa"][name]
            changed = tuple(value) != default if isinstance(default, tuple) else value != default
            if changed and loss.local_views == 0:
                raise ValueError(
                    f"loss.{name} shapes the local views, but loss.local_views=0: set "
                    f"loss.local_views >= 1 or remove loss.{name}"
                )
    if loss.method == "hjepa":
        if any(w < 0 for w in loss.level_weights) or sum(loss.level_weights) <= 0:
            raise ValueError(
                f"loss.level_weights must be >= 0 with a positive sum; "
                f"got {list(loss.level_weights)}"
            )
