"""The collapse lab's verdicts: against the healthy run, and against each run's own start."""

import pandas as pd
import pytest
import torch
from tiny_runs import tiny

from jepa_core.config import load_config
from jepa_core.lessons.collapse import (
    COLLAPSE_VARIANTS,
    PREDICTED_COLLAPSE,
    collapsed_from_start,
    collapsed_runs,
    projected_stats,
)
from jepa_core.monitor import embedding_stats
from jepa_core.train import train


def summary(rows: dict[str, tuple[float, float, float, float]]) -> pd.DataFrame:
    """run -> (rankme, std_mean, rankme_init, std_mean_init)."""
    columns = ["rankme", "std_mean", "rankme_init", "std_mean_init"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def test_a_narrowing_healthy_run_hides_collapse_against_it_but_not_against_the_start():
    table = summary(
        {
            "healthy": (1.3, 0.018, 2.9, 0.083),  # narrowed to 45% / 22% of its start
            "broken": (1.0, 0.001, 2.9, 0.083),
            "spread": (6.0, 0.5, 2.9, 0.083),
        }
    )
    # against the healthy run: 1.0 is not below 0.5 x 1.3, so nothing "collapsed"
    assert collapsed_runs(table, ratio=0.5) == []
    # against their own start both narrowed runs count, the healthy one included
    assert collapsed_from_start(table, ratio=0.5) == ["healthy", "broken"]
    assert collapsed_from_start(table, ratio=0.4) == ["broken"]  # RankMe 1.3 > 0.4 x 2.9


def test_both_metrics_must_fall():
    table = summary({"healthy": (2.0, 0.05, 2.0, 0.05), "rank_only": (0.5, 0.05, 2.0, 0.05)})
    assert collapsed_from_start(table) == [] and collapsed_runs(table) == []


@pytest.mark.parametrize("name", PREDICTED_COLLAPSE)
def test_every_predicted_collapse_is_a_variant_of_the_lab(name):
    assert name in COLLAPSE_VARIANTS
    assert {"healthy", "lejepa", "lejepa_no_sigreg"} <= set(COLLAPSE_VARIANTS)
    preset, overrides, _ = COLLAPSE_VARIANTS["lejepa_no_sigreg"]
    assert (preset, overrides) == ("lejepa", {"loss.sigreg_weight": 0.0})


def tiny_run(tmp_path, method):
    overrides = tiny(tmp_path / method, **{"train.epochs": 1})
    return train(load_config(method, overrides), progress=False)


def test_projected_stats_measure_the_projector_output_in_eval_mode(tmp_path):
    result = tiny_run(tmp_path, "lejepa")
    images = torch.rand(48, 1, 28, 28)
    projector = result.objective.projector
    projector.train()
    stats = projected_stats(result, images)
    assert projector.training  # the modes come back
    with torch.no_grad():
        projector.eval()
        result.context_encoder.eval()
        expected = embedding_stats(projector(result.context_encoder(images).mean(dim=1)))
    assert stats == pytest.approx(expected)
    assert stats["std_mean"] > 0


def test_projected_stats_name_a_method_without_projector(tmp_path):
    with pytest.raises(ValueError, match="'ijepa' has no projector"):
        projected_stats(tiny_run(tmp_path, "ijepa"), torch.rand(8, 1, 28, 28))
