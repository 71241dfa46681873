"""The real-data table: each method trained on one dataset, then k-NN accuracy of its encoder
against the same encoder at initialisation and raw pixels.

    python benchmarks/real_data.py --root ../shared/datasets/cifar10 \\
        --methods ijepa cjepa ijepa_ntxent --set train.epochs=2 --set data.train_samples=20000

Every run is ``jepa_core.train.train`` into ``results/real_data/<name>/<method>/`` with
``train.resume`` on, so a killed table picks up where it stopped. "Initialisation" is row 0
of each run's history (the encoders before the first step: the same seed gives every method
the same initial encoder); "trained" is the last row (``eval.encoder``, the EMA teacher by
default). Both pool the tokens by their mean (``eval.pool``); the table adds the same k-NN on
flattened tokens (all ``N * D`` numbers, the spatial layout kept) of the initial and each
trained encoder, since on small images the pooling decides much of the score (notebook 05).
Raw pixels: the same k-NN on the flattened, mean-centred images (the usual pixel baseline).
Writes ``table.md`` and ``metrics.json`` (with this exact command) beside the runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from torch.utils.data import DataLoader

from jepa_core.build import run_datasets
from jepa_core.config import add_override_option, load_config, parse_overrides
from jepa_core.evaluate import FEATURE_BATCH
from jepa_core.lessons.evaluation import (
    accuracy_table,
    feature_sets,
    initial_encoder,
    pixel_feature_sets,
)
from jepa_core.paths import resolve, results_dir
from jepa_core.results import write_metrics
from jepa_core.train import train


def baseline_knn(cfg, trained: dict) -> dict[str, float]:
    """The runs' k-NN, with the runs' memory bank and test set, on flattened tokens of the
    initial encoder (key ``"init"``) and of each trained one (``{method: encoder}``), and on
    flattened, mean-centred raw pixels (key ``"raw pixels"``)."""
    _, test_set, bank = run_datasets(cfg)
    loaders = (
        DataLoader(bank, batch_size=FEATURE_BATCH),
        DataLoader(test_set, batch_size=FEATURE_BATCH),
    )
    encoders = {("init", "-"): initial_encoder(cfg)} | {
        (m, cfg.eval.encoder): e.cpu().eval() for m, e in trained.items()
    }
    features = feature_sets(encoders, *loaders, pools=("flatten",))
    pixels = pixel_feature_sets(*loaders)[("raw pixels", "-", "pixels, centred")]
    table = accuracy_table(
        {**features, pixels.key: pixels},
        k_values=(cfg.eval.k,),
        linear_probe=False,
        temperature=cfg.eval.temperature,
    )
    return dict(zip(table["method"], table[f"knn{cfg.eval.k}"].astype(float), strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="imagefolder", help="data.name")
    parser.add_argument(
        "--root", default=None, help="data.root (imagefolder: the folder with train/ and test/)"
    )
    parser.add_argument(
        "--name", default=None, help="results/real_data/<name>/ (default: the root's folder name)"
    )
    parser.add_argument("--methods", nargs="+", default=["ijepa", "cjepa", "ijepa_ntxent"])
    add_override_option(
        parser, help="a dotted override for every run, e.g. --set train.epochs=2 (repeatable)"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="folder for the runs and the table (default results/real_data/<name>)",
    )
    args = parser.parse_args(argv)
    name = args.name or (args.root.rstrip("/").split("/")[-1] if args.root else args.data)
    base = resolve(args.output) if args.output else results_dir("real_data", name)
    base.mkdir(parents=True, exist_ok=True)
    common = {
        "data.name": args.data,
        **({"data.root": args.root} if args.root else {}),
        "eval.every": 0,
        **parse_overrides(args.overrides),
    }
    rows, trained = [], {}
    for method in args.methods:
        result = train(
            method,
            overrides={**common, "train.output_dir": str(base / method), "train.resume": True},
        )
        h = result.history
        trained[method] = result.encoder()
        rows.append(
            {
                "method": method,
                "init_knn": float(h["knn_acc"].iloc[0]),
                "trained_knn": result.final["knn_acc"],
                "rankme": result.final["rankme"],
                "std_mean": result.final["std_mean"],
                "train_seconds": float(h["seconds"].iloc[-1]),
                "steps": int(h["step"].iloc[-1]),
            }
        )
        print(
            f"{method}: init {rows[-1]['init_knn']:.4f} -> trained {rows[-1]['trained_knn']:.4f}",
            flush=True,
        )
    cfg = load_config(args.methods[0], common)
    knn = baseline_knn(cfg, trained)
    pixels = knn["raw pixels"]
    for r in rows:
        r["trained_knn_flatten"] = knn[r["method"]]
    command = "python benchmarks/real_data.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    pooled = "mean-pooled" if cfg.eval.pool == "mean" else f"eval.pool={cfg.eval.pool}"
    lines = [
        f"# {name}: {cfg.eval.k}-NN accuracy of the {cfg.eval.encoder} encoder",
        "",
        f"Command: `{command}`",
        "",
        f"| method | {pooled}, at initialisation | {pooled}, trained | flattened tokens, trained "
        "| RankMe | train seconds | steps |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['init_knn']:.1%} | {r['trained_knn']:.1%} | "
        f"{r['trained_knn_flatten']:.1%} | "
        f"{r['rankme']:.1f} | {r['train_seconds']:.0f} | {r['steps']} |"
        for r in rows
    ]
    lines += [
        f"| initial encoder, flattened tokens | | | {knn['init']:.1%} | | | |",
        f"| raw pixels (mean-centred) | | | {pixels:.1%} | | | |",
        "",
    ]
    (base / "table.md").write_text("\n".join(lines))
    write_metrics(
        base,
        parameters={"command": command, **cfg.flat()},
        metrics={"runs": rows, "raw_pixel_knn": pixels, "init_knn_flatten": knn["init"]},
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
