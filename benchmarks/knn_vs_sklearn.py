"""k-NN evaluation at ImageNet-probe scale: ``jepa_core.evaluate.knn_accuracy`` against
scikit-learn's ``KNeighborsClassifier`` on the same features, in one run, as a ratio.

    python benchmarks/knn_vs_sklearn.py                      # 50,000 x 10,000, 192-d, CPU
    python benchmarks/knn_vs_sklearn.py --device cuda        # the workbook's k-NN on a GPU

Both sides do the same job: cosine similarity of every test row to every training row, the
k nearest, a vote. scikit-learn runs brute force with ``metric="cosine"`` (its exact search for
cosine) and ``n_jobs=-1``; the workbook's k-NN runs chunked matrix products in torch and votes
with DINO's weights exp(sim / T) (scikit-learn's ``weights="distance"`` votes 1 / (1 - sim)),
so the two agree on most rows, not all: the share is reported. The features are a seeded
mixture of Gaussians (one mean per class), because the benchmark is about the search, not the
encoder. Writes ``results/benchmarks/knn_vs_sklearn.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
from sklearn.neighbors import KNeighborsClassifier

from jepa_core.device import resolve_device
from jepa_core.evaluate import knn_predict
from jepa_core.paths import resolve, results_dir
from jepa_core.results import write_metrics


def mixture_features(n: int, means: torch.Tensor, spread: float, generator: torch.Generator):
    """``n`` rows around the class ``means`` [classes, dim]: rows = mean + spread * N(0, 1)."""
    classes, dim = means.shape
    labels = torch.randint(classes, (n,), generator=generator)
    return means[labels] + spread * torch.randn(n, dim, generator=generator), labels


def machine(device: torch.device) -> dict[str, object]:
    facts = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "device": str(device),
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=50_000, help="training rows (memory bank)")
    parser.add_argument("--test", type=int, default=10_000, help="test rows")
    parser.add_argument("--dim", type=int, default=192, help="feature size (192: ViT-Ti width)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--spread", type=float, default=4.0, help="noise around the class means")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument(
        "--device", default="cpu", help="where the workbook's k-NN runs: cpu, cuda, auto"
    )
    parser.add_argument(
        "--output", default=None, help="folder for knn_vs_sklearn.json (default results/benchmarks)"
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device, key="--device")
    g = torch.Generator().manual_seed(0)
    means = torch.randn(args.classes, args.dim, generator=g)
    train_x, train_y = mixture_features(args.train, means, args.spread, g)
    test_x, test_y = mixture_features(args.test, means, args.spread, g)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    tx, ty, qx = train_x.to(device), train_y.to(device), test_x.to(device)
    knn_predict(tx[:1000], ty[:1000], qx[:100], k=args.k)  # warm-up (kernels, allocator)
    sync()
    t0 = time.perf_counter()
    ours = knn_predict(tx, ty, qx, k=args.k).cpu()
    sync()
    ours_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    sk = KNeighborsClassifier(
        n_neighbors=args.k, metric="cosine", algorithm="brute", weights="distance", n_jobs=-1
    ).fit(train_x.numpy(), train_y.numpy())
    theirs = torch.from_numpy(sk.predict(test_x.numpy()))
    sklearn_s = time.perf_counter() - t0

    metrics = {
        "workbook_seconds": ours_s,
        "sklearn_seconds": sklearn_s,
        "speedup": sklearn_s / ours_s,
        "workbook_accuracy": float((ours == test_y).float().mean()),
        "sklearn_accuracy": float((theirs == test_y).float().mean()),
        "prediction_agreement": float((ours == theirs).float().mean()),
        "machine": machine(device),
    }
    out = resolve(args.output) if args.output else results_dir("benchmarks")
    path = write_metrics(out, parameters=vars(args), metrics=metrics, name="knn_vs_sklearn.json")
    print(
        f"k-NN {args.train:,} x {args.test:,} x {args.dim}, k={args.k}: "
        f"workbook ({device}) {ours_s:.2f} s, "
        f"scikit-learn {sklearn_s:.2f} s -> {sklearn_s / ours_s:.1f}x; "
        f"accuracy {metrics['workbook_accuracy']:.3f} "
        f"vs {metrics['sklearn_accuracy']:.3f}, "
        f"agreement {metrics['prediction_agreement']:.3f}\n{path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
