"""Specification of the mask figures in jepa_core.lessons.masking_figures.

They draw what they are given.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from jepa_core.lessons.masking import (  # noqa: E402
    distance_to_context,
    equalisation_loss,
    mask_statistics,
    uncut_batch,
)
from jepa_core.lessons.masking_figures import (  # noqa: E402
    draw_masks,
    plot_distance_to_context,
    plot_equalisation_loss,
    plot_mask_statistics,
)
from jepa_core.masks import sample_multiblock_masks, sample_random_masks  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def masks_for(grid: int, batch_size: int, seed: int = 0):
    return sample_multiblock_masks(grid, batch_size, generator=torch.Generator().manual_seed(seed))


def legend_labels(fig: Figure) -> list[str]:
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


@pytest.mark.parametrize("channels", [1, 3])
def test_draw_masks_one_axis_per_image_for_grey_and_colour_images(channels):
    images = torch.rand(5, channels, 28, 28)
    fig = draw_masks(images, masks_for(7, 5), titles=list("abcde"))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes] == list("abcde")
    assert fig.axes[0].images[0].get_array().ndim == (2 if channels == 1 else 3)  # grey / RGB


def test_draw_masks_one_row_per_mask_set_and_legend_per_target():
    images = torch.rand(3, 1, 28, 28)
    rows = {
        "7x7": masks_for(7, 4),
        "14x14": masks_for(14, 4),
        "random": sample_random_masks(
            7, 3, n_targets=2, generator=torch.Generator().manual_seed(1)
        ),
    }
    fig = draw_masks(images, rows)
    assert len(fig.axes) == 3 * 3
    assert [fig.axes[i * 3].get_ylabel() for i in range(3)] == ["7x7", "14x14", "random"]
    labels = legend_labels(fig)
    assert sum(label.startswith("target") for label in labels) == 4  # the most targets of a row
    assert "context dropped by the cut" not in labels


def test_draw_masks_marks_context_dropped_by_the_cut():
    batch = uncut_batch(7, 6, generator=torch.Generator().manual_seed(2))
    dropped = (batch.context_uncut & ~batch.masks.context_map()).sum().item()
    assert dropped > 0  # six images of one batch: some context is cut
    fig = draw_masks(torch.rand(6, 1, 28, 28), batch.masks, uncut_context=batch.context_uncut)
    assert "context dropped by the cut" in legend_labels(fig)
    crosses = sum(
        len(c.get_offsets())
        for ax in fig.axes
        for c in ax.collections
        if c.get_offsets() is not None
        and len(c.get_offsets())
        and type(c).__name__ == "PathCollection"
    )
    assert crosses == dropped


def test_draw_masks_rejects_bad_images_and_too_few_masks():
    masks = masks_for(7, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        draw_masks(torch.rand(2, 1, 28, 28) * 3, masks)
    with pytest.raises(ValueError, match="C in"):
        draw_masks(torch.rand(2, 2, 28, 28), masks)
    with pytest.raises(TypeError, match="torch.Tensor"):
        draw_masks([[0.0]], masks)
    with pytest.raises(ValueError, match="fewer"):
        draw_masks(torch.rand(3, 1, 28, 28), masks)
    with pytest.raises(ValueError, match="titles"):
        draw_masks(torch.rand(2, 1, 28, 28), masks, titles=["only one"])


def test_plot_mask_statistics_three_panels_per_table():
    stats = {"7x7": mask_statistics(7, 24, 8), "14x14": mask_statistics(14, 24, 8)}
    fig = plot_mask_statistics(stats)
    assert len(fig.axes) == 2 * 3
    assert len(plot_mask_statistics(stats["7x7"]).axes) == 3
    with pytest.raises(ValueError, match="missing"):
        plot_mask_statistics(pd.DataFrame({"target_fraction": [0.2]}))


def test_plot_equalisation_loss_one_line_per_grid():
    table = pd.concat(
        [equalisation_loss(7, [1, 4], n_batches=2), equalisation_loss(14, [1, 4], n_batches=2)]
    )
    fig = plot_equalisation_loss(table)
    assert len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "7x7 grid",
        "14x14 grid",
    ]


def test_plot_distance_to_context_one_bar_set_per_label():
    masks = {"block": masks_for(7, 8), "random": sample_random_masks(7, 8)}
    fig = plot_distance_to_context({k: distance_to_context(m) for k, m in masks.items()})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [label.split(" ")[0] for label in labels] == ["block", "random"]
    with pytest.raises(ValueError, match="non-empty"):
        plot_distance_to_context({})
