"""What each method predicts and how wrong it is: one small objective, chosen by the config.

    targets = LN(target_encoder(x))[target blocks]                     (official I-JEPA)
    I-JEPA        loss = D(pred, targets)                               D = jepa_loss(kind)
    C-JEPA        loss = D + w_vic * VICReg(g(z_a), g(z_b))             (Mo & Tong, NeurIPS 2024)
    I-JEPA+NTXent loss = D + w_nt  * NTXent(z_a, z_b)                   (a proposed hybrid, tested)
    H-JEPA        loss = sum_l w_l * D(pred_l, LN(h_l)[target blocks])  (last L depths)
    LeJEPA        loss = (1 - lam) * mean_v ||g(z_v) - mean_{global u} g(z_u)||^2
                         + lam * SIGReg(g(z_1), ..., g(z_V))            (Balestriero & LeCun 2025)
    any method    loss += w_pix * mse(pixel_head(pred), norm_pix(x)[target blocks])

z_v: the *online* (context-encoder) embeddings of the augmented views, mean-pooled, which
carry gradient; on the EMA target's stop-gradient features the term would train nothing.
g: the projector MLP (``loss.projector_dims``; VICReg's "expander", LeJEPA's projector), identity
when unset. LeJEPA has no teacher, no masks and no predictor: its "prediction" pulls every
view's embedding towards the mean of the 2 global views' embeddings (rbalestr-lab/lejepa's
minimal example), and SIGReg keeps the embeddings an isotropic Gaussian.

VICReg, NT-Xent and SIGReg are statistics of a batch: under torchrun they are computed on the
*global* batch (every rank's embeddings gathered with gradient), so 2 processes train on the
same loss as one; ``train.accumulate > 1`` is refused for these methods (each micro-batch would
see only its own images).
``loss.views_from`` says which: ``full_view`` (the context encoder on each whole view; I-JEPA
runs on the first view) or ``masked_context`` (the pooled masked context tokens; I-JEPA runs on
both views). On the 7x7 grid of mnist5k the masked contexts keep ~15 of 49 patches at random
places, so their mean mostly encodes *which* patches were kept; measured here, VICReg on them
barely moved the embeddings' spread in a CPU-minute, on full views it did (notebook 06's sweep).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import distributed
from .config import LossConfig
from .losses import jepa_loss, nt_xent_loss, sigreg_loss, vicreg_loss
from .masks import apply_masks
from .models import PixelHead, Projector, patchify

TWO_VIEW_METHODS = ("cjepa", "ijepa_ntxent")
BATCH_STATISTIC_METHODS = ("cjepa", "ijepa_ntxent", "lejepa")  # their terms see the whole batch
GLOBAL_VIEWS = 2  # LeJEPA's global views come first in each batch


def target_features(
    target_encoder: nn.Module,
    images: Tensor,
    target_idx: Tensor,
    *,
    levels: int = 1,
    layer_norm: bool = True,
) -> Tensor:
    """What to predict: the target encoder on the full image, layer-normed over features
    (no affine, as the official code), gathered at the target blocks.

    Returns [B, n_targets, Nt, D] (levels == 1) or [B, n_targets, Nt, levels, D].
    The caller decides whether this runs under ``torch.no_grad()`` (stop-gradient).
    """
    if levels == 1:
        layers = [target_encoder(images)]
    else:
        layers = target_encoder.forward_layers(images, levels)
    if layer_norm:
        layers = [F.layer_norm(h, h.shape[-1:]) for h in layers]
    gathered = [apply_masks(h, target_idx) for h in layers]
    return gathered[0] if levels == 1 else torch.stack(gathered, dim=-2)


def view_count(cfg: LossConfig) -> int:
    """How many views of each image a method trains on."""
    if cfg.method == "lejepa":
        return GLOBAL_VIEWS + cfg.local_views
    return 2 if cfg.method in TWO_VIEW_METHODS else 1


class Objective(nn.Module):
    """The loss of one method. Owns the projector and the small pixel head when they are on.

    ``dist``: the process group of the run; the batch-statistic terms gather every rank's
    embeddings (:func:`jepa_core.distributed.gather_batch`)."""

    def __init__(
        self,
        cfg: LossConfig,
        *,
        embed_dim: int,
        patch_size: int,
        in_chans: int,
        dist: distributed.DistContext | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.method = cfg.method
        self.views = view_count(cfg)
        self.levels = len(cfg.level_weights) if cfg.method == "hjepa" else 1
        self.patch_size = patch_size
        self.dist = dist or distributed.DistContext()
        self.pixel_head = (
            PixelHead(embed_dim, patch_size, in_chans) if cfg.pixel_weight > 0 else None
        )
        self.projector = Projector(embed_dim, cfg.projector_dims) if cfg.projector_dims else None

    def forward(
        self,
        preds: Tensor,
        targets: Tensor,
        views: tuple[Tensor, Tensor] | None,
        images: Tensor,
        target_idx: Tensor,
    ) -> dict[str, Tensor]:
        """preds [B, n_t, Nt, L*D]; targets [B, n_t, Nt, (L,) D]; views: the pooled online
        embeddings [2, b, D] of the two views of two-view methods, else None; images
        [B, C, H, W] (what the predictions are about, for the pixel auxiliary)."""
        cfg = self.cfg
        terms: dict[str, Tensor] = {}
        if self.levels == 1:
            terms["jepa"] = jepa_loss(preds, targets, kind=cfg.kind)
            first_level_preds = preds
        else:
            preds = preds.unflatten(-1, (self.levels, -1))
            jepa = preds.new_zeros(())
            # Level 0 is the deepest (the encoder output); weights follow loss.level_weights.
            for level, weight in enumerate(cfg.level_weights):
                term = jepa_loss(
                    preds[..., -1 - level, :], targets[..., -1 - level, :], kind=cfg.kind
                )
                terms[f"jepa_level{level}"] = term.detach()
                jepa = jepa + weight * term
            terms["jepa"] = jepa
            first_level_preds = preds[..., -1, :]
        loss = terms["jepa"]

        if views is not None:
            extra = self.view_terms(views)
            loss = loss + extra.pop("views")
            terms.update(extra)

        if self.pixel_head is not None:
            terms["pixel"] = self.pixel_loss(first_level_preds, images, target_idx)
            loss = loss + cfg.pixel_weight * terms["pixel"]
        terms["loss"] = loss
        return terms

    def view_terms(self, pooled: Tensor, step: int = 0) -> dict[str, Tensor]:
        """The method's term on the pooled online embeddings of its views, ``pooled`` [V, b, D]
        (this rank's b images), computed over the global batch: ``views`` is the weighted
        contribution to the loss, the rest are its parts (detached, for the log). ``step``
        seeds SIGReg's directions (LeJEPA)."""
        cfg = self.cfg
        z = distributed.gather_batch(self.dist, pooled, dim=1)  # [V, B, D], B = global batch
        if self.projector is not None:
            z = self.projector(z.flatten(0, 1)).unflatten(0, z.shape[:2])
        terms: dict[str, Tensor] = {}
        if self.method == "cjepa":
            vic = vicreg_loss(z[0], z[1], *cfg.vicreg_coeffs)
            terms["vicreg"] = vic["loss"]
            for part in ("invariance", "variance", "covariance"):
                terms[f"vicreg_{part}"] = vic[part].detach()
            terms["views"] = cfg.vicreg_weight * vic["loss"]
        elif self.method == "ijepa_ntxent":
            nt = nt_xent_loss(z[0], z[1], temperature=cfg.ntxent_temperature)
            terms["ntxent"] = nt["loss"]
            for part in ("accuracy", "pos_sim", "neg_sim"):
                terms[f"ntxent_{part}"] = torch.as_tensor(nt[part]).detach()
            terms["views"] = cfg.ntxent_weight * nt["loss"]
        elif self.method == "lejepa":
            centre = z[:GLOBAL_VIEWS].mean(dim=0)  # the global views' mean embedding, per image
            terms["prediction"] = (z - centre).square().mean()
            terms["sigreg"] = sigreg_loss(z, step=step, num_directions=cfg.sigreg_directions)
            lam = cfg.sigreg_weight
            terms["views"] = (1 - lam) * terms["prediction"] + lam * terms["sigreg"]
        else:
            raise ValueError(f"loss.method={self.method!r} has no term on views")
        return terms

    def lejepa(self, pooled: Tensor, step: int) -> dict[str, Tensor]:
        """LeJEPA's whole loss from the pooled embeddings of all views [V, b, D]."""
        terms = self.view_terms(pooled, step)
        terms["loss"] = terms.pop("views")
        return terms

    def pixel_loss(self, preds: Tensor, images: Tensor, target_idx: Tensor) -> Tensor:
        """MSE between the pixel head's output and the per-patch normalised pixels of the
        target patches (MAE's norm_pix_loss, He et al. 2022)."""
        pixels = apply_masks(patchify(images, self.patch_size), target_idx)
        mean, var = pixels.mean(dim=-1, keepdim=True), pixels.var(dim=-1, keepdim=True)
        pixels = (pixels - mean) / (var + 1e-6).sqrt()
        return F.mse_loss(self.pixel_head(preds), pixels)


def jepa_inputs(objective: Objective, images: Tensor) -> Tensor:
    """The images I-JEPA runs on: the first view (two-view methods with
    ``views_from="full_view"``) or all of ``images``."""
    if objective.method in TWO_VIEW_METHODS and objective.cfg.views_from == "full_view":
        return images[: images.shape[0] // 2]
    return images


def two_view_embeddings(
    objective: Objective, context_encoder: nn.Module, images: Tensor, context: Tensor
) -> Tensor | None:
    """The online embeddings [2, b, D] a two-view method regularises, mean-pooled, with
    gradient: the context encoder on each whole view (``views_from="full_view"``) or the
    context tokens it already computed (``"masked_context"``). ``None`` for one-view methods."""
    if objective.method not in TWO_VIEW_METHODS:
        return None
    full_views = objective.cfg.views_from == "full_view"
    pooled = (context_encoder(images) if full_views else context).float().mean(dim=1)
    return pooled.unflatten(0, (2, -1))


def view_embeddings(
    objective: Objective, encoder: nn.Module, images: Tensor | Sequence[Tensor]
) -> Tensor:
    """LeJEPA's embeddings: the encoder on every view, mean-pooled, [V, b, D]. ``images``: the
    V views one after another, [V * b, C, H, W], or a list of such tensors, one per view size
    (the global views, then the smaller local ones)."""
    groups = [images] if isinstance(images, Tensor) else list(images)
    b = sum(g.shape[0] for g in groups) // objective.views
    pooled = [encoder(g).float().mean(dim=1).unflatten(0, (-1, b)) for g in groups]
    return torch.cat(pooled, dim=0)


def jepa_batch_size(objective: Objective, n_images: int) -> int:
    """How many images of a batch I-JEPA's masks are drawn for (see :func:`jepa_inputs`)."""
    if objective.method in TWO_VIEW_METHODS and objective.cfg.views_from == "full_view":
        return n_images // 2
    return n_images
