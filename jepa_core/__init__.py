"""jepa_core: the thin, tested library under the JEPA Workbook notebooks.

One file per idea: ``masks`` (multi-block masking), ``models`` (ViT encoder and predictor from
timm parts), ``ema`` (the teacher), ``losses`` (I-JEPA, VICReg, NT-Xent), ``monitor``
(collapse metrics), ``evaluate`` (k-NN, linear probe), ``data`` (datasets and views),
``config`` (typed configs and presets), ``train`` (the training loop and its CLI).
"""

__version__ = "0.1.0"
