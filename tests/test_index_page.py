"""results/index.html: the headline comparison with the encoder each number belongs to, each
notebook's printed verdicts, its figures by relative path, links to the executed notebooks.
(That the page's images load in a browser is checked by tests/test_browser.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from index_page_fixtures import COMPARISON, FIGURES, VERDICT, executed_notebook, fabricate_results

from jepa_core.runner.index_page import main, printed_verdicts, write_index


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JEPA_WORKBOOK_ROOT", str(tmp_path))
    root, _ = fabricate_results(tmp_path)
    return root


def table_rows(page: str) -> list[list[str]]:
    """The comparison table's rows as lists of cell texts."""
    section = page.split("<section id='comparison'>", 1)[1].split("</section>", 1)[0]
    return [
        re.findall(r"<td[^>]*>(.*?)</td>", row)
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section)
    ][1:]


def test_a_smoke_run_gets_its_own_index(results):
    path = write_index(smoke=True)
    assert path == results / "index.html"
    assert "smoke run" in path.read_text()


def test_the_comparison_names_the_encoder_of_each_number_and_compares_it_with_the_baselines(
    results,
):
    rows = table_rows(write_index(root=results).read_text())
    assert len(rows) == len(COMPARISON)
    by_key = {(r[0], r[2]): r for r in rows}
    cjepa_mean = by_key[("cjepa", "mean-pooled tokens")]
    assert cjepa_mean[1] == "target encoder (EMA teacher)"
    assert cjepa_mean[3] == "0.413" and cjepa_mean[4] == "0.714"
    assert cjepa_mean[5] == "+0.011"  # against the initial encoder's mean-pooled 0.402
    assert cjepa_mean[6] == "-0.518"  # against raw pixels, 0.931
    assert by_key[("cjepa", "flattened tokens")][4] == "–"  # no probe: a dash, not "None"
    init = by_key[("same encoder at initialisation", "mean-pooled tokens")]
    assert init[1] == "initial weights (target = context)" and init[3] == "0.402"
    assert by_key[("raw pixels", "pixels")][1] == "none: the pixels themselves"


def test_each_notebook_shows_its_printed_verdicts_figures_and_executed_notebook(results):
    page = write_index(root=results).read_text()
    evaluation = page.split("<section id='05_evaluation'>", 1)[1].split("</section>", 1)[0]
    assert VERDICT in evaluation
    assert "PARAMETERS" not in page and "a warning" not in page  # parameters cell, stderr
    assert "href='notebooks/05_evaluation.html'" in evaluation
    assert "ran in 12 s" in evaluation
    images = re.findall(r"<img src='([^']+)'", page)
    assert images == [f"{n}/{f}" for n, figures in FIGURES.items() for f in figures]
    assert not any(Path(src).is_absolute() for src in images)


def test_a_notebook_that_did_not_finish_is_listed_and_said_so(results):
    page = write_index(["01_masking", "02_ema_and_collapse"], root=results).read_text()
    unfinished = page.split("<section id='02_ema_and_collapse'>", 1)[1].split("</section>", 1)[0]
    assert "did not finish" in unfinished and "<img" not in unfinished
    assert "<section id='05_evaluation'>" not in page  # only the books asked for


def test_without_notebook_05_the_page_says_the_comparison_is_missing(results):
    (results / "05_evaluation" / "metrics.json").unlink()
    page = write_index(root=results).read_text()
    assert "has not written its comparison yet" in page


def test_printed_text_is_escaped(tmp_path):
    executed = tmp_path / "nb.ipynb"
    executed.write_text(json.dumps(executed_notebook(["<script>alert(1)</script> & more"])))
    assert printed_verdicts(executed) == ["<script>alert(1)</script> & more"]
    root = tmp_path / "results"
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "01_x.ipynb").write_text(executed.read_text())
    page = write_index(["01_x"], root=root).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


def test_a_broken_metrics_file_is_named(results):
    (results / "01_masking" / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"01_masking/metrics\.json is not valid JSON"):
        write_index(root=results)
    (results / "01_masking" / "metrics.json").write_text(json.dumps({"figures": []}))
    with pytest.raises(
        ValueError, match=r"01_masking/metrics\.json is not a workbook metrics\.json"
    ):
        write_index(root=results)


def test_the_command_line_rebuilds_the_page(results, capsys):
    assert main(["--smoke"]) == 0
    assert capsys.readouterr().out.strip() == str(results / "index.html")
    assert (results / "index.html").exists()
