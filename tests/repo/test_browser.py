"""The token-mask viewer in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Starts JupyterLab on 127.0.0.1 (a free port, throwaway config/data/runtime dirs, a known token) on a
*copy* of notebook 03, runs all its cells from the Run menu, and checks what the browser draws: the
viewer's chips (count and mask classes), the counts line changing when the ``max_length`` slider moves,
and that the static ``text/html`` beside the widget view is not drawn twice. Saves
``build/artifacts/viewer.png`` (the viewer) and ``build/artifacts/lab.png`` (the page).

Marked ``browser``. Skips, saying why, when Chromium, Playwright or JupyterLab are missing, unless
``SFT_REQUIRE_BROWSER=1`` (set by ``.ci/run``), in which case it fails.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sft_utils import tokenize_conversation
from sft_utils.viz import parse_typed_conversation

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "artifacts"
CHROMIUM = os.environ.get("SFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
TOKEN = "sft-course-browser-test"
RIDDLE_TOKENS, RIDDLE_TRAINED = 103, 52  # memo-riddle, the viewer's first conversation in notebook 03

pytestmark = pytest.mark.browser


def _missing() -> str:
    """Why the test cannot run here ('' when it can)."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set SFT_CHROMIUM)"
    for module, package in (("playwright.sync_api", "playwright"), ("jupyterlab", "jupyterlab")):
        try:
            __import__(module)
        except ImportError:
            return f"{package} is not installed (pip install -e '.[lab,dev]')"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab(tmp_path):
    """A JupyterLab server on a copy of notebook 03; yields its base URL. Stopped (process group) on exit."""
    why = _missing()
    if why:
        if os.environ.get("SFT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SFT_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(ROOT / "notebooks" / "03_mask.ipynb", notebooks / "03_mask.ipynb")
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[name] = str(tmp_path / name.lower())
    # The kernel must import this checkout's sft_utils (it reads the course data from beside it).
    # No "get Jupyter news?" prompt over the screenshot.
    labconfig = tmp_path / "jupyter_config_dir" / "labconfig"
    labconfig.mkdir(parents=True)
    announcements = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (labconfig / "page_config.json").write_text(json.dumps(announcements))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={notebooks}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = (tmp_path / "lab.log").open("wb")
    server = subprocess.Popen(
        command, env=env, cwd=notebooks, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        # The kernel is a child of the server: stop the whole process group.
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)
        except ProcessLookupError:
            pass
        log.close()


def _counts(viewer) -> str:
    return viewer.locator(".sft-chips-counts").inner_text()


def test_viewer_in_jupyterlab(lab, tokenizer):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.set_default_timeout(120_000)
            page.goto(f"{lab}/lab/tree/03_mask.ipynb?token={TOKEN}")
            # Before running: the saved (static) chips of the committed notebook are drawn, sanitised.
            page.locator(".jp-RenderedHTMLCommon .sft-chips .chip").first.wait_for()
            static_chips = page.locator(".jp-RenderedHTMLCommon .sft-chips-tokens .chip")
            # memo-hello twice, then the viewer's saved view; outputs render one after another, so wait for all
            # (a bare count() right after the first chip once saw 56: the viewer's output not drawn yet).
            expect(static_chips).to_have_count(28 + 28 + RIDDLE_TOKENS)
            saved_background = static_chips.nth(28 + 9).evaluate("e => getComputedStyle(e).backgroundColor")
            assert saved_background == "rgb(74, 222, 128)"  # memo-hello by label_mask: "I" keeps its green
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()

            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            # The live widget: the chips inside the HTML widget of the viewer's output.
            viewer = page.locator(".jp-OutputArea-output", has=page.locator(".widget-html .sft-chips"))
            expect(viewer).to_have_count(1, timeout=180_000)  # kernel start, tokenizer load, 2 busy cores
            chips = viewer.locator(".widget-html .sft-chips-tokens .chip")
            expect(chips).to_have_count(RIDDLE_TOKENS)
            assert viewer.locator(".chip.mask-1").count() == RIDDLE_TRAINED
            assert viewer.locator(".chip.mask-0").count() == RIDDLE_TOKENS - RIDDLE_TRAINED
            assert chips.first.get_attribute("title").startswith("position 0 · id 50279 · <|prompter|>")
            # The text/html beside the view is not drawn as well: one set of chips in the viewer's output.
            assert viewer.locator(".sft-chips").count() == 1
            assert _counts(viewer) == f"{RIDDLE_TOKENS} tokens · {RIDDLE_TRAINED} trained (50%) · 0 padding"
            # Wait for the last cells (heatmap) so that the kernel is idle before the slider moves.
            page.locator(".jp-Cell:last-child").first.wait_for()
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)

            # Move max_length with the keyboard on the slider's handle: 10 steps left.
            handle = viewer.locator(".widget-slider .noUi-handle")
            handle.focus()
            for _ in range(10):
                handle.press("ArrowLeft")
            kept = RIDDLE_TOKENS - 10
            expect(viewer.locator(".sft-chips-counts")).to_have_text(
                f"{kept} tokens · 42 trained (45%) · 0 padding · 10 removed by max_length={kept}"
            )
            assert viewer.locator(".chip.removed").count() == 10
            viewer.screenshot(path=str(ARTIFACTS / "viewer.png"))
            page.screenshot(path=str(ARTIFACTS / "lab.png"))

            # Type a value into the slider's readout: before the first reply nothing is trained, and it says so.
            readout = viewer.locator(".widget-readout")
            readout.click()
            page.keyboard.press("ControlOrMeta+a")
            page.keyboard.type("21")
            page.keyboard.press("Enter")
            expect(viewer.locator(".sft-chips-warning")).to_contain_text("max_length=21 leaves no trained token")
            assert _counts(viewer).startswith("21 tokens · 0 trained (0%)")

            # The view buttons: by role, assistant chips turn the role colour.
            viewer.locator("button.widget-toggle-button", has_text="role").click()
            expect(viewer.locator(".sft-chips[data-view='role']")).to_have_count(1)
            assistant = viewer.locator(".chip.role-assistant")
            assert assistant.count() == RIDDLE_TRAINED
            assert assistant.first.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(187, 247, 208)"

            # A typed conversation (one message a line) replaces the picked one, with a fresh max_length.
            viewer.locator("textarea").fill("Hi there\nHello! How can I help?")
            typed = tokenize_conversation(parse_typed_conversation("Hi there\nHello! How can I help?"), tokenizer)
            n, trained = len(typed["input_ids"]), sum(typed["label_mask"])
            expect(chips).to_have_count(n)
            assert _counts(viewer) == f"{n} tokens · {trained} trained ({trained / n:.0%}) · 0 padding"
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))  # what the browser showed when it failed
            raise
        finally:
            browser.close()
