"""Training throughput (images per second) of each model preset on each device.

    python benchmarks/train_throughput.py                                  # cpu preset, this CPU
    python benchmarks/train_throughput.py --sizes cpu vit_tiny vit_small --devices cpu cuda
    python benchmarks/train_throughput.py --data imagefolder \\
        --root ../shared/datasets/cifar10 --image-size 32

Each measurement is ``jepa_core.train.train`` itself (data loading, masks, target and context
forward, loss, AdamW, EMA), one epoch of ``--warmup + --steps`` optimizer steps; the clock is
the loop's own ``seconds`` column, which leaves out the k-NN and monitor passes, read after
the warm-up steps and at the end. Writes ``results/benchmarks/train_throughput.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import torch

from jepa_core.device import resolve_device
from jepa_core.paths import resolve, results_dir
from jepa_core.results import write_metrics
from jepa_core.train import train

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from knn_vs_sklearn import machine  # noqa: E402


def throughput(method: str, size: str, device: str, args) -> dict[str, object]:
    steps = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as out:
        overrides = {
            "model.size": size,
            "model.patch_size": args.patch_size,
            "data.name": args.data,
            "data.root": args.root,
            "data.image_size": args.image_size,
            "data.train_samples": steps * args.batch_size,
            "data.num_workers": args.workers,
            "train.batch_size": args.batch_size,
            "train.epochs": 1,
            "train.log_every": args.warmup,
            "train.device": device,
            "train.compile": args.compile,
            "train.output_dir": out,
            "eval.every": 0,
            "eval.train_samples": 64,
            "monitor.samples": 64,
        }
        result = train(
            method, overrides={k: v for k, v in overrides.items() if v is not None}, progress=False
        )
    h = result.history
    warm, last = h[h["step"] == args.warmup].iloc[0], h.iloc[-1]
    images_per_s = (last["images"] - warm["images"]) / (last["seconds"] - warm["seconds"])
    return {
        "method": method,
        "size": size,
        "device": device,
        "batch_size": args.batch_size,
        "image_size": int(result.context_encoder.patch_embed.img_size[0]),
        "steps_timed": args.steps,
        "images_per_second": round(float(images_per_s), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["ijepa", "cjepa"])
    parser.add_argument(
        "--sizes", nargs="+", default=["cpu"], help="model presets (cpu, vit_tiny, vit_small)"
    )
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--root", default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--warmup", type=int, default=3, help="optimizer steps before the clock starts"
    )
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps timed")
    parser.add_argument("--workers", type=int, default=0, help="data.num_workers")
    parser.add_argument("--compile", action="store_true", help="train.compile (torch.compile)")
    parser.add_argument(
        "--output",
        default=None,
        help="folder for train_throughput.json (default results/benchmarks)",
    )
    args = parser.parse_args(argv)
    devices = [resolve_device(d, key="--devices") for d in args.devices]
    rows = []
    for device in devices:
        for size in args.sizes:
            for method in args.methods:
                row = throughput(method, size, str(device), args)
                rows.append(row)
                print(
                    f"{method:>12} {size:>9} on {device}: {row['images_per_second']:8.1f} images/s "
                    f"(batch {args.batch_size}, {row['image_size']}px)",
                    flush=True,
                )
    out = resolve(args.output) if args.output else results_dir("benchmarks")
    path = write_metrics(
        out,
        parameters=vars(args),
        metrics={"runs": rows, "machine": machine(devices[0])},
        name="train_throughput.json",
    )
    print(path)
    return 0


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
