"""Specification of jepa_core.lessons.masking: what the I-JEPA sampler realises over many draws."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from jepa_core.lessons.masking import (
    distance_to_context,
    equalisation_drop,
    equalisation_loss,
    mask_statistics,
    summarise_mask_statistics,
    target_shapes,
    uncut_batch,
)
from jepa_core.masks import MultiBlockMasks, indices_to_map


def flat_map(grid: tuple[int, int], cells: list[tuple[int, int]]) -> torch.Tensor:
    patch_map = torch.zeros(grid[0] * grid[1], dtype=torch.bool)
    for row, col in cells:
        patch_map[row * grid[1] + col] = True
    return patch_map


# ---------------------------------------------------------------- hand-made masks


def test_target_shapes_are_bounding_boxes_in_rows_and_columns():
    grid = (5, 6)
    block = flat_map(grid, [(r, c) for r in (1, 2) for c in (2, 3, 4)])  # 2 rows x 3 columns
    ell = flat_map(grid, [(0, 0), (1, 0), (2, 0), (2, 1)])  # an L: 3 rows x 2 columns
    heights, widths = target_shapes(torch.stack([block, ell]), grid)
    assert heights.tolist() == [2, 3]
    assert widths.tolist() == [3, 2]


def test_target_shapes_rejects_a_map_of_another_grid():
    with pytest.raises(ValueError, match="5x6"):
        target_shapes(torch.zeros(2, 49, dtype=torch.bool), (5, 6))


def test_equalisation_drop_is_the_share_above_the_shortest():
    counts = [10, 8, 6]  # cut to 6: drops 4 + 2 + 0 = 6 of 24 patches
    maps = torch.zeros(3, 49, dtype=torch.bool)
    for i, k in enumerate(counts):
        maps[i, :k] = True
    assert equalisation_drop(maps) == pytest.approx(6 / 24)
    assert equalisation_drop(maps[:1]) == 0.0
    assert equalisation_drop(maps[[0, 0]]) == 0.0


def test_equalisation_drop_rejects_empty_and_non_boolean_maps():
    with pytest.raises(ValueError, match="empty"):
        equalisation_drop(torch.zeros(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        equalisation_drop(torch.ones(2, 9))


def test_distance_to_context_on_a_hand_made_grid():
    # 3x3 grid, context = top-left patch only; targets: its right neighbour and the far corner
    masks = MultiBlockMasks(
        context=torch.tensor([[0]]), targets=torch.tensor([[[1], [8]]]), grid=(3, 3)
    )
    distances = distance_to_context(masks)
    assert distances.shape == (1, 2, 1)
    assert distances[0, 0, 0] == pytest.approx(1.0)
    assert distances[0, 1, 0] == pytest.approx(math.sqrt(2**2 + 2**2))


def test_distance_to_context_matches_a_brute_force_loop():
    generator = torch.Generator().manual_seed(3)
    grid = (4, 5)
    context = torch.stack(
        [torch.randperm(20, generator=generator)[:6].sort().values for _ in range(3)]
    )
    targets = torch.stack(
        [
            torch.stack(
                [torch.randperm(20, generator=generator)[:4].sort().values for _ in range(2)]
            )
            for _ in range(3)
        ]
    )
    masks = MultiBlockMasks(context=context, targets=targets, grid=grid)
    distances = distance_to_context(masks, chunk=2)  # chunking must not change the answer
    for b in range(3):
        for t in range(2):
            for j, p in enumerate(targets[b, t].tolist()):
                expected = min(math.dist(divmod(p, 5), divmod(q, 5)) for q in context[b].tolist())
                assert distances[b, t, j].item() == pytest.approx(expected)


# ---------------------------------------------------------------- statistics over draws


@pytest.fixture(scope="module")
def stats_7x7():
    return mask_statistics(7, 150, 16, seed=0)


def test_one_row_per_image_and_target_with_a_short_last_batch(stats_7x7):
    assert len(stats_7x7) == 150 * 4
    assert stats_7x7["image"].nunique() == 150
    assert stats_7x7.groupby("batch")["image"].nunique().tolist() == [16] * 9 + [6]
    assert stats_7x7.attrs["grid"] == (7, 7) and stats_7x7.attrs["n_targets"] == 4


def test_drawn_values_lie_in_the_requested_ranges(stats_7x7):
    assert stats_7x7["target_scale_drawn"].between(0.15, 0.2).all()
    assert stats_7x7["target_aspect_drawn"].between(0.75, 1.5).all()
    assert stats_7x7["context_scale_drawn"].between(0.85, 1.0).all()


def test_realised_blocks_follow_the_official_size_formula(stats_7x7):
    for row in stats_7x7.drop_duplicates("batch").itertuples():
        max_keep = int(49 * row.target_scale_drawn)
        assert row.target_h == min(round(math.sqrt(max_keep * row.target_aspect_drawn)), 7)
        assert row.target_w == min(round(math.sqrt(max_keep / row.target_aspect_drawn)), 7)
        side = round(math.sqrt(int(49 * row.context_scale_drawn)))
        assert row.context_block_fraction == pytest.approx(side * side / 49)


def test_target_fraction_is_area_over_patches_and_within_rounding(stats_7x7):
    area = stats_7x7["target_h"] * stats_7x7["target_w"]
    assert (stats_7x7["target_fraction"] == area / 49).all()
    assert (stats_7x7["target_aspect"] == stats_7x7["target_h"] / stats_7x7["target_w"]).all()
    error = (stats_7x7["target_fraction"] - stats_7x7["target_scale_drawn"]).abs()
    assert (error <= stats_7x7["target_fraction_tolerance"]).all()


def test_context_never_overlaps_targets_and_never_empties(stats_7x7):
    assert (stats_7x7["context_target_overlap"] == 0).all()
    assert (stats_7x7["context_fraction"] <= stats_7x7["context_block_fraction"]).all()
    assert (stats_7x7["context_fraction_equalised"] >= 4 / 49).all()  # min_keep = 4


def test_equalised_context_is_the_shortest_of_its_batch(stats_7x7):
    shortest = stats_7x7.groupby("batch")["context_fraction"].transform("min")
    assert (stats_7x7["context_fraction_equalised"] == shortest).all()


def test_allow_overlap_keeps_the_whole_context_block():
    stats = mask_statistics(7, 40, 8, seed=1, allow_overlap=True)
    assert (stats["context_fraction"] == stats["context_block_fraction"]).all()
    assert (stats["context_target_overlap"] > 0).any()


def test_same_seed_same_table_other_seed_other_table(stats_7x7):
    again = mask_statistics(7, 150, 16, seed=0)
    other = mask_statistics(7, 150, 16, seed=1)
    assert again.equals(stats_7x7)
    assert not other.equals(stats_7x7)


def test_mask_arguments_reach_the_sampler():
    stats = mask_statistics(
        14, 20, 10, seed=0, n_targets=2, target_scale=(0.3, 0.3), target_aspect=(1.0, 1.0)
    )
    assert sorted(stats["target"].unique()) == [0, 1]
    # int(196 * 0.3) = 58 -> round(sqrt(58)) = 8: every block is 8 x 8
    assert (stats["target_h"] == 8).all() and (stats["target_w"] == 8).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_images": 0}, ValueError, "n_images"),
        ({"batch_size": 2.5}, TypeError, "batch_size"),
        ({"seed": -1}, ValueError, "seed"),
        ({"target_scale": (0.3, 0.2)}, ValueError, "target_scale"),
        ({"patch_size": 4}, TypeError, "patch_size"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    args = {"n_images": 10, "batch_size": 5, **kwargs}
    with pytest.raises(error, match=match):
        mask_statistics(7, **args)


# ---------------------------------------------------------------- one batch, cut and uncut


def test_uncut_batch_cuts_each_context_to_its_first_shortest_indices():
    batch = uncut_batch(7, 12, generator=torch.Generator().manual_seed(5))
    counts = batch.context_uncut.sum(-1)
    assert batch.masks.context.shape == (12, int(counts.min()))
    for uncut, cut in zip(batch.context_uncut, batch.masks.context, strict=True):
        assert cut.tolist() == uncut.nonzero().flatten().tolist()[: len(cut)]
    blocks = batch.context_block.sum(-1)
    assert (blocks == blocks[0]).all()  # one context block size a batch
    assert not (batch.masks.context_map() & batch.masks.target_maps().any(1)).any()
    assert torch.equal(
        indices_to_map(batch.masks.context, 49) & ~batch.context_uncut,
        torch.zeros(12, 49, dtype=torch.bool),
    )


# ---------------------------------------------------------------- equalisation over batch sizes


def test_equalisation_loss_is_zero_for_one_image_and_grows_with_the_batch():
    table = equalisation_loss(7, [1, 4, 64], n_batches=4, seed=0)
    assert table["batch_size"].tolist() == [1, 4, 64]
    assert (table["grid"] == "7x7").all()
    drops = table["drop_share"].tolist()
    assert drops[0] == 0.0
    assert drops[0] < drops[1] < drops[2]
    assert (table["context_fraction_equalised"] <= table["context_fraction"]).all()


def test_equalisation_loss_rejects_bad_batch_sizes():
    with pytest.raises(TypeError, match="batch_sizes"):
        equalisation_loss(7, 8)
    with pytest.raises(ValueError, match="batch size"):
        equalisation_loss(7, [8, 0])


def test_summary_averages_targets_per_block_and_contexts_per_image(stats_7x7):
    summary = summarise_mask_statistics(stats_7x7)
    per_image = stats_7x7.groupby("image").first()
    assert summary["context_fraction"] == pytest.approx(per_image["context_fraction"].mean())
    assert summary["target_fraction"] == pytest.approx(stats_7x7["target_fraction"].mean())
    shapes = {(r.target_h, r.target_w) for r in stats_7x7.itertuples()}
    assert summary["n_shapes"] == len(shapes)
    outside = [not 0.75 <= a <= 1.5 for a in stats_7x7["target_aspect"]]
    assert summary["aspect_outside"] == pytest.approx(sum(outside) / len(outside))


def test_summary_needs_the_requested_ranges_in_attrs(stats_7x7):
    with pytest.raises(ValueError, match="attrs"):
        summarise_mask_statistics(pd.DataFrame(stats_7x7.to_dict()))
