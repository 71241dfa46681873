"""A small, fabricated results tree for the index page's tests: two notebooks' metrics.json,
real PNG figures, an executed notebook with printed verdicts, and notebook 05's comparison."""

from __future__ import annotations

import json
from pathlib import Path

COMPARISON = [
    {
        "method": "init",
        "encoder": "target=context",
        "pool": "mean",
        "knn20": 0.402,
        "linear_probe": 0.724,
    },
    {
        "method": "init",
        "encoder": "target=context",
        "pool": "flatten",
        "knn20": 0.904,
        "linear_probe": 0.881,
    },
    {"method": "cjepa", "encoder": "target", "pool": "mean", "knn20": 0.413, "linear_probe": 0.714},
    {"method": "cjepa", "encoder": "target", "pool": "flatten", "knn20": 0.9, "linear_probe": None},
    {
        "method": "raw pixels",
        "encoder": "-",
        "pool": "pixels",
        "knn20": 0.931,
        "linear_probe": 0.885,
    },
    {
        "method": "raw pixels",
        "encoder": "-",
        "pool": "pixels, centred",
        "knn20": 0.933,
        "linear_probe": None,
    },
]
VERDICT = "Raw pixels beat the mean-pooled features of every encoder here: True"
FIGURES = {
    "01_masking": ["masks_on_digits.png", "mask_statistics.png"],
    "05_evaluation": ["comparison.png"],
}


def write_png(path: Path, width: int = 2, height: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=40)
    ax.plot([0, 1], [1, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def executed_notebook(printed: list[str]) -> dict:
    """An executed notebook whose code cells printed ``printed`` (one cell each), after a
    parameters cell that printed something no verdict should show."""
    parameters = {
        "cell_type": "code",
        "metadata": {"tags": ["parameters"]},
        "source": "smoke = True",
        "outputs": [{"output_type": "stream", "name": "stdout", "text": ["PARAMETERS\n"]}],
    }
    cells = [parameters] + [
        {
            "cell_type": "code",
            "metadata": {},
            "source": "print(...)",
            "outputs": [
                {"output_type": "stream", "name": "stdout", "text": [text + "\n"]},
                {"output_type": "stream", "name": "stderr", "text": ["a warning\n"]},
            ],
        }
        for text in printed
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def fabricate_results(tmp_path: Path) -> tuple[Path, list[str]]:
    """``<tmp>/results/smoke`` as a smoke run leaves it; returns it and the figures' relative
    paths (as the index page must reference them)."""
    root = tmp_path / "results" / "smoke"
    for name, figures in FIGURES.items():
        metrics = {"figures": figures, "best_method": "cjepa", "n_runs": 3}
        if name == "05_evaluation":
            metrics["comparison_table"] = COMPARISON
        (root / name).mkdir(parents=True)
        (root / name / "metrics.json").write_text(
            json.dumps(
                {"parameters": {}, "metrics": metrics, "timings": {"notebook_seconds": 12.3}}
            )
        )
        for figure in figures:
            write_png(root / name / figure)
    (root / "notebooks").mkdir()
    (root / "notebooks" / "05_evaluation.ipynb").write_text(
        json.dumps(executed_notebook([VERDICT]))
    )
    (root / "notebooks" / "05_evaluation.html").write_text("<html><body>executed</body></html>")
    (root / "summary.md").write_text("# summary\n")
    return root, [f"{name}/{f}" for name, figures in FIGURES.items() for f in figures]
