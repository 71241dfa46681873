"""Synthetic embeddings and loss probes: the losses of ``jepa_core.losses`` on numbers you can
check by hand (notebook 03).

Three kinds of two-view embeddings ``z_a, z_b`` [N, D] (:func:`synthetic_views`):

    healthy              x ~ N(0, I_D);             z = x + s * e            (e ~ N(0, I) per view)
    dimension_collapsed  u ~ N(0, I_k), W ~ N(0, 1/k) [k, D];  z = (u + s * e) W     rank k << D
    fully_collapsed      c ~ N(0, I_D), one row for all;       z = c + t * e         t tiny

``W``'s scale 1/k gives every dimension of the dimension-collapsed embedding an expected
variance of 1, as for the healthy one: the two differ in rank, not in scale.

Probes: :func:`jepa_loss_probe` (each I-JEPA loss under a scaled prediction and under one
outlier coordinate), :func:`vicreg_table` (VICReg's terms with RankMe, Bardes et al. 2022;
Garrido et al. 2023), :func:`temperature_sweep` (NT-Xent loss and accuracy against the
temperature, Chen et al. 2020), :func:`objective_terms` (one forward of the training step,
no backward) and :func:`parameter_gradients` (what a loss term sends to a module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..checks import int_at_least
from ..config import LossConfig
from ..losses import JEPA_LOSS_KINDS, jepa_loss, nt_xent_loss, vicreg_loss
from ..masks import MultiBlockMasks
from ..monitor import embedding_stats
from ..objectives import (
    Objective,
    jepa_batch_size,
    jepa_inputs,
    target_features,
    two_view_embeddings,
)

EMBEDDING_KINDS = ("healthy", "dimension_collapsed", "fully_collapsed")


def _check_nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"{name} must be a real number >= 0, got {value!r} ({type(value).__name__})"
        )
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite real number >= 0, got {value!r}")
    return float(value)


def _check_positive_values(name: str, values: object) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        raise TypeError(
            f"{name} must be a sequence of positive numbers, got {type(values).__name__}"
        )
    out = [float(v) for v in values]
    if not out or not all(np.isfinite(v) and v > 0 for v in out):
        raise ValueError(
            f"{name} must be a non-empty sequence of finite numbers > 0, got {list(values)}"
        )
    return out


def synthetic_views(
    kind: str,
    n: int,
    dim: int,
    *,
    rank: int = 4,
    view_noise: float = 0.1,
    collapse_noise: float = 1e-3,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Two views ``(z_a, z_b)``, each [n, dim] float32, of one of :data:`EMBEDDING_KINDS`
    (formulas in the module docstring). ``rank`` is k (dimension_collapsed only, 1..dim);
    ``view_noise`` is s; ``collapse_noise`` is t. All randomness comes from ``generator``."""
    if kind not in EMBEDDING_KINDS:
        raise ValueError(f"kind must be one of {EMBEDDING_KINDS}, got {kind!r}")
    n = int_at_least("n", n, 2)
    dim = int_at_least("dim", dim, 1)
    rank = int_at_least("rank", rank, 1)
    if rank > dim:
        raise ValueError(f"rank must be in [1, dim={dim}], got {rank}")
    view_noise = _check_nonnegative("view_noise", view_noise)
    collapse_noise = _check_nonnegative("collapse_noise", collapse_noise)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )

    def noise(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator)

    if kind == "healthy":
        x = noise(n, dim)
        return x + view_noise * noise(n, dim), x + view_noise * noise(n, dim)
    if kind == "dimension_collapsed":
        u = noise(n, rank)
        w = noise(rank, dim) / rank**0.5
        return (u + view_noise * noise(n, rank)) @ w, (u + view_noise * noise(n, rank)) @ w
    c = noise(1, dim)
    return c + collapse_noise * noise(n, dim), c + collapse_noise * noise(n, dim)


def jepa_loss_probe(
    target: Tensor, scales: Sequence[float], outliers: Sequence[float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each loss of ``JEPA_LOSS_KINDS`` on two families of predictions of ``target`` [..., D]:

    * ``pred = s * target`` for each s in ``scales`` -> columns ``scale``, ``kind``, ``loss``;
    * ``pred = target`` with ``m`` added to its first coordinate, for each m in ``outliers``
      -> columns ``magnitude``, ``kind``, ``loss`` and ``outlier_grad``: d loss / d pred at the
      outlier coordinate times the number of elements (mse: 2m; smooth L1: min(m, 1)).
    """
    if not isinstance(target, Tensor) or not target.is_floating_point() or target.ndim < 2:
        raise TypeError(
            f"target must be a floating tensor [..., D] with >= 2 dims, got "
            f"{getattr(target, 'shape', type(target).__name__)}"
        )
    scales = _check_positive_values("scales", scales)
    outliers = _check_positive_values("outliers", outliers)
    target = target.detach().double()  # float64: 1 - cos stays exact enough at tiny outliers
    scaled = [
        {"scale": s, "kind": kind, "loss": float(jepa_loss(s * target, target, kind))}
        for s in scales
        for kind in JEPA_LOSS_KINDS
    ]
    rows = []
    for m in outliers:
        for kind in JEPA_LOSS_KINDS:
            pred = target.clone()
            pred.view(-1)[0] += m
            pred.requires_grad_(True)
            loss = jepa_loss(pred, target, kind)
            (grad,) = torch.autograd.grad(loss, pred)
            rows.append(
                {
                    "magnitude": m,
                    "kind": kind,
                    "loss": float(loss.detach()),
                    "outlier_grad": float(grad.view(-1)[0]) * target.numel(),
                }
            )
    return pd.DataFrame(scaled), pd.DataFrame(rows)


def vicreg_table(
    views: Mapping[str, tuple[Tensor, Tensor]], **vicreg_kwargs: float
) -> pd.DataFrame:
    """One row per named pair ``(z_a, z_b)``: VICReg's unweighted ``invariance``, ``variance``,
    ``covariance`` and weighted ``loss`` (``vicreg_kwargs`` go to :func:`vicreg_loss`), then
    ``rankme``, ``std_mean`` and ``mean_cosine`` of ``z_a`` (:func:`embedding_stats`)."""
    if not isinstance(views, Mapping) or not views:
        raise TypeError(f"views must be a non-empty mapping name -> (z_a, z_b), got {views!r}")
    rows = {}
    for name, pair in views.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"views[{name!r}] must be a pair (z_a, z_b), got {type(pair).__name__}"
            )
        z_a, z_b = pair
        terms = vicreg_loss(z_a, z_b, **vicreg_kwargs)
        stats = embedding_stats(z_a)
        rows[name] = {
            **{k: float(v) for k, v in terms.items()},
            **{k: stats[k] for k in ("rankme", "std_mean", "mean_cosine")},
        }
    columns = ["invariance", "variance", "covariance", "loss", "rankme", "std_mean", "mean_cosine"]
    return pd.DataFrame.from_dict(rows, orient="index")[columns]


def temperature_sweep(z_i: Tensor, z_j: Tensor, temperatures: Sequence[float]) -> pd.DataFrame:
    """NT-Xent (cosine) of fixed embeddings at each temperature: columns ``temperature``,
    ``loss``, ``accuracy`` (positive ranked first), ``pos_sim``, ``neg_sim``."""
    temperatures = _check_positive_values("temperatures", temperatures)
    rows = []
    with torch.no_grad():
        for tau in temperatures:
            out = nt_xent_loss(z_i, z_j, temperature=tau)
            rows.append({"temperature": tau, **{k: float(v) for k, v in out.items()}})
    return pd.DataFrame(rows)[["temperature", "loss", "accuracy", "pos_sim", "neg_sim"]]


def anchor_softmax(z_i: Tensor, z_j: Tensor, temperature: float, anchor: int = 0) -> Tensor:
    """NT-Xent's softmax for one anchor of cat(z_i, z_j): probabilities [2B] over the 2B - 1
    candidates (cosine similarity / temperature), 0 at the anchor itself. The anchor's positive
    is row ``(anchor + B) % 2B``."""
    if isinstance(temperature, bool) or not isinstance(temperature, Real) or not temperature > 0:
        raise ValueError(f"temperature must be a real number > 0, got {temperature!r}")
    z = torch.nn.functional.normalize(torch.cat([z_i, z_j]).detach().double(), dim=1)
    anchor = int_at_least("anchor", anchor, 0)
    if anchor >= len(z):
        raise ValueError(f"anchor must be in [0, {len(z) - 1}], got {anchor}")
    logits = (z @ z[anchor]) / float(temperature)
    logits[anchor] = -torch.inf
    return torch.softmax(logits, dim=0)


def _value(term: Tensor) -> float:
    return float(term.detach())


def loss_contributions(terms: Mapping[str, Tensor], loss_cfg: LossConfig) -> dict[str, float]:
    """Each term of an :class:`Objective`'s output times its weight in ``loss_cfg``: the parts
    that should add up to ``terms["loss"]`` (H-JEPA: one part per level)."""
    if not isinstance(loss_cfg, LossConfig):
        raise TypeError(
            f"loss_cfg must be a jepa_core.config.LossConfig, got {type(loss_cfg).__name__}"
        )
    parts: dict[str, float] = {}
    if loss_cfg.method == "hjepa":
        for level, weight in enumerate(loss_cfg.level_weights):
            parts[f"jepa_level{level}"] = weight * _value(terms[f"jepa_level{level}"])
    else:
        parts["jepa"] = _value(terms["jepa"])
    if loss_cfg.method == "cjepa":
        parts["vicreg"] = loss_cfg.vicreg_weight * _value(terms["vicreg"])
    if loss_cfg.method == "ijepa_ntxent":
        parts["ntxent"] = loss_cfg.ntxent_weight * _value(terms["ntxent"])
    if loss_cfg.pixel_weight > 0:
        parts["pixel"] = loss_cfg.pixel_weight * _value(terms["pixel"])
    return parts


def objective_terms(
    loss_cfg: LossConfig,
    context_encoder: nn.Module,
    target_encoder: nn.Module,
    predictor: nn.Module,
    images: Tensor,
    masks: MultiBlockMasks,
    *,
    objective: Objective | None = None,
) -> dict[str, Tensor]:
    """The loss terms of one training step (the forward of ``jepa_core.train.train_step``),
    targets under ``torch.no_grad()``; the terms stay in the graph of the context encoder and
    predictor. Two-view methods expect ``images`` = cat(view a, view b). ``objective``: a run's
    own (its projector's weights); by default a new one built from ``loss_cfg``."""
    if not isinstance(loss_cfg, LossConfig):
        raise TypeError(
            f"loss_cfg must be a jepa_core.config.LossConfig, got {type(loss_cfg).__name__}"
        )
    if loss_cfg.method == "lejepa":
        raise ValueError(
            "objective_terms composes the I-JEPA step (teacher, masks, predictor); LeJEPA has "
            "none: use Objective.lejepa on the views' pooled embeddings"
        )
    if objective is None:
        objective = Objective(
            loss_cfg,
            embed_dim=context_encoder.embed_dim,
            patch_size=context_encoder.patch_size,
            in_chans=context_encoder.in_chans,
        )
    if predictor.out_levels != objective.levels:
        raise ValueError(
            f"predictor.out_levels must equal the method's levels ({objective.levels} "
            f"for loss.method={loss_cfg.method!r}), got {predictor.out_levels}"
        )
    if objective.views == 2 and images.shape[0] % 2:
        raise ValueError(
            f"loss.method={loss_cfg.method!r} needs images = cat(view a, view b), an "
            f"even batch, got {images.shape[0]} images"
        )
    expected = jepa_batch_size(objective, images.shape[0])
    if masks.context.shape[0] != expected:
        raise ValueError(
            f"masks are for {masks.context.shape[0]} images but loss.method={loss_cfg.method!r} "
            f"runs I-JEPA on {expected} of the {images.shape[0]} images (views_from="
            f"{loss_cfg.views_from!r}): draw the masks for {expected}"
        )
    x = jepa_inputs(objective, images)  # the step of jepa_core.train.train_step, steps 1-4
    with torch.no_grad():
        targets = target_features(
            target_encoder,
            x,
            masks.targets,
            levels=objective.levels,
            layer_norm=loss_cfg.target_layer_norm,
        )
    context = context_encoder(x, keep=masks.context)
    preds = predictor(context, masks.context, masks.targets)
    views = two_view_embeddings(objective, context_encoder, images, context)
    return objective(preds.float(), targets.float(), views, x, masks.targets)


def parameter_gradients(loss: Tensor, module: nn.Module) -> list[Tensor | None]:
    """d loss / d p for every parameter p of ``module`` (None where ``loss`` does not depend on
    p; all None when ``loss`` has no autograd graph at all). The graph is kept, so several terms
    of one forward pass can be probed in turn."""
    if not isinstance(loss, Tensor) or loss.ndim != 0:
        raise TypeError(
            f"loss must be a scalar tensor, got {getattr(loss, 'shape', type(loss).__name__)}"
        )
    params = list(module.parameters())
    if not params:
        raise ValueError(f"module {type(module).__name__} has no parameters")
    if not loss.requires_grad:
        return [None] * len(params)
    return list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))


def gradient_norm(grads: Sequence[Tensor | None]) -> float:
    """Global L2 norm of a list of gradients, None counting as zero."""
    return float(sum(float(g.double().pow(2).sum()) for g in grads if g is not None) ** 0.5)


# --- figures --------------------------------------------------------------------------------
