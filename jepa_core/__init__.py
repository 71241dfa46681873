"""jepa_core: the thin, tested library under the JEPA Workbook notebooks, in three layers.

The library (this folder): what a JEPA is.
    masks        multi-block masking (the official collator's semantics), ``apply_masks``
    collator     ``MultiBlockMaskCollator``: masks drawn by a DataLoader, as the official loader
    models       ViT encoder and predictor from timm parts
    ema          momentum schedules and ``ema_update`` (the teacher)
    losses       the I-JEPA loss, VICReg, NT-Xent, SIGReg
    objectives   what each method predicts and how wrong it is
    monitor      collapse metrics (RankMe, embedding spread)
    evaluate     features, k-NN, linear probe
    data         datasets, image folders, views, loaders
    config       typed configs, presets, dotted overrides
    presets      the named presets and each method's loss terms
    config_checks  a config's values checked: types, ranges, method terms
    build        a run built from its config: data, models, optimizer, seeded streams
    history      a run's history rows and its collapse alarm
    train        the training step, the loop around it, the command line
    optim        AdamW and its schedules
    checkpoint   atomic checkpoints and a run's saved state
    distributed  several processes under torchrun
    device       cpu / cuda / auto, autocast
    checks       the integer check the public entry points share
    frontend     what a notebook shows with or without a front end (widgets, progress bars)
    paths        the repository's folders; ``results``: the one results writer

The lessons (``jepa_core.lessons``): what one notebook needs to show it, with its figures.
    notebook (every notebook's set-up), masking + masking_figures (01), collapse (02),
    loss_probes + loss_probes_figures (03), training (04), evaluation + evaluation_figures (05),
    sweeps (06); panel_grid lays out their multi-panel figures

The runner (``jepa_core.runner``): headless runs and sweeps.
    execute (papermill, the project's kernel, per-cell timeouts), workbook (``make run``),
    index_page (``results/index.html``), sweep (papermill sweeps)
"""

__version__ = "0.1.0"
