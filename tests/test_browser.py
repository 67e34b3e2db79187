"""The explorers in a real browser: JupyterLab on localhost, driven in headless Chromium by Playwright.

One JupyterLab server and one browser serve every course notebook with explorers (:data:`EXPLORERS`). For
each notebook the test opens it, runs all cells, checks that no output shows an error and that the page
holds exactly the explorers listed for it, then for each explorer moves one control (keyboard on a slider
handle, or a new option in a drop-down) and checks that the explorer's figure changed (pixels of the
``<img>`` before and after); finally it shuts the notebook's kernel down. Screenshots go to
``tests/artifacts/browser/`` (git-ignored) with each notebook's timing; on a failure, a full-page
screenshot, the browser console and the server log are saved there too. With
``CMTUTOR_README_SCREENSHOTS=1`` the after-screenshots are also copied to ``notebooks/figures/`` as
``explorer-NN-<name>.png`` for the README.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, installed by ``.ci/run``), never a downloaded
one: Playwright only drives it. In CI (``CI=true``) a missing browser fails the test; elsewhere it skips
with the reason. The test runs after the notebooks (see the root ``conftest.py``), so their models are cached.
The notebooks are copied to a temporary folder first, so running them never rewrites the repository.
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
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: One row per explorer in the course notebooks: (notebook, explorer, control to move). The explorer is found
#: by its CSS class ``cmtutor-explorer-<name>`` (the n-th one in the notebook when a name appears more than once,
#: in the order of the rows), the control by ``cmtutor-control-<name>``. A notebook's rows must cover all of
#: its explorers (checked against the stored notebooks below, and against the page in the browser).
EXPLORERS: list[tuple[str, str, str]] = [
    ("notebooks/01_diffusion_2d.ipynb", "ode_paths", "steps"),
    ("notebooks/02_consistency_models.ipynb", "consistency_sampling", "steps"),
    ("notebooks/03_consistency_training.ipynb", "discretisation", "N"),
    ("notebooks/03_consistency_training.ipynb", "run_grid", "EMA decay"),
    ("notebooks/03_consistency_training.ipynb", "consistency_sampling", "steps"),
    ("notebooks/04_couplings.ipynb", "couplings", "coupling"),
    ("notebooks/05_truncated.ipynb", "run_grid", "model"),
    ("notebooks/05_truncated.ipynb", "truncation", "w_b"),
    ("notebooks/06_direct.ipynb", "ode_error", "model"),
]

ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
README_FIGURES = ROOT / "notebooks" / "figures"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Seconds: the server's start, one notebook's run (models may still have to train on a cold cache),
#: and a figure's re-draw after a moved control (2 busy CPU cores are slow).
SERVER_START, RUN_ALL, REDRAW = 120, 1800, 90
NOTEBOOKS = list(dict.fromkeys(row[0] for row in EXPLORERS))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI must run the browser test; .ci/run installs Debian's chromium)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """Debian's chromium (or the binary named by ``CMTUTOR_CHROMIUM``), if it is there."""
    env = os.environ.get("CMTUTOR_CHROMIUM")
    for cand in ([env] if env else [shutil.which("chromium"), "/usr/bin/chromium"]):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the JupyterLab server ---------------------------------------------------------------------------

class Lab:
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of the notebooks."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.log_path = tmp / "server.log"
        for nb in NOTEBOOKS:
            (self.root / nb).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / nb, self.root / nb)
        settings = tmp / "settings"
        for plugin, values in {
            "@jupyterlab/docmanager-extension/plugin": {"autosave": False},   # never write the notebooks
            "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        }.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        config = tmp / "config"
        config.mkdir()
        offline = {"LabApp": {"news_url": None, "extension_manager": "readonly",
                              "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}
        for name in ("jupyter_server_config.json", "jupyter_lab_config.json"):
            (config / name).write_text(json.dumps(offline))
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # a student's kernel draws inline figures
        env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
                   JUPYTER_DATA_DIR=str(tmp / "data"), IPYTHONDIR=str(tmp / "ipython"),
                   JUPYTER_PLATFORM_DIRS="1")
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={self.port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.terminals_enabled=False",
               "--ServerApp.allow_remote_access=False", "--LabApp.expose_app_in_browser=True",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}"]
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root)
        self._wait_ready()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not answer within {SERVER_START} s:\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if chromium_path() is None:
        _unavailable("Debian's chromium is not installed (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    server = Lab(tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        server.stop()
        if ARTIFACTS.exists():
            shutil.copy2(server.log_path, ARTIFACTS / "server.log")


@pytest.fixture(scope="module")
def browser(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium_path(), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1500, "height": 1000}, device_scale_factor=1)
        try:
            yield context
        finally:
            context.close()


# -- driving JupyterLab --------------------------------------------------------------------------------

KERNEL_IDLE = """() => {
  const app = window.jupyterapp; const w = app && app.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && w.content && w.content.widgets.length);
}"""
RUN_ALL_JS = """() => {
  window.__cmtutorRunAll = null;
  window.jupyterapp.commands.execute('notebook:run-all-cells')
    .then(ok => { window.__cmtutorRunAll = ok === false ? 'stopped' : 'done'; },
          err => { window.__cmtutorRunAll = 'failed: ' + err; });
}"""
RUN_FINISHED = """() => {
  const w = window.jupyterapp.shell.currentWidget; const k = w.sessionContext.session.kernel;
  return window.__cmtutorRunAll !== null && k.status === 'idle';
}"""
CELL_REPORT = """() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter(c => c.model.type === 'code')
  .map((c, i) => ({i, count: c.model.executionCount,
                   source: c.model.sharedModel.getSource().slice(0, 80)}))"""
ERROR_OUTPUTS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('.jp-OutputArea-output')) {
    const text = el.innerText || '';
    const stderr = el.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr';
    if ((stderr && /Traceback|Error/.test(text)) || /Error displaying widget/.test(text)) bad.push(text.slice(0, 800));
  }
  return bad;
}"""


def _save_failure(page: Any, name: str, console: list[str], lab: Lab) -> None:
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}-FAILED-page.png"), full_page=True)
    except Exception as exc:  # noqa: BLE001 (diagnostics must not mask the failure)
        console.append(f"(page screenshot failed: {exc})")
    (ARTIFACTS / f"{name}-FAILED-console.log").write_text("\n".join(console))
    (ARTIFACTS / f"{name}-FAILED-server.log").write_text(lab.log_text())


def _image_differs(a: Path, b: Path) -> bool:
    from PIL import Image, ImageChops

    with Image.open(a) as ia, Image.open(b) as ib:
        if ia.size != ib.size:
            return True
        return ImageChops.difference(ia.convert("RGB"), ib.convert("RGB")).getbbox() is not None


def _move(control: Any) -> str:
    """Move a control the way a person would; returns what was done."""
    select = control.locator("select")
    if select.count():
        current = select.input_value()
        values = [o.get_attribute("value") for o in select.locator("option").all()]
        new = next(v for v in values if v != current)
        select.select_option(value=new)
        return f"selected {new!r}"
    handle = control.locator(".noUi-handle")
    if handle.count():
        readout = control.locator(".widget-readout")
        before = readout.inner_text()
        handle.first.focus()
        handle.first.press("ArrowRight")
        if readout.inner_text() == before:  # already at the right end
            handle.first.press("ArrowLeft")
        return f"slider {before!r} -> {readout.inner_text()!r}"
    buttons = control.locator("button:not(.mod-active)")
    if buttons.count():
        buttons.first.click()
        return "clicked a toggle button"
    raise AssertionError("no slider, drop-down or toggle button in this control")


SHUTDOWN_KERNEL = """() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"""


def screenshot_name(notebook: str, name: str, nth: int) -> str:
    """``explorer-NN-<name>[n].png``: NN is the notebook's number, n counts repeats of a name in it."""
    return f"explorer-{Path(notebook).name[:2]}-{name}{nth or ''}.png"


def _stored_explorers(notebook: str) -> int:
    """How many explorers the stored (executed) notebook shows: their fixed text form, one per explorer."""
    nb = json.loads((ROOT / notebook).read_text())
    return sum("interactive explorer; its controls work" in "".join(out.get("data", {}).get("text/plain", ""))
               for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell.get("outputs", []))


def test_every_explorer_has_a_row() -> None:
    """Every explorer in a course notebook has a row in :data:`EXPLORERS` (runs without a browser)."""
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = str(path.relative_to(ROOT))
        rows = sum(row[0] == nb for row in EXPLORERS)
        assert rows == _stored_explorers(nb), f"{nb}: {_stored_explorers(nb)} explorers, {rows} rows in EXPLORERS"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_explorers_in_jupyterlab(notebook: str, lab: Lab, browser: Any) -> None:
    stem = Path(notebook).stem
    page = browser.new_page()
    page.set_default_timeout(60_000)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
    t0 = time.monotonic()
    try:
        page.goto(lab.url(f"lab/tree/{notebook}") + "&reset", wait_until="domcontentloaded")
        page.wait_for_function(KERNEL_IDLE, timeout=SERVER_START * 1000, polling=500)
        page.evaluate(RUN_ALL_JS)
        page.wait_for_function(RUN_FINISHED, timeout=RUN_ALL * 1000, polling=1000)
        status = page.evaluate("() => window.__cmtutorRunAll")
        cells = page.evaluate(CELL_REPORT)
        errors = page.evaluate(ERROR_OUTPUTS)
        assert not errors, f"{notebook}: error outputs:\n" + "\n---\n".join(errors)
        unrun = [c for c in cells if c["count"] is None]
        assert status == "done" and not unrun, f"{notebook}: run-all {status}; cells not run: {unrun}"
        ran = time.monotonic() - t0
        rows = [row for row in EXPLORERS if row[0] == notebook]
        shown = page.locator(".cmtutor-explorer").count()
        assert shown == len(rows), f"{notebook}: {shown} explorers on the page, {len(rows)} rows in EXPLORERS"
        seen: dict[str, int] = {}
        for _, name, control_name in rows:
            nth = seen.get(name, 0)
            seen[name] = nth + 1
            explorer = page.locator(f".cmtutor-explorer-{name}").nth(nth)
            explorer.scroll_into_view_if_needed()
            img = explorer.locator("img.cmtutor-explorer-figure")
            img.wait_for(state="visible")
            page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle())
            src = img.get_attribute("src")
            before, after = (ARTIFACTS / f"{stem}-{name}{nth or ''}-{s}.png" for s in ("before", "after"))
            explorer.screenshot(path=str(before))
            cls = "cmtutor-control-" + "".join(ch if ch.isalnum() else "-" for ch in control_name)
            control = explorer.locator(f".{cls}")
            assert control.count() == 1, f"{name}: {control.count()} elements with class {cls} (expected 1)"
            done = _move(control)
            page.wait_for_function("([el, old]) => el.src !== old && el.complete && el.naturalWidth > 0",
                                   arg=[img.element_handle(), src], timeout=REDRAW * 1000, polling=200)
            page.wait_for_timeout(300)  # let the new image paint
            explorer.screenshot(path=str(after))
            assert _image_differs(before, after), f"{name}: the figure did not change after {done}"
            img.screenshot(path=str(ARTIFACTS / f"{stem}-{name}{nth or ''}-figure.png"))
            if os.environ.get("CMTUTOR_README_SCREENSHOTS"):
                README_FIGURES.mkdir(parents=True, exist_ok=True)
                shutil.copy2(after, README_FIGURES / screenshot_name(notebook, name, nth))
        errors = page.evaluate(ERROR_OUTPUTS)
        assert not errors, f"{notebook}: error outputs after moving controls:\n" + "\n---\n".join(errors)
        (ARTIFACTS / f"{stem}-timing.txt").write_text(
            f"run all cells: {ran:.1f} s; with the moved controls: {time.monotonic() - t0:.1f} s\n")
    except BaseException:
        _save_failure(page, stem, console, lab)
        raise
    finally:
        try:
            page.evaluate(SHUTDOWN_KERNEL)  # free the kernel's memory (and CPU) before the next notebook
        except Exception as exc:  # noqa: BLE001 (a failed shutdown must not mask the test's own result)
            console.append(f"(kernel shutdown failed: {exc})")
        page.close()
