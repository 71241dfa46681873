"""The workbook as a learner uses it: JupyterLab in a real headless Chromium.

A JupyterLab server on 127.0.0.1 (a free port, a token, its own settings; ``lab_server.py``)
serves copies of the numbered notebooks; Chromium, driven by Playwright, opens each one, checks
that its kernel is "Python (JEPA Workbook)", runs it top to bottom with Run > Run All Cells at
smoke size, and checks what a learner would see (``lab_page.py``): no cell raised, every cell
ran, widgets are drawn as widgets and not as their text repr; in ``01_masking`` moving the mask
explorer's ``seed`` slider redraws its figure; in ``04_training`` the live curves change while
training runs. Last, it opens an ``index.html`` written by ``jepa_core.runner.index_page`` from
disk and checks that every image on it loads.

Needs Python's ``playwright`` (the ``dev`` extra) and Debian's ``chromium`` at
``/usr/bin/chromium`` (``JEPA_CHROMIUM`` names another binary); ``make test`` installs both.
Never ``playwright install``: it downloads browsers. Without them the tests are skipped, saying
how to install them; under CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import os
import time

import pytest
from lab_page import (
    WIDGET_AS_TEXT,
    WIDGET_FAILED,
    Cell,
    cell_with,
    image_src,
    images_seen,
    open_notebook,
    run_all,
    set_slider,
    wait_for_run,
    watch_images,
)
from lab_server import KERNEL_NAME, start_lab

from jepa_core.paths import notebooks_dir

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("JEPA_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking switches Chromium keeps dialling out, and a closed network
# refuses it (slowly).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install them with `make test`, or by hand: `apt-get update && apt-get install -y "
    "chromium` (as root; Debian/Ubuntu) and `.venv/bin/pip install -e '.[dev]'` "
    "(Playwright); never `playwright install`, which downloads its own browsers"
)

NOTEBOOKS = sorted(p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 600  # s, as nbval's; smoke cells take seconds idle, minutes on a busy 2-core machine
NOTEBOOK_TIMEOUT = 1200  # s
# Cells that must show a rendered widget: the explorers, and training's progress bar.
WIDGET_CELLS = {
    "01_masking": ["explore("],
    "04_training": ["progress=True"],
    "05_evaluation": ["explore("],
}


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_browser() -> list[str]:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Python's playwright")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"a Chromium at {CHROMIUM}")
    return missing


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, with a fresh temporary profile; closed however the tests end."""
    missing = missing_browser()
    if missing:
        message = f"the browser test needs {' and '.join(missing)}: {INSTALL_HINT}"
        if ci():
            pytest.fail(f"{message} (CI is set: a missing browser fails, it is not skipped)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    """JupyterLab serving copies of the notebooks; stopped, kernels and all, at the end."""
    server = start_lab(tmp_path_factory.mktemp("jupyterlab"), NOTEBOOKS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    try:
        yield context.new_page()
    finally:
        context.close()
        lab.shutdown_kernels()


def run_notebook(page, lab, name: str, before_run=None) -> list[Cell]:
    """Open ``name``, run it top to bottom, and check what a learner sees; return its cells."""
    open_notebook(page, lab.notebook_url(name), name)
    kernels = {
        s["kernel"]["name"] for s in lab.api("sessions") if s["path"].endswith(f"{name}.ipynb")
    }
    assert kernels == {KERNEL_NAME}, f"{name} runs in kernel {kernels}, not {KERNEL_NAME!r}"
    if before_run is not None:
        before_run()
    run_all(page)
    shown = wait_for_run(page, name, CELL_TIMEOUT, NOTEBOOK_TIMEOUT)
    raised = [f"{c.name()}: {e}" for c in shown for e in c.errors()]
    assert not raised, f"{name}: cells raised in JupyterLab:\n" + "\n".join(raised)
    unrun = [c.name() for c in shown if not (c.prompt.startswith("[") and c.prompt[1:-2].isdigit())]
    assert not unrun, f"{name}: Run All left cells unrun: {unrun}"
    as_text = [
        f"{c.name()}: {m.group(0)}..."
        for c in shown
        for m in (WIDGET_AS_TEXT.search(c.text), WIDGET_FAILED.search(c.text))
        if m
    ]
    assert not as_text, f"{name}: widgets shown as text, not drawn:\n" + "\n".join(as_text)
    for needle in WIDGET_CELLS.get(name, []):
        cell = cell_with(page, needle)
        assert cell.widgets > 0, (
            f"{name}: {cell.name()} shows no widget (outputs: {cell.text[:300]!r})"
        )
    return shown


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n not in ("01_masking", "04_training")])
def test_notebook_runs_top_to_bottom_in_jupyterlab(page, lab, name):
    run_notebook(page, lab, name)


def test_masking_notebook_runs_and_its_seed_slider_redraws_the_masks(page, lab):
    name = "01_masking"
    run_notebook(page, lab, name)
    explorer = cell_with(page, "explore(")
    before = image_src(page, explorer)
    assert before, f"{name}: {explorer.name()} drew no figure"
    readout = (
        page.locator(".jp-Notebook .jp-CodeCell")
        .nth(explorer.index - 1)
        .locator(".widget-slider", has=page.locator("label", has_text="seed"))
        .locator(".widget-readout")
    )
    seed = 7 if readout.inner_text().strip() != "7" else 8
    set_slider(page, explorer, "seed", seed)
    assert readout.inner_text().strip() == str(seed), f"{name}: the seed slider did not take {seed}"
    deadline = time.monotonic() + 60
    after = image_src(page, explorer)
    while (not after or after == before) and time.monotonic() < deadline:
        time.sleep(0.25)
        after = image_src(page, explorer)
    explorer = cell_with(page, "explore(")
    assert not explorer.errors(), f"{name}: redrawing raised: {explorer.errors()}"
    redrawn = bool(after) and after != before  # compared here: the data URLs are long
    assert redrawn, (
        f"{name}: moving the mask explorer's seed slider to {seed} did not "
        f"redraw the figure within 60 s"
    )


def test_training_notebook_runs_and_its_live_curves_update_during_training(page, lab):
    name = "04_training"
    watched = {}

    def watch_live_curves():
        watched["cell"] = cell_with(page, "LiveCurves(")
        watch_images(page, watched["cell"])

    run_notebook(page, lab, name, before_run=watch_live_curves)
    seen = images_seen(page)
    during = {s["key"] for s in seen if s["running"]}
    assert len(during) >= 2, (
        f"{name}: the live curves of {watched['cell'].name()} did not change while "
        f"training ran: {len(during)} distinct figure(s) seen during the run, "
        f"{len(seen)} in all"
    )
    assert cell_with(page, "LiveCurves(").images >= 1, f"{name}: the live curves figure is gone"


def test_results_index_page_images_load(browser, tmp_path):
    from index_page_fixtures import fabricate_results

    from jepa_core.runner.index_page import write_index

    root, figures = fabricate_results(tmp_path)
    index = write_index(root=root, smoke=True)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(index.as_uri(), wait_until="load")
        images = page.evaluate("""() => [...document.images].map(i => ({src: i.getAttribute('src'),
                                  complete: i.complete, width: i.naturalWidth}))""")
        links = page.evaluate(
            "() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"
        )
    finally:
        context.close()
    assert sorted(i["src"] for i in images) == sorted(figures), (
        "the page must show every figure once"
    )
    broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{index}: images that do not load from disk: {broken}"
    targets = [h for h in links if not h.startswith("#")]
    assert any(h.startswith("notebooks/") for h in targets), (
        f"no link to an executed notebook in {targets}"
    )
    dangling = [h for h in targets if not (root / h).exists()]
    assert not dangling, f"{index}: links to files that do not exist: {dangling}"
