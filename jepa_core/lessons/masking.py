"""What the I-JEPA mask sampler realises over many draws, and what the batching rule costs.

The sampler (:func:`jepa_core.masks.sample_multiblock_masks`, after the official
``src/masks/multiblock.py`` of facebookresearch/ijepa; Assran et al., CVPR 2023) draws one
uniform ``r_t`` for the target blocks and one ``r_c`` for the context block of a batch::

    s_t = lo_t + r_t (hi_t - lo_t)      a_t = lo_a + r_t (hi_a - lo_a)
    s_c = lo_c + r_c (hi_c - lo_c)
    h x w = round(sqrt(int(N s) a)) x round(sqrt(int(N s) / a))      (N = H W patches)

so the realised target fraction ``h w / N`` differs from the drawn scale ``s_t`` by rounding::

    |h w - N s_t| <= (sqrt(N s_t a_t) + sqrt(N s_t / a_t)) / 2 + 1/4 + 1
                                                        (|rounding| <= 1/2, floor < 1)

which is one patch-row or more on a 7 x 7 grid. Then every context of a batch is cut to the
shortest, ``k_min`` patches (the official collator's rule), and a batch of ``B`` contexts of
``k_1..k_B`` patches loses the share::

    drop = 1 - B k_min / sum_i k_i

The sampler returns only the cut masks. To see a batch before the cut, :func:`uncut_batch`
draws ``r_t, r_c`` itself (the formula above), pins each range to its drawn value, and samples
each image as a batch of one (a batch of one is never cut); the same library code draws every
block, and the cut is the library's own :func:`jepa_core.masks.indices_cut_to_shortest`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ..checks import int_at_least
from ..masks import (
    MASK_ARGUMENTS,
    MultiBlockMasks,
    indices_cut_to_shortest,
    sample_multiblock_masks,
)

# The sampler's own defaults, read from its signature so there is one source of them.
_SAMPLER_PARAMETERS = inspect.signature(sample_multiblock_masks).parameters
_SAMPLER_DEFAULTS = {name: _SAMPLER_PARAMETERS[name].default for name in MASK_ARGUMENTS}


@dataclass(frozen=True)
class UncutBatch:
    """One batch of masks, before and after the equalising cut.

    ``masks``: the batch as the trainer gets it (contexts cut to the shortest).
    ``context_uncut``: BoolTensor [B, H*W], each context before the cut (targets removed).
    ``context_block``: BoolTensor [B, H*W], each image's context block before removing targets
    (drawn separately with ``allow_overlap=True``: same size, its own position).
    ``target_scale``, ``target_aspect``, ``context_scale``: the values drawn for this batch.
    """

    masks: MultiBlockMasks
    context_uncut: torch.Tensor
    context_block: torch.Tensor
    target_scale: float
    target_aspect: float
    context_scale: float


def _resolve_mask_kwargs(grid: Any, mask_kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(mask_kwargs) - set(MASK_ARGUMENTS))
    if unknown:
        raise TypeError(f"unknown mask arguments {unknown}; accepted: {list(MASK_ARGUMENTS)}")
    kwargs = {**_SAMPLER_DEFAULTS, **mask_kwargs}
    # let the sampler validate everything once, with its own error messages
    sample_multiblock_masks(grid, 1, generator=torch.Generator().manual_seed(0), **kwargs)
    return kwargs


def _drawn(r: float, value_range: tuple[float, float]) -> float:
    low, high = float(value_range[0]), float(value_range[1])
    return min(high, low + r * (high - low))  # min(): float error must not leave the range


def _uncut_batch(
    grid: Any, batch_size: int, generator: torch.Generator, kwargs: dict[str, Any]
) -> UncutBatch:
    r_target, r_context = torch.rand(2, generator=generator).tolist()
    scale = _drawn(r_target, kwargs["target_scale"])
    aspect = _drawn(r_target, kwargs["target_aspect"])
    context_scale = _drawn(r_context, kwargs["context_scale"])
    pinned = {
        **kwargs,
        "target_scale": (scale, scale),
        "target_aspect": (aspect, aspect),
        "context_scale": (context_scale, context_scale),
    }
    singles = [
        sample_multiblock_masks(grid, 1, generator=generator, **pinned) for _ in range(batch_size)
    ]
    blocks = [
        sample_multiblock_masks(grid, 1, generator=generator, **{**pinned, "allow_overlap": True})
        for _ in range(batch_size)
    ]
    context_uncut = torch.cat([m.context_map() for m in singles])
    target_maps = torch.cat([m.target_maps() for m in singles])
    masks = MultiBlockMasks(
        context=indices_cut_to_shortest(context_uncut),
        targets=indices_cut_to_shortest(target_maps),
        grid=singles[0].grid,
    )
    return UncutBatch(
        masks=masks,
        context_uncut=context_uncut,
        context_block=torch.cat([m.context_map() for m in blocks]),
        target_scale=scale,
        target_aspect=aspect,
        context_scale=context_scale,
    )


def uncut_batch(
    grid: int | tuple[int, int],
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    **mask_kwargs: Any,
) -> UncutBatch:
    """One batch of I-JEPA masks with its contexts before and after the equalising cut.

    ``mask_kwargs`` are those of :func:`jepa_core.masks.sample_multiblock_masks` (its defaults
    apply); ``generator`` None: a fresh one seeded from torch's global RNG.
    """
    batch_size = int_at_least("batch_size", batch_size, 1)
    kwargs = _resolve_mask_kwargs(grid, mask_kwargs)
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    return _uncut_batch(grid, batch_size, generator, kwargs)


def target_shapes(
    target_maps: torch.Tensor, grid: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(heights, widths) of the bounding boxes of boolean target maps [..., H*W], in patches.

    For a block the bounding box is the block itself.
    """
    height, width = grid
    if target_maps.dtype != torch.bool or target_maps.shape[-1] != height * width:
        raise ValueError(
            f"target_maps must be a bool tensor [..., {height * width}] for the "
            f"{height}x{width} grid, got {target_maps.dtype} "
            f"{tuple(target_maps.shape)}"
        )
    maps = target_maps.unflatten(-1, (height, width))
    return maps.any(-1).sum(-1), maps.any(-2).sum(-1)


def equalisation_drop(context_maps: torch.Tensor) -> float:
    """Share of the context patches of one batch that the cut to the shortest drops.

    ``drop = 1 - B k_min / sum_i k_i`` for boolean context maps [B, H*W] holding k_i patches.
    """
    if context_maps.dtype != torch.bool or context_maps.ndim != 2 or len(context_maps) == 0:
        raise ValueError(
            f"context_maps must be a non-empty bool tensor [B, H*W], got "
            f"{context_maps.dtype} {tuple(context_maps.shape)}"
        )
    counts = context_maps.sum(-1).double()
    if counts.sum() == 0:
        raise ValueError("context_maps are all empty: the drop share is undefined")
    return float(1 - len(counts) * counts.min() / counts.sum())


def mask_statistics(
    grid: int | tuple[int, int],
    n_images: int,
    batch_size: int,
    *,
    seed: int = 0,
    **mask_kwargs: Any,
) -> pd.DataFrame:
    """One row per (image, target block) over ``n_images`` images drawn in batches.

    The last batch holds the remainder when ``batch_size`` does not divide ``n_images``.
    Columns (fractions are of the H*W patches; "drawn" is the batch's value before rounding):

    ``batch, image, target``; ``target_scale_drawn, target_aspect_drawn``; ``target_h,
    target_w``; ``target_fraction`` (h w / N); ``target_aspect`` (h / w);
    ``target_fraction_tolerance`` (the rounding bound of the module docstring, / N);
    ``context_scale_drawn``; ``context_block_fraction`` (before removing targets);
    ``context_fraction`` (after removing targets); ``context_fraction_equalised`` (after the
    cut); ``context_target_overlap`` (context patches inside a target: 0 unless
    ``allow_overlap``).

    ``df.attrs`` holds the grid, the sizes, the seed and every mask argument.
    """
    n_images = int_at_least("n_images", n_images, 1)
    batch_size = int_at_least("batch_size", batch_size, 1)
    seed = int_at_least("seed", seed, 0)
    kwargs = _resolve_mask_kwargs(grid, mask_kwargs)
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for batch_index, start in enumerate(range(0, n_images, batch_size)):
        size = min(batch_size, n_images - start)
        batch = _uncut_batch(grid, size, generator, kwargs)
        frames.append(_batch_rows(batch, batch_index, start))
    stats = pd.concat(frames, ignore_index=True)
    stats.attrs.update(
        {
            "grid": batch.masks.grid,
            "n_images": n_images,
            "batch_size": batch_size,
            "seed": seed,
            **kwargs,
        }
    )
    return stats


def _batch_rows(batch: UncutBatch, batch_index: int, first_image: int) -> pd.DataFrame:
    masks = batch.masks
    num_patches = masks.num_patches
    target_maps = masks.target_maps()  # [B, T, N]; every target of a batch has one size
    n_images, n_targets = target_maps.shape[:2]
    heights, widths = target_shapes(target_maps, masks.grid)
    exact_area = num_patches * batch.target_scale
    tolerance = (
        0.5
        * (
            math.sqrt(exact_area * batch.target_aspect)
            + math.sqrt(exact_area / batch.target_aspect)
        )
        + 1.25
    ) / num_patches
    overlap = (batch.context_uncut & target_maps.any(1)).sum(-1)
    per_image = {
        "context_block_fraction": batch.context_block.sum(-1).double() / num_patches,
        "context_fraction": batch.context_uncut.sum(-1).double() / num_patches,
        "context_fraction_equalised": masks.context_map().sum(-1).double() / num_patches,
        "context_target_overlap": overlap,
    }
    return pd.DataFrame(
        {
            "batch": batch_index,
            "image": (first_image + torch.arange(n_images)).repeat_interleave(n_targets).numpy(),
            "target": torch.arange(n_targets).repeat(n_images).numpy(),
            "target_scale_drawn": batch.target_scale,
            "target_aspect_drawn": batch.target_aspect,
            "target_h": heights.flatten().numpy(),
            "target_w": widths.flatten().numpy(),
            "target_fraction": (heights * widths).flatten().numpy() / num_patches,
            "target_aspect": (heights.double() / widths).flatten().numpy(),
            "target_fraction_tolerance": tolerance,
            "context_scale_drawn": batch.context_scale,
            **{
                name: value.repeat_interleave(n_targets).numpy()
                for name, value in per_image.items()
            },
        }
    )


def equalisation_loss(
    grid: int | tuple[int, int],
    batch_sizes: Sequence[int],
    *,
    n_batches: int = 10,
    seed: int = 0,
    **mask_kwargs: Any,
) -> pd.DataFrame:
    """Share of context patches dropped by the cut to the shortest, per batch size.

    Each of ``n_batches`` draws samples one batch of ``max(batch_sizes)`` images; the batch of
    size ``B`` is its first ``B`` images (a valid batch: it shares the block sizes). Comparing
    nested batches of one draw (common random numbers) keeps the block-size draw, which varies
    much more between batches than within, out of the differences between batch sizes.

    One row per batch size: ``grid`` ("HxW"), ``batch_size``, ``drop_share`` (mean over draws),
    ``drop_share_std``, ``context_fraction`` (mean before the cut), ``context_fraction_equalised``
    (mean after the cut).
    """
    if (
        isinstance(batch_sizes, (str, bytes))
        or not isinstance(batch_sizes, Sequence)
        or len(batch_sizes) == 0
    ):
        raise TypeError(
            f"batch_sizes must be a non-empty sequence of ints >= 1, got {batch_sizes!r}"
        )
    sizes = [int_at_least("each batch size", b, 1) for b in batch_sizes]
    n_batches = int_at_least("n_batches", n_batches, 1)
    seed = int_at_least("seed", seed, 0)
    kwargs = _resolve_mask_kwargs(grid, mask_kwargs)
    generator = torch.Generator().manual_seed(seed)
    drops: dict[int, list[float]] = {b: [] for b in sizes}
    before: dict[int, list[float]] = {b: [] for b in sizes}
    after: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(n_batches):
        batch = _uncut_batch(grid, max(sizes), generator, kwargs)
        fractions = batch.context_uncut.sum(-1).double() / batch.masks.num_patches
        for b in sizes:
            drops[b].append(equalisation_drop(batch.context_uncut[:b]))
            before[b].append(float(fractions[:b].mean()))
            after[b].append(float(fractions[:b].min()))
    height, width = batch.masks.grid
    return pd.DataFrame(
        {
            "grid": f"{height}x{width}",
            "batch_size": sizes,
            "drop_share": [float(torch.tensor(drops[b]).mean()) for b in sizes],
            "drop_share_std": [
                float(torch.tensor(drops[b]).std()) if n_batches > 1 else 0.0 for b in sizes
            ],
            "context_fraction": [float(torch.tensor(before[b]).mean()) for b in sizes],
            "context_fraction_equalised": [float(torch.tensor(after[b]).mean()) for b in sizes],
        }
    )


def distance_to_context(masks: MultiBlockMasks, chunk: int = 256) -> torch.Tensor:
    """FloatTensor [B, n_targets, Nt]: each target patch's distance to the nearest context patch.

    ``d(p) = min_q ||p - q||_2`` over the image's context patches ``q``, with patches at their
    (row, column) on the grid; aligned with ``masks.targets``. ``chunk`` images at a time bound
    the memory (B x N x N distances otherwise). Large blocks make ``d`` large, so a target
    cannot be filled in from its neighbours (the paper's argument for blocks over random
    patches); ``d = 1`` means a visible 4-neighbour.
    """
    if not isinstance(masks, MultiBlockMasks):
        raise TypeError(f"masks must be a MultiBlockMasks, got {type(masks).__name__}")
    chunk = int_at_least("chunk", chunk, 1)
    height, width = masks.grid
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()], -1).float()
    pairwise = torch.cdist(coords, coords)  # [N, N]
    context = masks.context_map().cpu()
    if not context.any(-1).all():
        raise ValueError("masks hold an image with an empty context: no distance is defined")
    nearest = torch.cat(
        [
            torch.where(part[:, None, :], pairwise, torch.inf).amin(-1)  # [b, N]
            for part in context.split(chunk)
        ]
    )
    targets = masks.targets.cpu()
    return torch.gather(nearest[:, None, :].expand(-1, targets.shape[1], -1), -1, targets)


def summarise_mask_statistics(stats: pd.DataFrame) -> pd.Series:
    """Headline numbers of a :func:`mask_statistics` table.

    ``target_fraction_drawn`` / ``target_fraction``: mean drawn scale / realised h w / N;
    ``rounding_error``: mean of |realised - drawn| / drawn; ``n_shapes``: distinct h x w seen;
    ``target_aspect``: mean realised h / w; ``aspect_outside``: share of blocks whose h / w
    lies outside the requested ``target_aspect`` (from ``stats.attrs``); ``context_block_fraction``,
    ``context_fraction``, ``context_fraction_equalised``: means over images.
    """
    required = {
        "image",
        "target_scale_drawn",
        "target_fraction",
        "target_h",
        "target_w",
        "target_aspect",
        "context_block_fraction",
        "context_fraction",
        "context_fraction_equalised",
    }
    if not isinstance(stats, pd.DataFrame) or not required <= set(stats.columns):
        missing = sorted(required - set(getattr(stats, "columns", [])))
        raise ValueError(f"stats must be a mask_statistics DataFrame; missing columns {missing}")
    if "target_aspect" not in stats.attrs:
        raise ValueError(
            "stats.attrs lacks 'target_aspect': pass the table mask_statistics "
            "returned (pandas keeps attrs through copies, not through concat)"
        )
    per_image = stats.drop_duplicates("image")
    low, high = stats.attrs["target_aspect"]
    drawn = stats["target_scale_drawn"]
    return pd.Series(
        {
            "target_fraction_drawn": drawn.mean(),
            "target_fraction": stats["target_fraction"].mean(),
            "rounding_error": ((stats["target_fraction"] - drawn).abs() / drawn).mean(),
            "n_shapes": float(len(stats[["target_h", "target_w"]].drop_duplicates())),
            "target_aspect": stats["target_aspect"].mean(),
            "aspect_outside": (~stats["target_aspect"].between(low, high)).mean(),
            "context_block_fraction": per_image["context_block_fraction"].mean(),
            "context_fraction": per_image["context_fraction"].mean(),
            "context_fraction_equalised": per_image["context_fraction_equalised"].mean(),
        }
    )
