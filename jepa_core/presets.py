"""The named presets, and what each method adds to I-JEPA with the defaults of its terms.

A preset is a dict of dotted overrides applied on top of the defaults of ``jepa_core.config``;
``METHOD_TERMS[method]`` fills the method's own loss terms left unset (``None``).
"""

from __future__ import annotations

from typing import Any

# What each method adds to I-JEPA, with the defaults of its terms.
METHOD_TERMS: dict[str, dict[str, Any]] = {
    "ijepa": {},
    # VICReg as its paper has it: coefficients (sim, std, cov) = (25, 25, 1) and an expander in
    # front of the loss (VICReg: 3 x 8192; here 3 x 512 for CPUs), on full views. The weight: a
    # two-seed sweep (2 epochs of mnist5k, teacher's mean-pooled 20-NN; docs/results.md, "The
    # C-JEPA weight") gave 0.476 / 0.472 / 0.479 for w = 0.01 / 0.1 / 1 (mean of seeds 0 and 1;
    # init 0.402): a plateau within the seed-to-seed spread; 0.1 sits in its middle.
    "cjepa": {
        "vicreg_weight": 0.1,
        "vicreg_coeffs": (25.0, 25.0, 1.0),
        "views_from": "full_view",
        "projector_dims": (512, 512, 512),
    },
    "ijepa_ntxent": {"ntxent_weight": 0.1, "ntxent_temperature": 0.1, "views_from": "full_view"},
    "hjepa": {"level_weights": (1.0, 0.5, 0.25)},
    # LeJEPA's lambda sized to the run: 0.2, where the paper's 0.05 stays one override away (--set
    # loss.sigreg_weight=0.05). On mnist5k at 3 epochs the prediction term wins too early under
    # 0.05 and the pooled embeddings stay narrow (docs/results.md, "The LeJEPA recipe", scratch
    # runs: 20-NN 0.53 at 0.05, 0.65 at 0.1, 0.67 at 0.2; 0.44 at 0.4 with lr 5e-3). M = 256 (the
    # minimal example's; 1024 scored the same); a projector 512-512-32 with BatchNorm and ReLU
    # (the minimal example's shape, narrower; its recommended output is 16): mnist5k, 3 epochs,
    # seeds 0-3, pooled 20-NN 0.706 / 0.719 / 0.613 / 0.637 (mean 0.669) against 0.674 / 0.612 /
    # 0.663 / 0.563 (0.628) with 64 outputs; 16 outputs 0.669 at seed 0, 128 lower (the same
    # page, "The projector's width"). The numbers below were measured with 64 outputs. The 2
    # global views only: local views at half the side (16 px, as the paper's 96 px beside 224)
    # did not pay for themselves (mnist5k, 3 epochs: 0.497 with 2 against 0.674; CIFAR-10, 15
    # minutes: 40.0% with 4 against 41.6%, each step 1.9 times as long; docs/results.md,
    # "LeJEPA's local views"). Without the projector's BatchNorm, or without a projector, the
    # pooled embeddings lost rank. On CIFAR-10 the paper's 0.05 scored higher (41.6% against
    # 39.9% seed 0, 41.4% against 38.4% seed 1: pooled 20-NN after 15 CPU-minutes;
    # docs/results.md, "Each method's weight on CIFAR-10").
    "lejepa": {
        "sigreg_weight": 0.2,
        "sigreg_directions": 256,
        "local_views": 0,
        "local_crop_scale": (0.1, 0.4),
        "local_resolution": 0.5,
        "projector_dims": (512, 512, 32),
    },
}
METHOD_SPECIFIC = sorted({k for terms in METHOD_TERMS.values() for k in terms})

PRESETS: dict[str, dict[str, Any]] = {
    # I-JEPA as published (Assran et al., CVPR 2023; official code facebookresearch/ijepa):
    # linear EMA 0.996 -> 1.0 over the paper's run (sized to shorter runs by the run-length
    # rule, jepa_core.ema), MSE (the paper's L2), no embedding normalisation, 4 targets at
    # 0.15-0.2 / aspect 0.75-1.5, one context block at 0.85-1.0. Targets are layer-normed as
    # in the official code (loss.target_layer_norm).
    "ijepa": {"loss.method": "ijepa"},
    # C-JEPA (Mo & Tong, NeurIPS 2024): I-JEPA + VICReg on the mean-pooled context-encoder
    # embeddings of two augmented views.
    "cjepa": {"loss.method": "cjepa"},
    # An I-JEPA + NT-Xent hybrid (a proposed C-JEPA variant; this workbook tests whether it
    # helps): NT-Xent on the *online* (context-encoder) pooled embeddings of two views --
    # never on stop-gradient target features, where it trains nothing (notebook 03).
    "ijepa_ntxent": {"loss.method": "ijepa_ntxent"},
    # Multi-level targets: the last L depths of the target encoder, weighted.
    "hjepa": {"loss.method": "hjepa"},
    # LeJEPA (Balestriero & LeCun 2025, arXiv 2511.08544; rbalestr-lab/lejepa): no teacher, no
    # EMA, no stop-gradient, no masks; views pulled together, SIGReg against collapse.
    # Batch 64 (twice the optimizer steps of batch 128 in the same epochs; 32 scored lower) at
    # lr 2.5e-3 (5e-3 and 1e-2 scored lower), warm-up 0.3 epoch instead of 1 (docs/results.md,
    # "The LeJEPA recipe").
    "lejepa": {
        "loss.method": "lejepa",
        "train.batch_size": 64,
        "optim.lr": 0.0025,
        "optim.warmup_epochs": 0.3,
    },
}

# What LeJEPA has no use for: the teacher (EMA), the masks and the I-JEPA loss's options.
# Refused when set under loss.method=lejepa (jepa_core.config_checks.apply_method_terms).
TEACHER_KEYS = (
    "ema.start",
    "ema.end",
    "ema.kind",
    "ema.stop_grad",
    "ema.target_in_optimizer",
    "masks.n_targets",
    "masks.target_scale",
    "masks.target_aspect",
    "masks.context_scale",
    "masks.min_keep",
    "masks.allow_overlap",
    "loss.kind",
    "loss.target_layer_norm",
    "loss.pixel_weight",
)
