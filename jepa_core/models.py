"""ViT context/target encoder and narrow ViT predictor of I-JEPA, built from timm parts.

Follows the official I-JEPA code (facebookresearch/ijepa, ``src/models/vision_transformer.py``):

    encoder(x, keep)  = LN(Blocks(gather(PatchEmbed(x) + pos, keep)))          no class token
    predictor(z, c, t) = Proj(LN(Blocks([Embed(z) + pos_p[c] ; mask + pos_p[t_k]]))[-Nt:])
                         one copy of the context per target block k

``pos`` and ``pos_p`` are fixed 2-D sin-cos position embeddings (timm
``build_sincos2d_pos_embed``, layout [sin(row w), sin(col w), cos(row w), cos(col w)],
w_k = 1 / 10000^(k / (D/4))), stored as buffers, so no optimiser and no EMA ever touches them.
Patches are indexed row-major: token index = row * W + col, the order of timm's PatchEmbed.

Initialisation (official ``_init_weights`` + ``fix_init_weight``): Linear weights
trunc_normal(std=0.02), biases 0, LayerNorm weight 1 bias 0, mask token trunc_normal(std=0.02);
then block l (1-based) has attn.proj.weight and mlp.fc2.weight divided by sqrt(2 l), so the
residual stream does not grow with depth. One deliberate difference: the patch-embedding conv
is initialised as a Linear on flattened patches with Xavier-uniform, as MAE does (He et al.
2022). With std 0.02 and tiny patches (4x4x1 = 16 inputs) the patch content is ~10x weaker
than the sin-cos positions, so every mean-pooled embedding starts nearly identical (mean cosine
0.999, RankMe 1.5 on mnist5k); Xavier restores the balance (RankMe 2.9, k-NN 35% -> 40%).
"""

from __future__ import annotations

import copy
import math
from functools import partial

import torch
from timm.layers import PatchEmbed, build_sincos2d_pos_embed, resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from .checks import int_at_least
from .masks import apply_masks

INIT_STD = 0.02
LAYER_NORM_EPS = 1e-6  # official I-JEPA: partial(nn.LayerNorm, eps=1e-6)

MODEL_PRESETS: dict[str, dict[str, int]] = {
    # trains a useful encoder in CPU-minutes on 28x28 MNIST with patch 4 (7x7 grid)
    "cpu": dict(
        embed_dim=128, depth=4, num_heads=4, predictor_dim=64, predictor_depth=2, predictor_heads=4
    ),
    # timm ViT-Ti / ViT-S widths (head width 64); predictor half as wide, same head count
    "vit_tiny": dict(
        embed_dim=192, depth=12, num_heads=3, predictor_dim=96, predictor_depth=6, predictor_heads=3
    ),
    "vit_small": dict(
        embed_dim=384,
        depth=12,
        num_heads=6,
        predictor_dim=192,
        predictor_depth=6,
        predictor_heads=6,
    ),
}


def _as_hw(name: str, value: object) -> tuple[int, int]:
    """An int (square) or a pair of ints -> (H, W)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int_at_least(name, value, 1), value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int_at_least(f"{name}[0]", value[0], 1), int_at_least(f"{name}[1]", value[1], 1)
    raise TypeError(f"{name} must be an int or a pair (H, W) of ints, got {value!r}")


def _check_width(name: str, dim: int, num_heads: int) -> None:
    if dim % 4 != 0:
        raise ValueError(
            f"{name} must be divisible by 4 for the 2-D sin-cos position embedding "
            f"(sin/cos x row/col), got {name}={dim}"
        )
    if dim % num_heads != 0:
        raise ValueError(f"{name}={dim} must be divisible by the number of heads, got {num_heads}")


def sincos_pos_embed(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding [1, H*W, dim], row-major (index = row * W + col)."""
    # timm's ndgrid is 'ij' indexing over (H, W), flattened: exactly PatchEmbed's token order.
    return build_sincos2d_pos_embed(list(grid), dim=dim).unsqueeze(0)


def init_weights_(module: nn.Module, blocks: nn.ModuleList) -> None:
    """Official I-JEPA initialisation (``_init_weights``, then ``fix_init_weight``)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            # the patch-embedding conv is a Linear on flattened patches: same init
            nn.init.trunc_normal_(m.weight, std=INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, PatchEmbed):
            w = m.proj.weight
            nn.init.xavier_uniform_(w.data.view(w.shape[0], -1))  # MAE: like a Linear
    with torch.no_grad():
        for layer_id, block in enumerate(blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))


def _make_blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path_rate: float
) -> nn.ModuleList:
    # stochastic depth grows linearly with depth (official I-JEPA / timm)
    rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth > 0 else []
    return nn.ModuleList(
        Block(
            dim,
            num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path=rate,
            norm_layer=partial(nn.LayerNorm, eps=LAYER_NORM_EPS),
        )
        for rate in rates
    )


class Encoder(nn.Module):
    """ViT encoder without class token: ``forward(images, keep) -> [B, K, D]``.

    ``keep`` [B, K] are row-major patch indices; kept tokens are *gathered* after adding
    positions (official ``apply_masks``), so the blocks never see the dropped patches.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int],
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.img_size = _as_hw("img_size", img_size)
        self.patch_size = int_at_least("patch_size", patch_size, 1)
        self.in_chans = int_at_least("in_chans", in_chans, 1)
        self.embed_dim = int_at_least("embed_dim", embed_dim, 1)
        self.depth = int_at_least("depth", depth, 0)
        int_at_least("num_heads", num_heads, 1)
        if any(s % patch_size for s in self.img_size):
            raise ValueError(
                f"img_size {self.img_size} must be divisible by patch_size {patch_size}"
            )
        _check_width("embed_dim", embed_dim, num_heads)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")

        self.grid = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        # Images of another size whose sides are whole patches (LeJEPA's local views) pass too.
        self.patch_embed = PatchEmbed(
            self.img_size, patch_size, in_chans, embed_dim, strict_img_size=False
        )
        self.register_buffer("pos_embed", sincos_pos_embed(self.grid, embed_dim))
        self.blocks = _make_blocks(embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        init_weights_(self, self.blocks)

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embeddings plus fixed positions, all patches: [B, N, D] (before any block).

        An image of another size (its sides whole patches; timm's PatchEmbed checks) gets the
        position grid resampled to its own grid (bicubic, timm's ``resample_abs_pos_embed``, as
        DINO does for its local crops): a small view spans the whole image's positions."""
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        pos = self.pos_embed
        if grid != self.grid:
            pos = resample_abs_pos_embed(pos, list(grid), list(self.grid), num_prefix_tokens=0)
        return self.patch_embed(images) + pos

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, C, H, W]; keep [B, K] row-major indices of the patches to keep.

        All patches are kept if ``keep`` is None.
        """
        x = self.embed_patches(images)
        if keep is not None:
            x = apply_masks(x, keep)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_layers(self, images: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
        """Outputs of the last ``n_levels`` blocks on the full image, shallow to deep, [B, N, D].

        Only the last (deepest) level goes through the final LayerNorm, so it equals
        ``forward(images)``; intermediate levels are raw block outputs (residual stream) and the
        caller layer-norms them when using them as targets.
        """
        int_at_least("n_levels", n_levels, 1)
        if n_levels > self.depth:
            raise ValueError(f"n_levels must be in [1, depth={self.depth}], got {n_levels}")
        x = self.embed_patches(images)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i >= self.depth - n_levels:
                outputs.append(x)
        outputs[-1] = self.norm(outputs[-1])
        return outputs


class Predictor(nn.Module):
    """Narrow ViT predictor: ``forward(context_tokens, context_idx, target_idx)``.

    Shapes: context_tokens [B, Nc, D], context_idx [B, Nc], target_idx [B, T, Nt]
    -> [B, T, Nt, D * out_levels]. All T target blocks are predicted in one pass on a batch
    of B*T sequences [context ; T_k mask tokens]; a block's prediction sees the context and its
    own mask tokens only, never another block's positions.
    """

    def __init__(
        self,
        num_patches_grid: tuple[int, int],
        embed_dim: int,
        predictor_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        out_levels: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(num_patches_grid, (tuple, list)) or len(num_patches_grid) != 2:
            raise TypeError(
                f"num_patches_grid must be a pair (H, W) of patch counts, got {num_patches_grid!r}"
            )
        self.grid = _as_hw("num_patches_grid", tuple(num_patches_grid))
        self.num_patches = self.grid[0] * self.grid[1]
        self.embed_dim = int_at_least("embed_dim", embed_dim, 1)
        self.predictor_dim = int_at_least("predictor_dim", predictor_dim, 1)
        self.depth = int_at_least("depth", depth, 0)
        self.out_levels = int_at_least("out_levels", out_levels, 1)
        int_at_least("num_heads", num_heads, 1)
        _check_width("predictor_dim", predictor_dim, num_heads)

        self.embed = nn.Linear(embed_dim, predictor_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_dim))
        self.register_buffer("pos_embed", sincos_pos_embed(self.grid, predictor_dim))
        self.blocks = _make_blocks(predictor_dim, depth, num_heads, mlp_ratio, True, 0.0)
        self.norm = nn.LayerNorm(predictor_dim, eps=LAYER_NORM_EPS)
        self.proj = nn.Linear(predictor_dim, embed_dim * out_levels)
        nn.init.trunc_normal_(self.mask_token, std=INIT_STD)
        init_weights_(self, self.blocks)

    def _positions(self, idx: torch.Tensor) -> torch.Tensor:
        """Position embeddings at patch indices idx [B, *S] -> [B, *S, Dp]."""
        return apply_masks(self.pos_embed.expand(idx.shape[0], -1, -1), idx)

    def forward(
        self, context_tokens: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor
    ) -> torch.Tensor:
        B, Nc, D = context_tokens.shape
        T, Nt = target_idx.shape[1:]
        assert D == self.embed_dim, (
            f"context_tokens last dim must be embed_dim={self.embed_dim}, got {D}"
        )
        assert context_idx.shape == (B, Nc), (
            f"context_idx must be [B, Nc] = [{B}, {Nc}], got {tuple(context_idx.shape)}"
        )
        assert target_idx.shape[0] == B, (
            f"target_idx must be [B={B}, T, Nt], got {tuple(target_idx.shape)}"
        )
        context = self.embed(context_tokens) + self._positions(context_idx)  # [B, Nc, Dp]
        queries = self.mask_token + self._positions(target_idx.reshape(B, T * Nt))
        queries = queries.reshape(B, T, Nt, self.predictor_dim)
        # one copy of the context per target block, batch index b*T + k
        context = context.unsqueeze(1).expand(B, T, Nc, self.predictor_dim)
        x = torch.cat([context, queries], dim=2).reshape(B * T, Nc + Nt, self.predictor_dim)
        for block in self.blocks:
            x = block(x)
        x = self.proj(self.norm(x[:, Nc:]))
        return x.reshape(B, T, Nt, self.embed_dim * self.out_levels)


class PixelHead(nn.Module):
    """Linear map from predicted tokens [..., D] to patch pixels [..., p*p*C].

    The pixels are in ``patchify`` order.
    """

    def __init__(self, embed_dim: int, patch_size: int, in_chans: int) -> None:
        super().__init__()
        int_at_least("embed_dim", embed_dim, 1)
        self.patch_size = int_at_least("patch_size", patch_size, 1)
        self.in_chans = int_at_least("in_chans", in_chans, 1)
        self.proj = nn.Linear(embed_dim, patch_size * patch_size * in_chans)
        nn.init.trunc_normal_(self.proj.weight, std=INIT_STD)
        nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens)


class Projector(nn.Sequential):
    """The MLP between a pooled embedding and a batch-statistic loss: ``in_dim -> dims[0] ->
    ... -> dims[-1]``, Linear-BatchNorm1d-ReLU between layers, a plain Linear last. VICReg's
    expander (Bardes et al. 2022: 3 layers of 8192) and LeJEPA's projector have this shape;
    the workbook's presets are narrower, for CPUs."""

    def __init__(self, in_dim: int, dims: tuple[int, ...]) -> None:
        int_at_least("in_dim", in_dim, 1)
        if not dims:
            raise ValueError("dims must name at least one layer width")
        widths = [in_dim] + [int_at_least("dims", d, 1) for d in dims]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 1:
                layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        super().__init__(*layers)
        self.out_dim = widths[-1]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, N, p*p*C].

    Patches row-major (row * W + col), pixels (py, px, c) (MAE).
    """
    int_at_least("patch_size", patch_size, 1)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            f"images must be a tensor [B, C, H, W], "
            f"got {getattr(images, 'shape', type(images).__name__)}"
        )
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"image size {(H, W)} must be divisible by patch_size {patch_size}")
    h, w = H // patch_size, W // patch_size
    x = images.reshape(B, C, h, patch_size, w, patch_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, h * w, patch_size * patch_size * C)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as position embeddings are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_models(
    size: str,
    img_size: int | tuple[int, int],
    patch_size: int,
    in_chans: int,
    out_levels: int = 1,
    drop_path_rate: float = 0.0,
) -> tuple[Encoder, Encoder, Predictor]:
    """(context_encoder, target_encoder, predictor) for a preset of ``MODEL_PRESETS``.

    The target encoder is a deep copy of the context encoder (equal weights) with
    requires_grad False everywhere; it is updated only by EMA. It is returned in eval mode so
    that drop-path never perturbs the targets. ``drop_path_rate`` applies to the encoders only.
    """
    if size not in MODEL_PRESETS:
        raise ValueError(f"size must be one of {sorted(MODEL_PRESETS)}, got {size!r}")
    preset = MODEL_PRESETS[size]
    context_encoder = Encoder(
        img_size,
        patch_size,
        in_chans,
        embed_dim=preset["embed_dim"],
        depth=preset["depth"],
        num_heads=preset["num_heads"],
        drop_path_rate=drop_path_rate,
    )
    target_encoder = copy.deepcopy(context_encoder)
    target_encoder.requires_grad_(False)
    target_encoder.eval()
    predictor = Predictor(
        context_encoder.grid,
        embed_dim=preset["embed_dim"],
        predictor_dim=preset["predictor_dim"],
        depth=preset["predictor_depth"],
        num_heads=preset["predictor_heads"],
        out_levels=out_levels,
    )
    return context_encoder, target_encoder, predictor
