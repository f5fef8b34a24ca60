"""JupyterLab server and headless Chromium for the browser tests (make test-browser).

The server runs from this environment on a free loopback port with a random token, with its own
throw-away Jupyter config, data, runtime, settings and workspace folders (so no personal config
can switch the token off or change what the test sees), autosave off (the notebooks under test are
never written), and is stopped at the end of the session, also when a test fails.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_TIMEOUT = 90  # seconds; a cold start on 2 cores takes about 10

# Settings a learner can change freely, fixed here so every run sees the same page.
LAB_SETTINGS = {
    # Never write the notebooks under test: Run All makes them dirty.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # Keep every cell in the DOM, so checks and screenshots see the whole notebook.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "scrollPastEnd": False},
    # No news or update pop-ups over the notebook (and no attempt to reach the network).
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}


@dataclass
class LabServer:
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Stop every kernel (one per opened notebook), so the next notebook has the CPU to itself."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), then SIGKILL its process group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:  # the server's own session: leftover kernels die with it, nothing else does
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter")
    settings = home / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyterlab.log"
    token, port = secrets.token_hex(24), _free_port()
    env = dict(os.environ, JUPYTER_TOKEN=token,  # in the environment, not on the command line (ps)
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), PYDEVD_DISABLE_FILE_VALIDATION="1")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={ROOT}",
               "--ServerApp.terminals_enabled=False", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:  # JupyterLab refuses root without it; never added otherwise
        command.append("--allow-root")
    with log.open("w") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {process.returncode} while starting; "
                            f"its log:\n{log.read_text()[-3000:]}")
            try:
                server.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {server.url} within {SERVER_START_TIMEOUT} s; "
                                f"see {log}")
                time.sleep(0.5)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's package ('sudo apt-get install chromium') "
                    "or point CHROMIUM=/path/to/chromium at one. Playwright's own browser download is not used.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: run 'make test-browser' (it installs the 'browser' extra).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Lab:
    """One JupyterLab page, reused from notebook to notebook (loading JupyterLab takes ~7 s on 2 cores).

    ``page()`` loads JupyterLab on first use, in a reset workspace, with ``window.jupyterapp``
    exposed; ``discard()`` drops the page (after a failure), so the next notebook gets a fresh one.
    """

    VIEWPORT = {"width": 1280, "height": 900}

    def __init__(self, browser, server: LabServer):
        self.browser, self.server = browser, server
        self._context = self._page = None

    def page(self):
        if self._page is None:
            self._context = self.browser.new_context(viewport=self.VIEWPORT, device_scale_factor=1)
            page = self._context.new_page()
            page.goto(f"{self.server.url}/lab/workspaces/browser-test?reset&token={self.server.token}")
            page.wait_for_function("() => window.jupyterapp", timeout=90_000)
            page.evaluate("async () => { await window.jupyterapp.restored; "
                          "await window.jupyterapp.commands.execute('application:close-all'); }")  # the Launcher
            self._page = page
        return self._page

    def discard(self) -> None:
        if self._context is not None:
            self._context.close()
        self._context = self._page = None


@pytest.fixture(scope="session")
def lab(browser, lab_server):
    session = Lab(browser, lab_server)
    try:
        yield session
    finally:
        session.discard()
