"""What each method predicts and how wrong it is: one small objective, chosen by the config.

    targets = LN(target_encoder(x))[target blocks]                     (official I-JEPA)
    I-JEPA        loss = D(pred, targets)                               D = jepa_loss(kind)
    C-JEPA        loss = D + w_vic * VICReg(z_a, z_b)                   (Mo & Tong, NeurIPS 2024)
    I-JEPA+NTXent loss = D + w_nt  * NTXent(z_a, z_b)                   (a proposed hybrid, tested)
    H-JEPA        loss = sum_l w_l * D(pred_l, LN(h_l)[target blocks])  (last L depths)
    any method    loss += w_pix * mse(pixel_head(pred), norm_pix(x)[target blocks])

z_a, z_b: the *online* (context-encoder) embeddings of two augmented views, mean-pooled, which
carry gradient; on the EMA target's stop-gradient features the term would train nothing.
``loss.views_from`` says which: ``full_view`` (the context encoder on each whole view; I-JEPA
runs on the first view) or ``masked_context`` (the pooled masked context tokens; I-JEPA runs on
both views). On the 7x7 grid of mnist5k the masked contexts keep ~15 of 49 patches at random
places, so their mean mostly encodes *which* patches were kept; measured here, VICReg on them
barely moved the embeddings' spread in a CPU-minute, on full views it did (README, notebook 06).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LossConfig
from .losses import jepa_loss, nt_xent_loss, vicreg_loss
from .masks import apply_masks
from .models import PixelHead, patchify

TWO_VIEW_METHODS = ("cjepa", "ijepa_ntxent")


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


class Objective(nn.Module):
    """The loss of one method. Owns the small pixel head when the pixel auxiliary is on."""

    def __init__(self, cfg: LossConfig, *, embed_dim: int, patch_size: int, in_chans: int):
        super().__init__()
        self.cfg = cfg
        self.method = cfg.method
        self.views = 2 if cfg.method in TWO_VIEW_METHODS else 1
        self.levels = len(cfg.level_weights) if cfg.method == "hjepa" else 1
        self.patch_size = patch_size
        self.pixel_head = (
            PixelHead(embed_dim, patch_size, in_chans) if cfg.pixel_weight > 0 else None
        )

    def forward(
        self,
        preds: Tensor,
        targets: Tensor,
        views: tuple[Tensor, Tensor] | None,
        images: Tensor,
        target_idx: Tensor,
    ) -> dict[str, Tensor]:
        """preds [B, n_t, Nt, L*D]; targets [B, n_t, Nt, (L,) D]; views: the pooled online
        embeddings (z_a, z_b) of two-view methods, else None; images [B, C, H, W] (what the
        predictions are about, for the pixel auxiliary)."""
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

        if cfg.method == "cjepa":
            z_a, z_b = views
            vic = vicreg_loss(z_a, z_b, *cfg.vicreg_coeffs)
            terms["vicreg"] = vic["loss"]
            for part in ("invariance", "variance", "covariance"):
                terms[f"vicreg_{part}"] = vic[part].detach()
            loss = loss + cfg.vicreg_weight * vic["loss"]
        elif cfg.method == "ijepa_ntxent":
            z_a, z_b = views
            nt = nt_xent_loss(z_a, z_b, temperature=cfg.ntxent_temperature)
            terms["ntxent"] = nt["loss"]
            for part in ("accuracy", "pos_sim", "neg_sim"):
                terms[f"ntxent_{part}"] = torch.as_tensor(nt[part]).detach()
            loss = loss + cfg.ntxent_weight * nt["loss"]

        if self.pixel_head is not None:
            terms["pixel"] = self.pixel_loss(first_level_preds, images, target_idx)
            loss = loss + cfg.pixel_weight * terms["pixel"]
        terms["loss"] = loss
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
    if objective.views == 2 and objective.cfg.views_from == "full_view":
        return images[: images.shape[0] // 2]
    return images


def two_view_embeddings(
    objective: Objective, context_encoder: nn.Module, images: Tensor, context: Tensor
) -> tuple[Tensor, Tensor] | None:
    """The online embeddings (z_a, z_b) a two-view method regularises, mean-pooled, with
    gradient: the context encoder on each whole view (``views_from="full_view"``) or the
    context tokens it already computed (``"masked_context"``). ``None`` for one-view methods."""
    if objective.views != 2:
        return None
    full_views = objective.cfg.views_from == "full_view"
    pooled = (context_encoder(images) if full_views else context).float().mean(dim=1)
    return pooled.chunk(2, dim=0)


def jepa_batch_size(objective: Objective, n_images: int) -> int:
    """How many images of a batch I-JEPA's masks are drawn for (see :func:`jepa_inputs`)."""
    if objective.views == 2 and objective.cfg.views_from == "full_view":
        return n_images // 2
    return n_images
