"""The named presets, and what each method adds to I-JEPA with the defaults of its terms.

A preset is a dict of dotted overrides applied on top of the defaults of ``jepa_core.config``;
``METHOD_TERMS[method]`` fills the method's own loss terms left unset (``None``).
"""

from __future__ import annotations

from typing import Any

# What each method adds to I-JEPA, with the defaults of its terms.
# cjepa's vicreg_weight: the sweep of notebooks/06_sweeps.ipynb over w = 0, 0.01, 0.1, 1 (one
# epoch of mnist5k, 20-NN of the context encoder, seeds 0 and 1; README "Results") gave
# 0.340 / 0.431 / 0.431 / 0.427 (mean of the two seeds; initialisation 0.397): without VICReg
# the student narrows (RankMe 1.5-1.7), any weight from 0.01 to 1 keeps it spread (RankMe
# ~7.2-7.6) and scores the same within the noise. 0.1 sits in the middle of that plateau.
METHOD_TERMS: dict[str, dict[str, Any]] = {
    "ijepa": {},
    # vicreg_coeffs = (sim, std, cov). VICReg's own are (25, 25, 1); measured here on mnist5k
    # (cpu model, weight 0.1, first epoch, context encoder, 20-NN): with the invariance term the
    # mean-pooled k-NN fell from 40% to 33%, with variance + covariance alone it rose to 45%
    # (RankMe 2.9 -> 7.6). So the CPU preset starts with the invariance off; set
    # loss.vicreg_coeffs=[25,25,1] for the paper's full VICReg.
    "cjepa": {"vicreg_weight": 0.1, "vicreg_coeffs": (0.0, 25.0, 1.0), "views_from": "full_view"},
    "ijepa_ntxent": {"ntxent_weight": 0.1, "ntxent_temperature": 0.1, "views_from": "full_view"},
    "hjepa": {"level_weights": (1.0, 0.5, 0.25)},
}
METHOD_SPECIFIC = sorted({k for terms in METHOD_TERMS.values() for k in terms})

PRESETS: dict[str, dict[str, Any]] = {
    # I-JEPA as published (Assran et al., CVPR 2023; official code facebookresearch/ijepa):
    # linear EMA 0.996 -> 1.0, MSE (the paper's L2), no embedding normalisation, 4 targets at
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
}
