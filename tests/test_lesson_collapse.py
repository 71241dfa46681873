"""The collapse lab's verdicts: against the healthy run, and against each run's own start."""

import pandas as pd
import pytest

from jepa_core.lessons.collapse import (
    COLLAPSE_VARIANTS,
    PREDICTED_COLLAPSE,
    collapsed_from_start,
    collapsed_runs,
)


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
