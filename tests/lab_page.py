"""What a learner does in JupyterLab, and what they see, through Playwright.

Every wait is bounded and fails with :class:`LabTimeout`, naming the notebook and, while cells
run, the cell that has been running too long: a hang is a failure, never a stuck test.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

KERNEL_READY = "Python (JEPA Workbook) | Idle"
START_TIMEOUT = 60  # s for Run All to mark its first cell

# What ipywidgets' text/plain fallback looks like when no widget manager renders the widget
# ("interactive(children=(FloatSlider(value=0.15, ...", "HBox(children=(HTML(value=''), ...").
WIDGET_AS_TEXT = re.compile(
    r"\b(interactive|IntSlider|FloatSlider|FloatLogSlider|Dropdown|HBox|VBox|FloatProgress|"
    r"IntProgress|HTML|Output)\((children|value|description|layout|options)="
)
WIDGET_FAILED = re.compile(
    r"Error displaying widget|Loading widget\.\.\.|Failed to load model class"
)

# One code cell as the page shows it: its prompt ("[3]:", "[*]:", "[ ]:"), the first line of its
# source, the text of its outputs, how many rendered widgets and images it holds.
CELLS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell => ({
    prompt: (cell.querySelector('.jp-InputPrompt')?.innerText || '').trim(),
    source: cell.querySelector('.cm-content')?.innerText || '',
    outputs: [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => ({
        mime: o.getAttribute('data-mime-type') || o.querySelector('[data-mime-type]')
              ?.getAttribute('data-mime-type') || '',
        text: o.innerText || ''})),
    widgets: cell.querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length,
    images: cell.querySelectorAll('.jp-OutputArea-output img').length,
}))"""

# Records every distinct image a cell shows (a hash of its src) and whether the cell was still
# running then; MutationObserver sees each display update, however quick.
WATCH_IMAGES_JS = """(index) => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
    const hash = s => { let h = 2166136261; for (let i = 0; i < s.length; i++) {
        h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
        return (h >>> 0).toString(16) + ':' + s.length; };
    window.__imagesSeen = [];
    const record = () => {
        const img = cell.querySelector('.jp-OutputArea-output img');
        if (!img || !img.src) return;
        const key = hash(img.src), seen = window.__imagesSeen;
        if (seen.length && seen[seen.length - 1].key === key) return;
        const prompt = (cell.querySelector('.jp-InputPrompt')?.innerText || '');
        seen.push({key, running: prompt.includes('*')});
    };
    new MutationObserver(record).observe(cell, {subtree: true, childList: true, attributes: true,
                                                attributeFilter: ['src']});
}"""


class LabTimeout(AssertionError):
    """A bounded wait ran out: names the notebook and what was awaited."""


@dataclass
class Cell:
    index: int  # among the code cells, from 1
    prompt: str
    source: str
    outputs: list[dict]
    widgets: int
    images: int

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.source.splitlines() if line.strip()), "")[:70]

    @property
    def text(self) -> str:
        return "\n".join(o["text"] for o in self.outputs)

    def name(self) -> str:
        return f"code cell {self.index} ({self.first_line})"

    def errors(self) -> list[str]:
        """The last line of each traceback this cell shows (``RuntimeError: ...``)."""
        found = []
        for out in self.outputs:
            if (
                "Traceback (most recent call last)" in out["text"]
                or out["mime"] == "application/vnd.jupyter.error"
            ):
                lines = [line for line in out["text"].splitlines() if line.strip()]
                found.append(lines[-1] if lines else "an error")
        return found


def cells(page) -> list[Cell]:
    return [Cell(i, **c) for i, c in enumerate(page.evaluate(CELLS_JS), 1)]


def cell_with(page, needle: str) -> Cell:
    """The first code cell whose source contains ``needle``."""
    for cell in cells(page):
        if needle in cell.source:
            return cell
    raise AssertionError(f"no code cell contains {needle!r}")


def open_notebook(page, url: str, name: str, timeout: float = 120) -> None:
    """Open the notebook and wait until its kernel, the workbook's, is idle."""
    page.goto(url)
    try:
        page.get_by_text(KERNEL_READY).first.wait_for(timeout=timeout * 1000)
    except Exception as error:  # playwright's TimeoutError
        status = page.locator(".jp-StatusBar-Widget").all_inner_texts()
        raise LabTimeout(
            f"{name}: the kernel {KERNEL_READY!r} was not ready within {timeout:.0f} s "
            f"(status bar: {status}): {error}"
        ) from None


def run_all(page) -> None:
    """Run > Run All Cells, from the menu bar, as a learner does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def wait_for_run(
    page, name: str, cell_timeout: float, total_timeout: float, poll: float = 0.5
) -> list[Cell]:
    """Wait until no cell runs or waits to run; return the cells as the page shows them.

    Fails when one cell runs longer than ``cell_timeout`` or the whole run longer than
    ``total_timeout`` seconds, naming the notebook and the cell. Cells left unrun after an error
    (Run All stops there) are the caller's to judge."""
    start = time.monotonic()
    while all(c.prompt in ("[ ]:", "") for c in cells(page)):  # Run All not taken up yet
        if time.monotonic() - start > START_TIMEOUT:
            raise LabTimeout(f"{name}: Run All Cells started no cell within {START_TIMEOUT} s")
        time.sleep(poll)
    running, since = None, time.monotonic()
    while True:
        shown = cells(page)
        busy = next((c for c in shown if c.prompt == "[*]:"), None)
        if busy is None:
            return shown
        now = time.monotonic()
        if busy.index != running:
            running, since = busy.index, now
        if now - since > cell_timeout:
            raise LabTimeout(
                f"{name}: {busy.name()} still running after {cell_timeout:.0f} s "
                f"(per-cell guard of the browser test)"
            )
        if now - start > total_timeout:
            raise LabTimeout(
                f"{name}: still running after {total_timeout:.0f} s, now in {busy.name()}"
            )
        time.sleep(poll)


def watch_images(page, cell: Cell) -> None:
    page.evaluate(WATCH_IMAGES_JS, cell.index - 1)


def images_seen(page) -> list[dict]:
    return page.evaluate("() => window.__imagesSeen || []")


def image_src(page, cell: Cell) -> str:
    """The src of the first image in the cell's outputs ('' when none)."""
    return page.evaluate(
        """(index) => {
        const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
        return cell.querySelector('.jp-OutputArea-output img')?.src || '';
    }""",
        cell.index - 1,
    )


def set_slider(page, cell: Cell, label: str, value: int | float) -> None:
    """Type ``value`` into the readout of the slider labelled ``label`` in ``cell``, as a
    learner who clicks the number beside a slider does."""
    cell_node = page.locator(".jp-Notebook .jp-CodeCell").nth(cell.index - 1)
    slider = cell_node.locator(".widget-slider").filter(
        has=page.locator("label.widget-label", has_text=re.compile(rf"^{re.escape(label)}$"))
    )
    if slider.count() != 1:
        raise AssertionError(
            f"{cell.name()}: expected one slider labelled {label!r}, found {slider.count()}"
        )
    readout = slider.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")
