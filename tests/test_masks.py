"""Specification of jepa_core.masks: I-JEPA multi-block masking and its random-patch contrast."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import jepa_core.masks as masks_module
from jepa_core.collator import MultiBlockMaskCollator
from jepa_core.masks import (
    MultiBlockMasks,
    indices_cut_to_shortest,
    indices_to_map,
    sample_multiblock_masks,
    sample_random_masks,
)

CROWDED = {"n_targets": 4, "target_scale": (0.15, 0.2), "min_keep": 4}  # 28 px MNIST, patch 4


def masks_for(seed: int, grid=7, batch_size=16, **kwargs) -> MultiBlockMasks:
    return sample_multiblock_masks(
        grid, batch_size, generator=torch.Generator().manual_seed(seed), **kwargs
    )


def bounding_box(patch_map: torch.Tensor, width: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the True patches of a flat map, computed independently."""
    coords = [(int(i) // width, int(i) % width) for i in patch_map.nonzero().flatten()]
    rows, cols = [r for r, _ in coords], [c for _, c in coords]
    return min(rows), min(cols), max(rows) - min(rows) + 1, max(cols) - min(cols) + 1


# ---------------------------------------------------------------- shapes and indices


@pytest.mark.parametrize("grid", [7, (5, 9), 14])
def test_shapes_and_grid(grid):
    masks = masks_for(0, grid=grid, batch_size=6, n_targets=3)
    height, width = (grid, grid) if isinstance(grid, int) else grid
    assert masks.grid == (height, width)
    assert masks.context.dtype == torch.long and masks.targets.dtype == torch.long
    assert masks.context.shape[0] == 6 and masks.context.ndim == 2
    assert masks.targets.shape[:2] == (6, 3) and masks.targets.ndim == 3
    assert masks.context_map().shape == (6, height * width)
    assert masks.target_maps().shape == (6, 3, height * width)


def test_indices_in_range_unique_and_ascending():
    for seed in range(20):
        masks = masks_for(seed, grid=(6, 9))
        for rows in (masks.context, masks.targets.flatten(0, 1)):
            assert rows.min() >= 0 and rows.max() < 6 * 9
            assert (rows[:, 1:] > rows[:, :-1]).all()  # strictly ascending => no duplicates


def test_to_device_keeps_values_and_grid():
    masks = masks_for(0)
    moved = masks.to("cpu")
    assert torch.equal(moved.context, masks.context) and moved.grid == masks.grid


def test_indices_to_map_marks_exactly_the_indices():
    patch_map = indices_to_map(torch.tensor([[0, 5], [2, 3]]), 6)
    assert patch_map.tolist() == [
        [True, False, False, False, False, True],
        [False, False, True, True, False, False],
    ]


# ---------------------------------------------------------------- block geometry


@pytest.mark.parametrize("grid", [7, 14, (8, 12)])
def test_every_target_is_a_full_rectangle(grid):
    for seed in range(10):
        masks = masks_for(seed, grid=grid)
        width = masks.grid[1]
        for patch_map in masks.target_maps().flatten(0, 1):
            _, _, h, w = bounding_box(patch_map, width)
            assert h * w == int(patch_map.sum())


def test_all_targets_of_a_batch_have_the_same_shape():
    for seed in range(10):
        masks = masks_for(seed, grid=14, batch_size=8)
        shapes = {bounding_box(m, 14)[2:] for m in masks.target_maps().flatten(0, 1)}
        assert len(shapes) == 1


def test_block_size_varies_across_batches():
    sizes = {masks_for(seed, grid=14, batch_size=2).targets.shape[-1] for seed in range(30)}
    assert len(sizes) > 1


def test_context_block_is_square_when_overlap_is_allowed():
    # with overlap allowed nothing is removed from the context block, and its aspect is 1
    for seed in range(10):
        masks = masks_for(seed, grid=14, batch_size=4, allow_overlap=True)
        for patch_map in masks.context_map():
            _, _, h, w = bounding_box(patch_map, 14)
            assert h == w and h * w == int(patch_map.sum())


def test_target_scale_statistics_lie_in_the_requested_range():
    lo, hi, side = 0.15, 0.2, 14
    # rounding h and w (each <= 7 here) by at most 0.5 moves the area by <= 0.5*(7+7)+0.25
    slack = (0.5 * (7 + 7) + 0.25) / side**2
    fractions = (
        torch.tensor(
            [masks_for(seed, grid=side, batch_size=1).targets.shape[-1] for seed in range(300)]
        )
        / side**2
    )
    assert fractions.min() >= lo - slack and fractions.max() <= hi + slack
    assert lo - 0.01 <= fractions.mean() <= hi + 0.01


def test_full_grid_block_is_possible():
    # the official decrements h while h >= H, so it could never cover the grid
    masks = masks_for(
        0,
        grid=7,
        batch_size=2,
        n_targets=1,
        target_scale=(1.0, 1.0),
        target_aspect=(1.0, 1.0),
        allow_overlap=True,
    )
    assert masks.targets.shape[-1] == 49


def test_last_row_and_column_can_be_targets():
    # the official randint(0, H - h) excludes the last corner position, so the bottom-right
    # patch could never be in a target there
    covered = torch.zeros(49, dtype=torch.bool)
    for seed in range(40):
        covered |= masks_for(seed, grid=7, batch_size=8).target_maps().flatten(0, 1).any(0)
    assert covered.all()


# ---------------------------------------------------------------- context guarantees


@pytest.mark.parametrize(
    "grid,kwargs",
    [
        (7, CROWDED),
        (7, {"n_targets": 4, "target_scale": (0.2, 0.2), "min_keep": 6}),
        (14, {}),
        (14, {"n_targets": 6, "target_scale": (0.2, 0.25), "min_keep": 10}),
    ],
)
def test_context_never_overlaps_targets_and_keeps_min_keep(grid, kwargs):
    min_keep = kwargs.get("min_keep", 4)
    for seed in range(40):
        masks = masks_for(seed, grid=grid, batch_size=32, **kwargs)
        context, targets = masks.context_map(), masks.target_maps().any(dim=1)
        assert not (context & targets).any()
        assert masks.context.shape[1] >= min_keep
        assert context.sum(-1).min() >= min_keep


def test_targets_are_redrawn_when_no_context_position_fits(monkeypatch):
    # a crowded config where 20 context positions sometimes all fail: the sampler must move
    # that image's targets (extra target draws) and still keep the no-overlap guarantee
    target_draws = 0
    original = masks_module._random_blocks

    def counting_blocks(shape, *args):
        nonlocal target_draws
        target_draws += len(shape) == 2  # (images, n_targets): a draw of target blocks
        return original(shape, *args)

    monkeypatch.setattr(masks_module, "_random_blocks", counting_blocks)
    crowded = {
        "n_targets": 6,
        "target_scale": (0.25, 0.3),
        "context_scale": (0.5, 0.6),
        "min_keep": 6,
    }
    for seed in range(10):
        masks = masks_for(seed, grid=7, batch_size=32, **crowded)
        assert not (masks.context_map() & masks.target_maps().any(1)).any()
        assert masks.context.shape[1] >= 6
    assert target_draws > 10  # one draw per batch, plus re-draws


def test_allow_overlap_lets_context_cover_targets():
    overlaps = [
        bool((m.context_map() & m.target_maps().any(1)).any())
        for m in (masks_for(seed, allow_overlap=True) for seed in range(5))
    ]
    assert any(overlaps)


def test_impossible_sizes_raise_value_error_naming_the_arguments():
    # a target as large as the grid leaves no patch for the context
    with pytest.raises(ValueError, match=r"target_scale.*n_targets.*context_scale.*min_keep"):
        masks_for(0, grid=7, n_targets=1, target_scale=(1.0, 1.0), target_aspect=(1.0, 1.0))


# ---------------------------------------------------------------- batching rule


def test_cut_to_shortest_keeps_the_first_k_sorted_indices():
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(5, 3, 20, generator=generator) < 0.5
    k = min(int(m.sum()) for m in maps.flatten(0, 1))
    reference = [[int(i) for i in m.nonzero().flatten()][:k] for m in maps.flatten(0, 1)]
    cut = indices_cut_to_shortest(maps)
    assert cut.shape == (5, 3, k)
    assert cut.flatten(0, 1).tolist() == reference


def test_sampler_cuts_each_context_to_the_first_k_of_its_full_context(monkeypatch):
    # record the full (uncut) maps the sampler hands to the batching rule
    seen: list[torch.Tensor] = []

    def recording_cut(maps):
        seen.append(maps.clone())
        return indices_cut_to_shortest(maps)

    monkeypatch.setattr(masks_module, "indices_cut_to_shortest", recording_cut)
    masks = masks_for(3, grid=7, batch_size=16, **CROWDED)
    full_context = seen[0]
    lengths = full_context.sum(-1)
    assert lengths.min() < lengths.max()  # this batch really needed cutting
    k = int(lengths.min())
    assert masks.context.shape == (16, k)
    for row, full in zip(masks.context, full_context, strict=True):
        assert row.tolist() == [int(i) for i in full.nonzero().flatten()][:k]


# ---------------------------------------------------------------- randomness


def test_same_seed_gives_identical_masks_and_different_seeds_differ():
    a, b, c = masks_for(7), masks_for(7), masks_for(8)
    assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)
    assert not (a.context.shape == c.context.shape and torch.equal(a.context, c.context))


def test_without_generator_global_seed_makes_masks_reproducible():
    torch.manual_seed(123)
    a = sample_multiblock_masks(7, 4)
    torch.manual_seed(123)
    b = sample_multiblock_masks(7, 4)
    assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)


# ---------------------------------------------------------------- random-patch masks


def test_random_masks_shapes_and_no_overlap():
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        masks = sample_random_masks(7, 16, n_targets=4, generator=generator)
        assert masks.targets.shape[:2] == (16, 4)
        assert masks.context.shape[0] == 16 and masks.context.shape[1] >= 1
        counts = masks.target_maps().sum(-1)
        assert (counts == counts[0, 0]).all()
        lo, hi = int(49 * 0.15), int(49 * 0.2)
        assert lo <= counts[0, 0] <= hi
        assert not (masks.context_map() & masks.target_maps().any(1)).any()


def test_random_targets_are_not_blocks():
    # with 9+ scattered patches of 196, a random target is almost never a rectangle
    generator = torch.Generator().manual_seed(0)
    masks = sample_random_masks(14, 8, generator=generator)
    rectangles = sum(
        bounding_box(m, 14)[2] * bounding_box(m, 14)[3] == int(m.sum())
        for m in masks.target_maps().flatten(0, 1)
    )
    assert rectangles == 0


# ---------------------------------------------------------------- collator


def image_samples(n: int) -> list[tuple[torch.Tensor, int]]:
    return [(torch.full((1, 28, 28), float(i)), i % 10) for i in range(n)]


def test_collator_returns_images_labels_masks():
    collate = MultiBlockMaskCollator(7, seed=0, **CROWDED)
    images, labels, masks = collate(image_samples(5))
    assert images.shape == (5, 1, 28, 28) and labels.tolist() == [0, 1, 2, 3, 4]
    assert masks.grid == (7, 7) and masks.context.shape[0] == 5
    assert masks.targets.shape[:2] == (5, 4)


def test_collator_handles_two_views():
    collate = MultiBlockMaskCollator(7)
    batch = [((torch.zeros(1, 28, 28), torch.ones(1, 28, 28)), 1) for _ in range(3)]
    (view_a, view_b), labels, masks = collate(batch)
    assert view_a.shape == view_b.shape == (3, 1, 28, 28) and masks.targets.shape[0] == 3


def test_collator_batches_differ_but_replay_from_the_seed():
    first, second = MultiBlockMaskCollator(7, seed=5), MultiBlockMaskCollator(7, seed=5)
    run_a = [first(image_samples(4))[2] for _ in range(3)]
    run_b = [second(image_samples(4))[2] for _ in range(3)]
    assert first.step == 3
    for a, b in zip(run_a, run_b, strict=True):
        assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)
    assert not all(torch.equal(run_a[0].targets, m.targets) for m in run_a[1:])
    # batch `step` uses seed + step, like the official collator
    expected = masks_for(5 + 1, grid=7, batch_size=4)
    assert torch.equal(run_a[1].targets, expected.targets)


def test_collator_works_as_dataloader_collate_fn():
    dataset = TensorDataset(torch.randn(10, 1, 28, 28), torch.arange(10))
    loader = DataLoader(dataset, batch_size=4, collate_fn=MultiBlockMaskCollator(7))
    shapes = [(images.shape[0], masks.context.shape[0]) for images, _, masks in loader]
    assert shapes == [(4, 4), (4, 4), (2, 2)]


def test_collator_rejects_unknown_or_bad_mask_arguments():
    with pytest.raises(TypeError, match="generator"):
        MultiBlockMaskCollator(7, generator=torch.Generator())
    with pytest.raises(ValueError, match="n_targets"):
        MultiBlockMaskCollator(7, n_targets=0)


# ---------------------------------------------------------------- bad arguments

BAD_ARGUMENTS = [
    # (keyword overrides, error type, word the message must contain)
    ({"grid": 0}, ValueError, "grid"),
    ({"grid": (7, 0)}, ValueError, "grid width"),
    ({"grid": (7, 7, 7)}, TypeError, "grid"),
    ({"grid": 7.0}, TypeError, "grid"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 4.0}, TypeError, "batch_size"),
    ({"n_targets": 0}, ValueError, "n_targets"),
    ({"min_keep": 0}, ValueError, "min_keep"),
    ({"target_scale": (0.0, 0.2)}, ValueError, "target_scale"),
    ({"target_scale": (0.2, 1.5)}, ValueError, "target_scale"),
    ({"target_scale": (0.3, 0.2)}, ValueError, "target_scale"),
    ({"target_scale": 0.2}, TypeError, "target_scale"),
    ({"target_scale": (float("nan"), 0.2)}, ValueError, "target_scale"),
    ({"context_scale": (0.0, 1.0)}, ValueError, "context_scale"),
    ({"context_scale": (0.9, 1.1)}, ValueError, "context_scale"),
    ({"context_scale": (1.0, 0.9)}, ValueError, "context_scale"),
    ({"target_aspect": (0.0, 1.5)}, ValueError, "target_aspect"),
    ({"target_aspect": (-1.0, 1.5)}, ValueError, "target_aspect"),
    ({"target_aspect": (1.5, 0.75)}, ValueError, "target_aspect"),
    ({"target_aspect": (0.75, math.inf)}, ValueError, "target_aspect"),
    ({"allow_overlap": 1}, TypeError, "allow_overlap"),
    ({"generator": 0}, TypeError, "generator"),
    # grids too small for min_keep: the whole grid, and the smallest context block
    ({"grid": 2, "min_keep": 5}, ValueError, "min_keep"),
    ({"grid": 7, "min_keep": 42, "context_scale": (0.5, 1.0)}, ValueError, "context_scale"),
]


@pytest.mark.parametrize("overrides,error,word", BAD_ARGUMENTS)
def test_bad_argument_raises_naming_it(overrides, error, word):
    kwargs = {"grid": 7, "batch_size": 4, **overrides}
    with pytest.raises(error, match=word):
        sample_multiblock_masks(kwargs.pop("grid"), kwargs.pop("batch_size"), **kwargs)


def test_grid_too_small_message_mentions_the_grid():
    with pytest.raises(ValueError, match=r"min_keep=5.*2x2 grid"):
        sample_multiblock_masks(2, 1, min_keep=5)


def test_a_large_min_keep_keeps_every_context_of_a_crowded_batch_large():
    masks = sample_multiblock_masks(7, 128, min_keep=20, generator=torch.Generator().manual_seed(0))
    assert masks.context.shape[1] >= 20
    assert not (masks.context_map() & masks.target_maps().any(1)).any()


@pytest.mark.parametrize(
    "overrides,word",
    [
        ({"n_targets": 0}, "n_targets"),
        ({"target_scale": (0.5, 0.1)}, "target_scale"),
        ({"context_scale": 2}, "context_scale"),
        ({"batch_size": -1}, "batch_size"),
    ],
)
def test_random_masks_validate_arguments(overrides, word):
    kwargs = {"batch_size": 4, **overrides}
    with pytest.raises((ValueError, TypeError), match=word):
        sample_random_masks(7, kwargs.pop("batch_size"), **kwargs)
