"""The benchmark scripts run end to end at toy sizes and write the JSON they promise.

No speed is asserted here: the numbers are the scripts' output, quoted in the README with the
machine they came from.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from jepa_core.paths import repo_root


def script(name: str):
    path = repo_root() / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_knn_benchmark_times_both_sides_on_the_same_data(tmp_path):
    script("knn_vs_sklearn").main(["--train", "3000", "--test", "500", "--output", str(tmp_path)])
    m = json.loads((tmp_path / "knn_vs_sklearn.json").read_text())["metrics"]
    assert m["workbook_seconds"] > 0 and m["sklearn_seconds"] > 0
    assert math.isclose(m["speedup"], m["sklearn_seconds"] / m["workbook_seconds"])
    # same search, different vote weights: both classify the separable mixture, mostly alike
    assert m["workbook_accuracy"] > 0.8 and m["sklearn_accuracy"] > 0.8
    assert m["prediction_agreement"] > 0.9
    assert m["machine"]["cpu_count"] >= 1


def test_throughput_benchmark_reports_images_per_second_per_method(tmp_path):
    script("train_throughput").main(
        [
            "--methods",
            "ijepa",
            "--batch-size",
            "32",
            "--warmup",
            "1",
            "--steps",
            "2",
            "--output",
            str(tmp_path),
        ]
    )
    runs = json.loads((tmp_path / "train_throughput.json").read_text())["metrics"]["runs"]
    assert [(r["method"], r["size"], r["device"]) for r in runs] == [("ijepa", "cpu", "cpu")]
    assert runs[0]["images_per_second"] > 0 and runs[0]["image_size"] == 28


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_real_data_table_compares_trained_initial_and_raw_pixels(tmp_path):
    tiny = [
        "--set",
        "data.train_samples=64",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.epochs=1",
        "--set",
        "eval.train_samples=100",
        "--set",
        "monitor.samples=64",
    ]
    script("real_data").main(
        ["--data", "mnist5k", "--methods", "ijepa", "--output", str(tmp_path), *tiny]
    )
    table = (tmp_path / "table.md").read_text()
    assert "| ijepa |" in table and "raw pixels" in table and "--set data.train_samples=64" in table
    m = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert 0 < m["runs"][0]["init_knn"] <= 1 and 0 < m["runs"][0]["trained_knn"] <= 1
    # flattened tokens keep the digit's layout: far above the mean-pooled score of the same encoder
    assert "| initial encoder, flattened tokens |" in table
    assert (
        m["init_knn_flatten"] > m["runs"][0]["init_knn"]
        and 0 < m["runs"][0]["trained_knn_flatten"] <= 1
    )
    assert (
        m["raw_pixel_knn"] > 0.5
    )  # pixels of 100 digits already classify the 1,000 test digits well
    assert (tmp_path / "ijepa" / "checkpoint.pt").exists()


def test_step_benchmark_times_train_step_on_pre_drawn_masks(tmp_path):
    args = ["--size", "cpu", "--batch-size", "8", "--warmup", "1", "--steps", "2", "--repeats", "2"]
    script("train_step").main([*args, "--output", str(tmp_path)])
    record = json.loads((tmp_path / "train_step.json").read_text())
    m = record["metrics"]
    assert len(m["rounds_images_per_second"]) == 2 and all(
        r > 0 for r in m["rounds_images_per_second"]
    )
    assert min(m["rounds_images_per_second"]) <= m["images_per_second"]
    assert m["images_per_second"] <= max(m["rounds_images_per_second"])
    assert record["parameters"]["size"] == "cpu" and m["machine"]["cpu_count"] >= 1
    # the real sampler is back in place after the timed steps
    import jepa_core.build
    import jepa_core.train

    assert jepa_core.train.sample_masks is jepa_core.build.sample_masks


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_accuracy_vs_time_scores_teacher_and_student_until_the_budget(tmp_path):
    tiny = ["data.train_samples=64", "train.batch_size=32", "train.log_every=1"]
    tiny += ["eval.train_samples=100", "monitor.samples=64"]
    args = ["--methods", "ijepa", "lejepa", "--datasets", "mnist5k", "cifar10"]
    args += ["--minutes", "0.02", "--points", "1", "--cifar-root", str(tmp_path / "no_cifar")]
    args += ["--out", str(tmp_path), *[a for s in tiny for a in ("--set", s)]]
    script("accuracy_vs_time").main(args)
    record = json.loads((tmp_path / "accuracy_vs_time.json").read_text())
    m = record["metrics"]
    assert m["budget_minutes"] == 0.02 and m["machine"]["torch_threads"] >= 1
    assert "no_cifar" in m["datasets"]["cifar10"]["skipped"]
    mnist = m["datasets"]["mnist5k"]
    assert mnist["skipped"] is None and 0 < mnist["raw_pixels_centred"] <= 1
    assert mnist["bank_images"] == 64 and mnist["test_images"] == 1000
    for method, run in mnist["methods"].items():
        points = run["points"]
        assert len(points) >= 2 and points[0]["step"] == 0 and points[0]["seconds"] == 0
        assert [p["seconds"] for p in points] == sorted(p["seconds"] for p in points)
        assert points[-1]["seconds"] >= 0.02 * 60 and run["stopped_by"] == "budget"
        assert all(0 <= p["knn_teacher"] <= 1 for p in points)
        assert run["overrides"]["train.log_every"] == 1 and run["init"] == points[0]["knn_teacher"]
        if method == "lejepa":  # no teacher: its one encoder, scored once
            assert run["student_is_teacher"] and all(p["knn_student"] is None for p in points)
        else:
            assert not run["student_is_teacher"]
            assert all(0 <= p["knn_student"] <= 1 for p in points)
    assert (tmp_path / "accuracy_vs_time.png").stat().st_size > 0


def test_accuracy_vs_time_refuses_unknown_methods_naming_the_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        script("accuracy_vs_time").main(["--methods", "byol", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "byol" in err and all(m in err for m in ("ijepa", "cjepa", "hjepa", "lejepa"))
    assert not (tmp_path / "accuracy_vs_time.json").exists()


def test_accuracy_vs_time_scores_every_budget_share_and_stops_at_the_budget(monkeypatch):
    module = script("accuracy_vs_time")
    scores = {"knn_teacher": 0.5, "knn_student": 0.4}
    monkeypatch.setattr(module, "teacher_and_student", lambda run: scores)
    recorder = module.Recorder(budget_seconds=10.0, points=5)  # marks at 2, 4, 6, 8 s
    run = type("Run", (), {"cfg": module.load_config("ijepa")})()
    assert recorder.knn(run) == 0.5  # the loop's k-NN at row 0: the teacher's
    with pytest.raises(module.BudgetSpent):
        for step in range(20):  # a history row every second, an epoch end at step 3
            if step == 3:
                recorder.knn(run)
            recorder({"seconds": step and step + 0.5, "epoch": step / 3, "step": step})
    assert [p["step"] for p in recorder.points] == [0, 2, 3, 4, 6, 8, 10]
    assert all(p["knn_student"] == 0.4 for p in recorder.points)


def test_accuracy_vs_time_sets_a_key_for_one_method_only(tmp_path, capsys):
    module = script("accuracy_vs_time")
    args = ["--methods", "ijepa", "cjepa", "--datasets", "mnist5k", "--set", "train.epochs=4"]
    args += ["--set-for", "cjepa", "train.epochs=2", "--set-for", "cjepa", "loss.vicreg_weight=1"]
    parsed = module.build_parser().parse_args(args)
    plans, skipped = module.plan_runs(parsed, tmp_path, tmp_path / "no_cifar")
    assert skipped == {}
    assert plans["mnist5k"]["ijepa"]["train.epochs"] == 4
    assert "loss.vicreg_weight" not in plans["mnist5k"]["ijepa"]
    assert plans["mnist5k"]["cjepa"]["train.epochs"] == 2
    assert plans["mnist5k"]["cjepa"]["loss.vicreg_weight"] == 1
    # a method that does not run, or a key the method refuses, stops before anything trains
    for bad, culprit in (
        (["--set-for", "lejepa", "train.epochs=2"], "lejepa"),
        (["--set-for", "ijepa", "loss.vicreg_weight=1"], "vicreg_weight"),
    ):
        with pytest.raises(SystemExit):
            module.main([*args, *bad, "--out", str(tmp_path)])
        assert culprit in capsys.readouterr().err
    assert not (tmp_path / "accuracy_vs_time.json").exists()
