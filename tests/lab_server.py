"""A throwaway JupyterLab server for the browser test.

It listens on 127.0.0.1 at a free port behind a random token, keeps its config, runtime,
settings, workspaces and IPython folders in a temporary directory (the user's own are never
read or written), and serves *copies* of the numbered notebooks: whatever JupyterLab saves lands
in the copies, never in ``notebooks/``. ``JEPA_WORKBOOK_ROOT`` points the kernels at that
temporary tree too, so the notebooks write their results under ``<tmp>/results/smoke/``.

The kernels inherit the server's environment: ``JEPA_SMOKE=1`` (smoke sizes) and no
``JEPA_HEADLESS`` (the repository's ``conftest.py`` sets it for pytest; a front end is there
now, so the explorers must build their widgets).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jepa_core.frontend import HEADLESS_ENV
from jepa_core.paths import notebooks_dir
from jepa_core.runner.execute import ensure_kernel

KERNEL_NAME = "jepa-workbook"
KERNEL_DISPLAY_NAME = "Python (JEPA Workbook)"

# JupyterLab settings for a test: every cell stays in the page (no virtual scrolling), no news
# pop-up, no autosave racing the test's own save.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebooks(names: list[str], dest: Path) -> list[Path]:
    """Copy ``notebooks/<name>.ipynb`` into ``dest``, set to the workbook's kernel (as a learner
    picks "Python (JEPA Workbook)" in JupyterLab); return the copies."""
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in names:
        book = json.loads((notebooks_dir() / f"{name}.ipynb").read_text())
        book.setdefault("metadata", {})["kernelspec"] = {
            "name": KERNEL_NAME,
            "display_name": KERNEL_DISPLAY_NAME,
            "language": "python",
        }
        path = dest / f"{name}.ipynb"
        path.write_text(json.dumps(book, indent=1) + "\n")
        copies.append(path)
    return copies


def lab_environment(home: Path) -> dict[str, str]:
    """The server's (and so the kernels') environment: smoke size, a front end (no
    ``JEPA_HEADLESS``), results and Jupyter state under ``home``."""
    env = {k: v for k, v in os.environ.items() if k != HEADLESS_ENV}
    env.update(
        {
            "JEPA_SMOKE": "1",
            "JEPA_WORKBOOK_ROOT": str(home / "workbook"),
            "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
            "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
            "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
            "IPYTHONDIR": str(home / "ipython"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class LabServer:
    """A running JupyterLab; :meth:`stop` ends it (and its kernels)."""

    base_url: str
    token: str
    notebooks: Path
    results: Path
    process: subprocess.Popen
    log_path: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.base_url}lab/tree/{name}.ipynb?token={self.token}&reset"

    def api(self, path: str) -> object:
        """GET ``/api/<path>`` as JSON."""
        request = urllib.request.Request(
            f"{self.base_url}api/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def shutdown_kernels(self) -> None:
        """Shut down every kernel the server runs (one notebook's kernel must not slow the next)."""
        for kernel in self.api("kernels"):
            request = urllib.request.Request(
                f"{self.base_url}api/kernels/{kernel['id']}",
                method="DELETE",
                headers={"Authorization": f"token {self.token}"},
            )
            urllib.request.urlopen(request, timeout=30).close()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def write_lab_settings(settings_dir: Path) -> None:
    for relative, values in LAB_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def start_lab(home: Path, names: list[str], timeout: float = 120) -> LabServer:
    """Start JupyterLab serving copies of ``names`` under ``home``; wait until it answers.

    The workbook's kernel is registered first (in this environment, as the headless runs do):
    on a fresh clone nothing else may have registered it yet."""
    ensure_kernel()
    workbook = home / "workbook"
    notebooks = workbook / "notebooks"
    copy_notebooks(names, notebooks)
    settings = home / "lab-settings"
    write_lab_settings(settings)
    env = lab_environment(home)
    for key in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    log_path = home / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            cwd=notebooks,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LabServer(
        f"http://127.0.0.1:{port}/",
        token,
        notebooks,
        workbook / "results" / "smoke",
        process,
        log_path,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {process.returncode} before answering; "
                f"its log:\n{server.log_tail()}"
            )
        try:
            server.api("status")
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(
        f"JupyterLab did not answer on {server.base_url} within {timeout:.0f} s; "
        f"its log:\n{server.log_tail()}"
    )


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
