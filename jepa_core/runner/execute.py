"""Execute a notebook headless with papermill, in the project's own kernel.

papermill starts a kernel by name; if that name resolved to another Python, the notebook would
import another ``jepa_core`` or none. So the workbook registers a kernel named
``jepa-workbook`` inside this environment (``sys.prefix``) that runs *this* interpreter, and
every headless run uses it. Notebooks themselves keep the generic ``python3`` kernelspec.

Every execution has a per-cell timeout (``cell_timeout``; ``JEPA_CELL_TIMEOUT`` seconds, else
:data:`DEFAULT_CELL_TIMEOUT`): a cell that runs longer, or a client that stops hearing from the
kernel, ends in :class:`NotebookFailed` naming the notebook and the cell, never in a hang. The
kernel runs with ``JEPA_HEADLESS=1``, so the notebooks build no widget that no front end would
render (see ``jepa_core.frontend``).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import notebooks_dir

KERNEL_NAME = "jepa-workbook"
# Seconds one cell may run. The longest default-size cell (notebook 02's collapse lab) took
# about 300 s on the reference machine and 560 s on a slower one of the same kind.
DEFAULT_CELL_TIMEOUT = 1800
CELL_TIMEOUT_ENV = "JEPA_CELL_TIMEOUT"


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the cell and the error; the partial output is kept."""

    def __init__(self, notebook: Path, output: Path, cell: str | None, error: str):
        self.notebook, self.output, self.cell, self.error = notebook, output, cell, error
        where = f"cell {cell}" if cell is not None else "an unknown cell"
        super().__init__(
            f"{notebook.name} failed in {where}: {error} (partial output kept: {output})"
        )


def ensure_kernel() -> str:
    """Register the ``jepa-workbook`` kernel for this interpreter if it is missing or stale."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if spec.argv and _same_interpreter(spec.argv[0], sys.executable):
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (JEPA Workbook)", prefix=sys.prefix)
    return KERNEL_NAME


def _same_interpreter(a: str, b: str) -> bool:
    """Same file, or links to one file from the same folder (a venv's ``python``/``python3``).

    Resolved paths alone would not do: a venv's python links to the base interpreter, which
    would pass for it while importing none of the venv's packages."""
    a, b = os.path.abspath(a), os.path.abspath(b)
    return a == b or (
        os.path.dirname(a) == os.path.dirname(b) and os.path.realpath(a) == os.path.realpath(b)
    )


def cell_timeout(seconds: float | None = None) -> float:
    """The per-cell timeout: ``seconds`` if given, else ``JEPA_CELL_TIMEOUT``, else the default."""
    source = "cell_timeout"
    if seconds is None:
        raw = os.environ.get(CELL_TIMEOUT_ENV)
        if raw is None:
            return DEFAULT_CELL_TIMEOUT
        source = CELL_TIMEOUT_ENV
        try:
            seconds = float(raw)
        except ValueError:
            raise ValueError(
                f"{CELL_TIMEOUT_ENV} must be a number of seconds > 0; got {raw!r}"
            ) from None
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
        raise ValueError(f"{source} must be a number of seconds > 0; got {seconds!r}")
    return float(seconds)


@dataclass
class Execution:
    notebook: Path
    output: Path
    seconds: float


def execute(
    notebook: str | Path,
    output: str | Path,
    parameters: dict[str, Any] | None = None,
    *,
    cwd: str | Path | None = None,
    progress: bool = False,
    timeout: float | None = None,
) -> Execution:
    """Run ``notebook`` into ``output`` with ``parameters``; raise :class:`NotebookFailed`.

    The working directory defaults to ``notebooks/`` (as JupyterLab and nbval use); the
    notebooks resolve their paths from the repository anyway. ``timeout``: seconds per cell
    (:func:`cell_timeout`).
    """
    import time

    import papermill as pm
    from nbclient.exceptions import CellTimeoutError

    seconds = cell_timeout(timeout)
    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        with headless_kernel_env():
            pm.execute_notebook(
                str(notebook),
                str(output),
                parameters=parameters or {},
                kernel_name=ensure_kernel(),
                cwd=str(cwd or notebooks_dir()),
                progress_bar=progress,
                log_output=False,
                execution_timeout=seconds,
            )
    except pm.PapermillExecutionError as e:
        raise NotebookFailed(
            notebook, output, _failing_cell(output), f"{e.ename}: {e.evalue}"
        ) from None
    except CellTimeoutError:
        raise NotebookFailed(
            notebook,
            output,
            _failing_cell(output),
            f"timed out: no reply within {seconds:g} s (per-cell timeout; raise it "
            f"with {CELL_TIMEOUT_ENV} or --cell-timeout)",
        ) from None
    return Execution(notebook, output, time.perf_counter() - start)


@contextmanager
def headless_kernel_env(headless: bool = True):
    """``JEPA_HEADLESS`` (1, or 0) in the environment a kernel started inside inherits; restored
    afterwards."""
    from ..frontend import HEADLESS_ENV

    before = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1" if headless else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = before


def _failing_cell(executed: Path) -> str | None:
    """'N (first line of its source)' for the first cell with an error output, else the last
    cell papermill started (the one a timeout stopped); N counted from 1 over the *original*
    notebook's cells (papermill's injected and error-marker cells left out)."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except (
        Exception
    ):  # the partial notebook may be unreadable; the error text still names the cause
        return None
    index, last_started = 0, None
    for cell in nb.cells:
        # papermill adds the injected-parameters cell, and on failure two markdown marker cells
        # (one at the top, one before the failing cell): none of them is the author's.
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        index += 1
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        named = f"{index} ({first.strip()[:60]})"
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return named
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            last_started = named
    return last_started


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """The names (and default expressions) of a notebook's ``parameters`` cell."""
    import papermill as pm

    return {name: info["default"] for name, info in pm.inspect_notebook(str(notebook)).items()}


def add_cell_timeout_option(parser) -> None:
    """``--cell-timeout SECONDS`` on a runner's command line (read with :func:`cell_timeout`)."""
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"seconds one cell may run before the notebook fails (default: {CELL_TIMEOUT_ENV}, "
        f"else {DEFAULT_CELL_TIMEOUT})",
    )
