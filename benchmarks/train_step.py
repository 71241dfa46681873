"""Images per second of one training step, ``jepa_core.train.train_step``, on fixed batches.

    python benchmarks/train_step.py                              # vit_tiny, batch 64, 32 px, CPU
    python benchmarks/train_step.py --size cpu --batch-size 128 --device cuda

The whole step (target forward, context forward, prediction, loss, backward, AdamW, EMA) on
``--steps`` batches of random images whose masks are drawn beforehand, so the clock measures
the step alone, as the official I-JEPA loop does (its masks come from the data loader's
collator). Defaults: ViT-Tiny (12 x 192, predictor 6 x 96), 32 px images, patch 4, batch 64,
4 target blocks, smooth-L1 loss (the official code's), ``--threads`` torch threads. Writes
``results/benchmarks/train_step.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import jepa_core.train as train_module
from jepa_core.build import build_run, sample_masks
from jepa_core.config import load_config
from jepa_core.device import resolve_device
from jepa_core.paths import resolve, results_dir
from jepa_core.results import write_metrics

sys.path.insert(0, str(Path(__file__).parent))
from knn_vs_sklearn import machine  # noqa: E402


def step_run(args):
    """A run of the ``ijepa`` preset on ``args``' sizes, and a fixed batch of images per step."""
    cfg = load_config(
        "ijepa",
        {
            "model.size": args.size,
            "model.patch_size": args.patch_size,
            "data.image_size": args.image_size,
            "train.batch_size": args.batch_size,
            "train.device": args.device,
            "loss.kind": "smooth_l1",
            "data.train_samples": args.batch_size,
            "monitor.samples": 8,
        },
    )
    run = build_run(cfg)
    g = torch.Generator().manual_seed(0)
    shape = (args.batch_size, *run.train_set[0][0].shape)
    batches = [
        torch.randn(shape, generator=g).to(run.device) for _ in range(args.warmup + args.steps)
    ]
    masks = [sample_masks(run, args.batch_size, i) for i in range(len(batches))]
    return run, batches, masks


def time_steps(run, batches, masks, first: int, count: int) -> float:
    """Seconds for ``count`` steps from ``first``, the masks handed in (drawn beforehand)."""
    drawn = dict(enumerate(masks))
    real = train_module.sample_masks
    train_module.sample_masks = lambda run, n, micro_step: drawn[micro_step]
    try:
        sync(run.device)
        start = time.perf_counter()
        for i in range(first, first + count):
            train_module.train_step(run, [batches[i]], i)
        sync(run.device)
        return time.perf_counter() - start
    finally:
        train_module.sample_masks = real


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", default="vit_tiny", help="model preset (cpu, vit_tiny, vit_small)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--warmup", type=int, default=2, help="steps before the clock starts")
    parser.add_argument("--steps", type=int, default=10, help="steps timed, in --repeats rounds")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed rounds (the median is reported)"
    )
    parser.add_argument(
        "--output", default=None, help="folder for train_step.json (default results/benchmarks)"
    )
    args = parser.parse_args(argv)
    args.device = str(resolve_device(args.device, key="--device"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    per_round = max(1, args.steps // args.repeats)
    args.steps = per_round * args.repeats
    run, batches, masks = step_run(args)
    time_steps(run, batches, masks, 0, args.warmup)
    rates = []
    for r in range(args.repeats):
        seconds = time_steps(run, batches, masks, args.warmup + r * per_round, per_round)
        rates.append(per_round * args.batch_size / seconds)
    metrics = {
        "images_per_second": round(statistics.median(rates), 1),
        "rounds_images_per_second": [round(x, 1) for x in rates],
        "machine": machine(run.device),
    }
    out = resolve(args.output) if args.output else results_dir("benchmarks")
    path = write_metrics(out, parameters=vars(args), metrics=metrics, name="train_step.json")
    print(
        f"train_step {args.size}, batch {args.batch_size}, {args.image_size} px, "
        f"patch {args.patch_size}, "
        f"{args.device}, {args.threads} threads: {metrics['images_per_second']} images/s "
        f"(rounds {metrics['rounds_images_per_second']})\n{path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
