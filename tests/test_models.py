"""Specification of jepa_core.models: the ViT encoder, the I-JEPA predictor and their helpers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from jepa_core.models import (
    MODEL_PRESETS,
    Encoder,
    PixelHead,
    Predictor,
    build_models,
    count_parameters,
    patchify,
)


def small_encoder(depth: int = 2, img_size=16, patch_size=4, in_chans=3, dim=32) -> Encoder:
    torch.manual_seed(0)
    return Encoder(img_size, patch_size, in_chans, embed_dim=dim, depth=depth, num_heads=4).eval()


def small_predictor(grid=(4, 4), dim=32, out_levels=1) -> Predictor:
    torch.manual_seed(1)
    return Predictor(
        grid, dim, predictor_dim=16, depth=2, num_heads=2, out_levels=out_levels
    ).eval()


def random_keep(batch: int, num_patches: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(num_patches, generator=g)[:k] for _ in range(batch)])


# --- encoder -------------------------------------------------------------------------------


def test_encoder_returns_all_patches_without_keep_and_k_tokens_with_keep():
    enc = small_encoder()
    images = torch.randn(3, 3, 16, 16)
    assert enc(images).shape == (3, 16, 32)
    assert enc(images, keep=random_keep(3, 16, 5)).shape == (3, 5, 32)


def test_no_class_token_one_token_per_grid_cell():
    enc = Encoder((8, 12), 4, 1, embed_dim=16, depth=1, num_heads=2)
    assert enc.grid == (2, 3)
    assert enc.num_patches == 6
    assert enc(torch.randn(2, 1, 8, 12)).shape[1] == 6
    assert not any("cls" in name for name, _ in enc.named_parameters())


def test_keep_gathers_the_position_embedded_tokens_before_the_first_block():
    enc = small_encoder(depth=2)
    images = torch.randn(2, 3, 16, 16)
    keep = random_keep(2, 16, 7, seed=3)
    seen = {}
    enc.blocks[0].register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    enc(images, keep=keep)
    full = enc.embed_patches(images)
    expected = torch.stack([full[b, keep[b]] for b in range(2)])  # plain indexing reference
    assert torch.equal(seen["x"], expected)


def test_depth_zero_encoder_with_keep_equals_full_output_at_kept_indices():
    enc = small_encoder(depth=0)
    images = torch.randn(2, 3, 16, 16)
    keep = random_keep(2, 16, 6, seed=5)
    full = enc(images)
    kept = enc(images, keep=keep)
    for b in range(2):
        torch.testing.assert_close(kept[b], full[b, keep[b]])


def test_kept_tokens_differ_from_full_forward_because_attention_sees_fewer_tokens():
    enc = small_encoder(depth=2)
    images = torch.randn(1, 3, 16, 16)
    keep = torch.arange(8).unsqueeze(0)
    assert not torch.allclose(enc(images, keep=keep), enc(images)[:, :8], atol=1e-4)


def test_position_embedding_is_a_fixed_buffer_not_a_parameter():
    enc = small_encoder()
    assert "pos_embed" in dict(enc.named_buffers())
    assert "pos_embed" not in dict(enc.named_parameters())
    pred = small_predictor()
    assert "pos_embed" in dict(pred.named_buffers())
    assert "pos_embed" not in dict(pred.named_parameters())


def test_position_embedding_is_timm_sincos_in_row_major_order():
    dim, (H, W) = 16, (2, 3)
    enc = Encoder((8, 12), 4, 1, embed_dim=dim, depth=1, num_heads=2)
    pos = enc.pos_embed[0]
    assert torch.equal(pos, build_sincos2d_pos_embed([H, W], dim=dim))
    # independent formula: [sin(r w), sin(c w), cos(r w), cos(c w)], w_k = 10000^(-k/(dim/4))
    quarter = dim // 4
    omega = [10000.0 ** (-k / quarter) for k in range(quarter)]
    for row in range(H):
        for col in range(W):
            expected = (
                [math.sin(row * w) for w in omega]
                + [math.sin(col * w) for w in omega]
                + [math.cos(row * w) for w in omega]
                + [math.cos(col * w) for w in omega]
            )
            torch.testing.assert_close(pos[row * W + col], torch.tensor(expected))


def test_a_smaller_image_gets_the_position_grid_resampled_to_its_own_grid():
    """LeJEPA's local views: an 8 x 12 image on a 16 x 16 encoder (patch 4) has a 2 x 3 grid
    whose positions are the 4 x 4 grid resized bicubically (checked against torch's own
    interpolation); the encoder's own size keeps its grid unchanged."""
    enc = small_encoder(depth=0)
    small = torch.randn(2, 3, 8, 12)
    grid = enc.pos_embed.reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, size=(2, 3), mode="bicubic", antialias=True)
    expected_pos = resized.permute(0, 2, 3, 1).reshape(1, 6, -1)
    with torch.no_grad():
        assert torch.allclose(
            enc.embed_patches(small), enc.patch_embed(small) + expected_pos, atol=1e-6
        )
        assert enc(small).shape == (2, 6, 32)
        full = torch.randn(2, 3, 16, 16)
        assert torch.equal(enc.embed_patches(full), enc.patch_embed(full) + enc.pos_embed)


def test_encoder_is_assembled_from_timm_parts():
    enc = small_encoder(depth=3)
    assert isinstance(enc.patch_embed, PatchEmbed)
    assert len(enc.blocks) == 3
    assert all(isinstance(block, Block) for block in enc.blocks)
    assert isinstance(enc.norm, nn.LayerNorm)
    assert (enc.embed_dim, enc.patch_size, enc.in_chans, enc.depth) == (32, 4, 3, 3)


def test_forward_layers_returns_last_levels_and_the_deepest_equals_forward():
    enc = small_encoder(depth=3)
    images = torch.randn(2, 3, 16, 16)
    block_outputs = []
    for block in enc.blocks:
        block.register_forward_hook(lambda mod, args, out: block_outputs.append(out))
    levels = enc.forward_layers(images, n_levels=2)
    assert len(levels) == 2
    assert all(level.shape == (2, 16, 32) for level in levels)
    torch.testing.assert_close(levels[-1], enc(images))
    torch.testing.assert_close(levels[0], block_outputs[1])  # raw output of block 2 of 3


def test_forward_layers_rejects_more_levels_than_blocks():
    with pytest.raises(ValueError, match="n_levels"):
        small_encoder(depth=2).forward_layers(torch.randn(1, 3, 16, 16), n_levels=3)


# --- initialisation ------------------------------------------------------------------------


def test_residual_projections_rescaled_by_inverse_sqrt_two_layer_id():
    torch.manual_seed(0)
    enc = Encoder(28, 4, 1, embed_dim=128, depth=4, num_heads=4)
    for layer_id, block in enumerate(enc.blocks, start=1):
        expected = 0.02 / math.sqrt(2 * layer_id)
        for weight in (block.attn.proj.weight, block.mlp.fc2.weight):
            assert weight.std().item() == pytest.approx(expected, rel=0.05)
    assert enc.blocks[-1].mlp.fc2.weight.std() < enc.blocks[0].mlp.fc2.weight.std()


def test_linear_weights_std_002_patch_embed_xavier_biases_zero_layernorm_identity():
    torch.manual_seed(0)
    enc = Encoder(28, 4, 1, embed_dim=128, depth=2, num_heads=4)
    assert enc.blocks[0].mlp.fc1.weight.std().item() == pytest.approx(0.02, rel=0.05)
    # patch embedding: Xavier-uniform as a Linear (MAE), std = sqrt(2 / (fan_in + fan_out))
    fan_in, fan_out = 4 * 4 * 1, 128
    expected = (2.0 / (fan_in + fan_out)) ** 0.5
    assert enc.patch_embed.proj.weight.std().item() == pytest.approx(expected, rel=0.1)
    assert torch.all(enc.blocks[1].attn.qkv.bias == 0)
    assert torch.all(enc.norm.weight == 1) and torch.all(enc.norm.bias == 0)
    pred = Predictor((7, 7), 128, 64, depth=1, num_heads=4)
    assert pred.mask_token.std().item() == pytest.approx(0.02, rel=0.5)


# --- predictor -----------------------------------------------------------------------------


def test_predictor_output_shape_with_four_target_blocks():
    pred = small_predictor()
    out = pred(torch.randn(2, 9, 32), random_keep(2, 16, 9), random_keep(2, 16, 12).view(2, 4, 3))
    assert out.shape == (2, 4, 3, 32)


def test_predictor_out_levels_multiplies_the_output_width():
    pred = small_predictor(out_levels=3)
    out = pred(torch.randn(2, 5, 32), random_keep(2, 16, 5), random_keep(2, 16, 4).view(2, 2, 2))
    assert out.shape == (2, 2, 2, 96)


def test_prediction_of_a_block_depends_only_on_its_own_positions():
    pred = small_predictor()
    context, context_idx = torch.randn(2, 6, 32), random_keep(2, 16, 6)
    targets = random_keep(2, 16, 8, seed=1).view(2, 4, 2)
    moved = targets.clone()
    moved[:, 2] = (moved[:, 2] + 5) % 16
    before, after = pred(context, context_idx, targets), pred(context, context_idx, moved)
    for k in (0, 1, 3):
        torch.testing.assert_close(after[:, k], before[:, k])
    assert not torch.allclose(after[:, 2], before[:, 2])


def test_all_blocks_at_once_equals_one_block_at_a_time():
    pred = small_predictor()
    context, context_idx = torch.randn(3, 5, 32), random_keep(3, 16, 5)
    targets = random_keep(3, 16, 12, seed=2).view(3, 4, 3)
    together = pred(context, context_idx, targets)
    for k in range(4):
        alone = pred(context, context_idx, targets[:, k : k + 1])
        torch.testing.assert_close(together[:, k : k + 1], alone, atol=1e-5, rtol=1e-5)


def test_predictor_names_a_mismatched_argument():
    pred = small_predictor()
    context = torch.randn(2, 5, 32)
    targets = random_keep(2, 16, 4).view(2, 2, 2)
    with pytest.raises(AssertionError, match="context_idx"):
        pred(context, random_keep(2, 16, 4), targets)
    with pytest.raises(AssertionError, match="embed_dim"):
        pred(torch.randn(2, 5, 8), random_keep(2, 16, 5), targets)
    with pytest.raises(RuntimeError, match="index"):  # out of the grid: torch's gather refuses it
        pred(context, random_keep(2, 16, 5), torch.full((2, 2, 2), 16))


# --- build_models and presets --------------------------------------------------------------


def test_target_encoder_is_a_frozen_copy_with_equal_weights():
    context_encoder, target_encoder, _ = build_models("cpu", 28, 4, 1)
    assert count_parameters(target_encoder, trainable_only=True) == 0
    assert target_encoder is not context_encoder
    context_params = dict(context_encoder.named_parameters())
    for name, param in target_encoder.named_parameters():
        assert torch.equal(param, context_params[name])
        assert param.data_ptr() != context_params[name].data_ptr()
    assert not target_encoder.training


@pytest.mark.parametrize("size", sorted(MODEL_PRESETS))
@pytest.mark.parametrize(("img_size", "in_chans"), [(28, 1), (32, 3)])
def test_presets_build_and_run_for_mnist_and_cifar_shapes(size, img_size, in_chans):
    context_encoder, target_encoder, predictor = build_models(size, img_size, 4, in_chans)
    preset = MODEL_PRESETS[size]
    grid = img_size // 4
    assert context_encoder.grid == (grid, grid)
    assert predictor.predictor_dim == preset["predictor_dim"]
    images = torch.randn(2, in_chans, img_size, img_size)
    keep = random_keep(2, grid * grid, 10)
    with torch.no_grad():
        tokens = context_encoder(images, keep=keep)
        out = predictor(tokens, keep, random_keep(2, grid * grid, 8, seed=1).view(2, 4, 2))
        assert target_encoder(images).shape == (2, grid * grid, preset["embed_dim"])
    assert out.shape == (2, 4, 2, preset["embed_dim"])


def test_unknown_size_raises_and_lists_the_presets():
    with pytest.raises(ValueError, match="vit_giant") as info:
        build_models("vit_giant", 28, 4, 1)
    assert all(name in str(info.value) for name in MODEL_PRESETS)


def test_image_size_not_divisible_by_patch_raises_naming_both():
    with pytest.raises(ValueError, match=r"img_size.*30.*patch_size 4"):
        build_models("cpu", 30, 4, 1)


def test_width_not_divisible_by_four_or_heads_raises():
    with pytest.raises(ValueError, match="embed_dim.*divisible by 4"):
        Encoder(16, 4, 3, embed_dim=30, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="heads"):
        Encoder(16, 4, 3, embed_dim=32, depth=1, num_heads=3)
    with pytest.raises(ValueError, match="predictor_dim"):
        Predictor((4, 4), 32, predictor_dim=18, depth=1, num_heads=2)


def test_encoder_rejects_bad_images_and_keep():
    enc = small_encoder()
    with pytest.raises(AssertionError, match="divisible"):  # timm's PatchEmbed checks the size
        enc(torch.randn(2, 3, 10, 16))
    with pytest.raises(RuntimeError, match="int64"):
        enc(torch.randn(2, 3, 16, 16), keep=torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match="index"):
        enc(torch.randn(2, 3, 16, 16), keep=torch.full((2, 3), 16))


def test_gradients_reach_every_context_encoder_parameter_through_the_predictor():
    context_encoder, target_encoder, predictor = build_models("cpu", 28, 4, 1)
    images = torch.randn(2, 1, 28, 28)
    keep = random_keep(2, 49, 20)
    preds = predictor(context_encoder(images, keep=keep), keep, random_keep(2, 49, 8).view(2, 4, 2))
    preds.square().mean().backward()
    for name, param in context_encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(param.grad is None for param in target_encoder.parameters())
    assert predictor.mask_token.grad is not None


# --- pixels --------------------------------------------------------------------------------


def test_patchify_cuts_row_major_patches_with_pixels_in_row_col_channel_order():
    images = torch.randn(2, 3, 8, 12)
    patches = patchify(images, 4)
    assert patches.shape == (2, 6, 48)
    for row in range(2):
        for col in range(3):
            cell = images[:, :, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4]
            expected = cell.permute(0, 2, 3, 1).reshape(2, 48)
            assert torch.equal(patches[:, row * 3 + col], expected)


def test_patchify_token_order_matches_patch_embed():
    enc = Encoder((8, 12), 4, 3, embed_dim=16, depth=1, num_heads=2)
    linear = torch.randn(16, 48)  # acts on patchify's (py, px, c) pixel order
    with torch.no_grad():
        enc.patch_embed.proj.weight.copy_(linear.view(16, 4, 4, 3).permute(0, 3, 1, 2))
        enc.patch_embed.proj.bias.zero_()
    images = torch.randn(2, 3, 8, 12)
    torch.testing.assert_close(enc.patch_embed(images), patchify(images, 4) @ linear.T)


def test_pixel_head_maps_tokens_to_patch_pixels():
    head = PixelHead(32, 4, 3)
    assert head(torch.randn(2, 4, 5, 32)).shape == (2, 4, 5, 48)


def test_count_parameters_counts_parameter_elements_only():
    enc = small_encoder()
    assert count_parameters(enc) == sum(p.numel() for p in enc.parameters())
    frozen = small_encoder().requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == 0
    assert count_parameters(nn.Linear(3, 2)) == 8
