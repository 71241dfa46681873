"""Sweeps: grids parsed from the shell, every point validated before the first run, results
gathered from the run folders into one table."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib
import nbformat
import pandas as pd
import pytest

from jepa_core.config import load_config, parse_overrides
from jepa_core.lessons.sweeps import plot_sweep
from jepa_core.paths import notebooks_dir
from jepa_core.runner.sweep import (
    gather_sweep,
    parse_grid,
    plan_sweep,
    run_sweep,
    shell_command,
)

matplotlib.use("Agg")

TRAINING = notebooks_dir() / "04_training.ipynb"


def write_notebook(path: Path, parameters: str, body: str = "pass") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# a notebook to sweep"),
        params,
        nbformat.v4.new_code_cell(body),
    ]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def trainer_like(tmp_path: Path) -> Path:
    """A notebook with 04's kind of parameters: a method, plain knobs, one overrides dict."""
    return write_notebook(
        tmp_path / "trainer.ipynb",
        'smoke = False\nseed = 0\nmethod = "cjepa"\nepochs = 3\noffset = 0\noverrides = {}',
    )


# --- parse_grid ------------------------------------------------------------------------------
def test_parse_grid_splits_values_on_commas_and_parses_numbers_and_words():
    grid = parse_grid(["loss.vicreg_weight=0,0.01,0.1", "method=cjepa,ijepa"])
    assert grid == {"loss.vicreg_weight": [0, 0.01, 0.1], "method": ["cjepa", "ijepa"]}
    assert [type(v) for v in grid["loss.vicreg_weight"]] == [int, float, float]


def test_parse_grid_keeps_bracketed_lists_whole():
    grid = parse_grid(["masks.target_scale=[0.1,0.2],[0.2, 0.3]"])
    assert grid == {"masks.target_scale": [[0.1, 0.2], [0.2, 0.3]]}


def test_parse_grid_accepts_a_mapping_and_wraps_single_values():
    assert parse_grid({"method": "cjepa", "ema.start": (0.99, 0.996)}) == {
        "method": ["cjepa"],
        "ema.start": [0.99, 0.996],
    }


@pytest.mark.parametrize(
    "item,message", [("loss.vicreg_weight", "key=v1,v2"), ("loss.vicreg_weight=", "no values")]
)
def test_parse_grid_refuses_items_without_values(item, message):
    with pytest.raises(ValueError, match=message):
        parse_grid([item])


# --- plan_sweep: every point checked before anything runs -------------------------------------
def test_unknown_config_key_fails_naming_the_closest_key():
    with pytest.raises(ValueError, match=r"did you mean 'loss\.vicreg_weight'"):
        plan_sweep(TRAINING, {"loss.vicreg_weigth": [0.0, 0.1]})


def test_unknown_notebook_parameter_fails_listing_the_notebooks_parameters(trainer_like):
    with pytest.raises(ValueError, match="'epoch' is not a parameter of trainer.ipynb") as info:
        plan_sweep(trainer_like, {"epoch": [1, 2]})
    for name in ("smoke", "seed", "method", "epochs", "offset", "overrides"):
        assert name in str(info.value)


def test_unknown_fixed_notebook_parameter_fails_too(trainer_like):
    with pytest.raises(ValueError, match="'resum' is not a parameter"):
        plan_sweep(trainer_like, {"ema.start": [0.99]}, params={"resum": False})


@pytest.mark.parametrize(
    "grid", [{"method": ["vicreg"]}, {"method": ["vicreg"], "ema.start": [0.99]}]
)
def test_a_method_that_is_not_a_preset_fails_even_when_only_plain_keys_are_swept(
    trainer_like, grid
):
    with pytest.raises(
        ValueError, match="method 'vicreg' is not a preset; choose from ijepa, cjepa"
    ):
        plan_sweep(trainer_like, grid)


def test_a_term_the_method_does_not_use_fails():
    with pytest.raises(ValueError, match=r"'ijepa' does not use loss\.vicreg_weight"):
        plan_sweep(TRAINING, {"method": ["ijepa"], "loss.vicreg_weight": [0.1]})


def test_a_bad_value_fails_on_the_point_that_holds_it():
    with pytest.raises(ValueError, match=r"ema\.start must be in \[0, 1\]"):
        plan_sweep(TRAINING, {"ema.start": [0.99, 1.5]})


def test_dotted_keys_need_a_notebook_with_an_overrides_parameter(tmp_path):
    plain = write_notebook(tmp_path / "plain.ipynb", "seed = 0")
    with pytest.raises(ValueError, match="no 'overrides' parameter"):
        plan_sweep(plain, {"ema.start": [0.99]})


def test_a_missing_notebook_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plan_sweep(tmp_path / "nope.ipynb", {"seed": [0]})


def test_the_product_of_two_keys_gives_every_combination_with_dotted_keys_inside_overrides(
    trainer_like,
):
    points = plan_sweep(
        trainer_like,
        {"ema.start": [0.99, 0.996, 0.999], "method": ["ijepa", "cjepa"]},
        fixed={"train.batch_size": 32},
        params={"epochs": 2},
    )
    assert len(points) == 6
    seen = {(p.parameters["method"], p.parameters["overrides"]["ema.start"]) for p in points}
    assert seen == {(m, e) for m in ("ijepa", "cjepa") for e in (0.99, 0.996, 0.999)}
    for p in points:
        assert p.parameters["overrides"] == {
            "train.batch_size": 32,
            "ema.start": p.swept["ema.start"],
        }
        assert p.parameters["epochs"] == 2
        assert "ema.start" not in p.parameters  # papermill parameters must be identifiers
        assert p.swept == {
            "ema.start": p.parameters["overrides"]["ema.start"],
            "method": p.parameters["method"],
        }
    assert len({p.run_id for p in points}) == 6


def test_a_swept_plain_key_overrides_the_fixed_notebook_parameter(trainer_like):
    points = plan_sweep(trainer_like, {"seed": [1, 2]}, params={"seed": 0, "epochs": 1})
    assert [p.parameters["seed"] for p in points] == [1, 2]


def test_run_folders_stay_distinct_for_values_that_differ_only_in_sign_or_dot(trainer_like):
    points = plan_sweep(trainer_like, {"offset": [-1, 1, 1.0, 10, 0.1, 1e-05]})
    assert len({p.run_id for p in points}) == 6


def test_a_repeated_grid_value_fails_instead_of_sharing_a_run_folder(trainer_like):
    with pytest.raises(ValueError, match="share a run folder"):
        plan_sweep(trainer_like, {"offset": [1, 1]})


def test_the_workbook_training_notebook_can_be_swept_over_the_cjepa_weight():
    points = plan_sweep(TRAINING, {"loss.vicreg_weight": [0.0, 0.1], "method": ["cjepa"]})
    assert [p.parameters["overrides"] for p in points] == [
        {"loss.vicreg_weight": 0.0},
        {"loss.vicreg_weight": 0.1},
    ]
    for p in points:  # the override reaches the config exactly as the notebook builds it
        cfg = load_config(p.parameters["method"], p.parameters["overrides"])
        assert cfg.loss.vicreg_weight == p.swept["loss.vicreg_weight"]


# --- gather_sweep and plot_sweep ---------------------------------------------------------------
def write_run(base: Path, run: str, swept: dict | None, metrics: dict | None) -> None:
    folder = base / run
    folder.mkdir(parents=True)
    if swept is not None:
        (folder / "swept.json").write_text(json.dumps(swept))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps({"parameters": {}, "metrics": metrics}))


@pytest.fixture
def sweep_folder(tmp_path: Path) -> Path:
    base = tmp_path / "sweep"
    write_run(
        base,
        "w-0p1",
        {"loss.vicreg_weight": 0.1},
        {"knn_final": 0.6, "figures": ["a.png"], "stopped": ""},
    )
    write_run(
        base, "w-0p0", {"loss.vicreg_weight": 0.0}, {"knn_final": 0.5, "figures": [], "stopped": ""}
    )
    write_run(base, "w-1p0", {"loss.vicreg_weight": 1.0}, None)  # crashed before metrics.json
    write_run(base, "scale", {"masks.target_scale": [0.1, 0.2]}, {"knn_final": 0.4})
    (base / "sweep.csv").write_text("stale")  # a file beside the run folders is no run
    return base


def test_gather_sweep_makes_one_row_per_finished_run_with_swept_values_and_scalar_metrics(
    sweep_folder,
):
    table = gather_sweep(sweep_folder)
    assert list(table["run"]) == ["scale", "w-0p0", "w-0p1"]  # sorted; the crashed run is left out
    by_run = table.set_index("run")
    assert by_run.loc["w-0p1", "knn_final"] == 0.6
    assert by_run.loc["w-0p0", "loss.vicreg_weight"] == 0.0
    assert by_run.loc["scale", "masks.target_scale"] == (0.1, 0.2)  # lists come back as tuples
    assert pd.isna(by_run.loc["scale", "loss.vicreg_weight"])
    assert "figures" not in table.columns  # lists are not scalar metrics


def test_gather_sweep_can_keep_only_named_runs_in_their_order(sweep_folder):
    table = gather_sweep(sweep_folder, runs=["w-0p1", "w-0p0", "w-1p0"])
    assert list(table["run"]) == ["w-0p1", "w-0p0"]


def test_gather_sweep_on_a_missing_folder_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gather_sweep(tmp_path / "nothing")


def test_plot_sweep_draws_one_panel_per_metric_and_parameter_with_a_log_axis_for_decades():
    table = pd.DataFrame(
        {
            "loss.vicreg_weight": [0.0, 0.01, 0.1, 1.0] * 2,
            "method": ["a"] * 4 + ["b"] * 4,
            "knn_final": range(8),
            "rankme_final": range(8),
        }
    )
    fig = plot_sweep(table, ["loss.vicreg_weight", "method"], ["knn_final", "rankme_final"])
    axes = fig.axes
    assert len(axes) == 4
    assert axes[0].get_xscale() == "symlog" and axes[1].get_xscale() == "linear"
    assert len(axes[0].lines) == 2  # one line per value of the other parameter
    assert sorted(axes[0].lines[0].get_ydata()) == [0, 1, 2, 3]


# --- the shell form --------------------------------------------------------------------------
def test_shell_command_round_trips_through_the_cli_parsers():
    grid = {
        "loss.vicreg_weight": [0.0, 1e-05, 0.1],
        "masks.target_scale": [[0.1, 0.2]],
        "method": ["cjepa"],
    }
    command = shell_command(
        "notebooks/04_training.ipynb",
        grid,
        fixed={"train.epochs": 2},
        params={"resume": False},
        name="w",
        smoke=True,
    )
    args = shlex.split(command)
    assert args[:4] == ["python", "-m", "jepa_core.runner.sweep", "notebooks/04_training.ipynb"]
    values = {
        flag: [args[i + 1] for i, a in enumerate(args) if a == flag]
        for flag in ("--grid", "--set", "--param")
    }
    assert parse_grid(values["--grid"]) == grid
    assert parse_overrides(values["--set"]) == {"train.epochs": 2}
    assert parse_overrides(values["--param"]) == {"resume": False}
    assert args[-3:] == ["--name", "w", "--smoke"]


def test_the_cli_exits_nonzero_on_a_typo_and_starts_no_run(tmp_path):
    out = tmp_path / "sweep"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jepa_core.runner.sweep",
            "notebooks/04_training.ipynb",
            "--grid",
            "loss.vicreg_weigth=0,0.1",
            "--output-dir",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "did you mean 'loss.vicreg_weight'" in done.stderr
    assert not out.exists()


# --- one real sweep --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_two_point_smoke_sweep_over_the_training_notebook_writes_metrics_and_the_table(tmp_path):
    tiny = {"data.train_samples": 256, "eval.train_samples": 500, "monitor.samples": 128}
    table = run_sweep(
        TRAINING,
        {"loss.vicreg_weight": [0.0, 1.0]},
        fixed=tiny,
        params={"resume": False},
        output_dir=tmp_path,
        smoke=True,
    )
    assert len(table) == 2
    on_disk = pd.read_csv(tmp_path / "sweep.csv")
    assert list(on_disk["run"]) == list(table["run"])
    for _, row in table.iterrows():
        record = json.loads((tmp_path / row["run"] / "metrics.json").read_text())
        assert record["parameters"]["smoke"] is True
        assert record["parameters"]["config"]["loss.vicreg_weight"] == row["loss.vicreg_weight"]
        assert record["parameters"]["config"]["data.train_samples"] == 256
        assert 0.0 <= record["metrics"]["knn_final"] <= 1.0
        assert row["knn_final"] == record["metrics"]["knn_final"]
        assert (tmp_path / row["run"] / "04_training.ipynb").exists()
