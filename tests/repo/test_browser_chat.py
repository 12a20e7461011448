"""The chat widget in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Uses test_browser's JupyterLab server (its ``lab`` fixture serves a folder of notebooks) with one more notebook
in it: a pythia-14m of random weights (a fixed seed: the widget, not the model, is under test) and
``chat(model, tokenizer, questions=[...])``. Runs it from the Run menu, then checks what the browser draws: the
first question's reply as chips (one per token, the stop reason "length" since random weights never stop); then
types a message, presses send and sees the new reply's chips, each with its probability. Saves
``build/artifacts/chat.png``.

Marked ``browser``; skips (or fails under ``SFT_REQUIRE_BROWSER=1``) as test_browser does.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

_spec = importlib.util.spec_from_file_location("chat_test_browser", Path(__file__).with_name("test_browser.py"))
browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser)
lab = browser.lab  # the fixture: JupyterLab on tmp_path / "notebooks"

pytestmark = pytest.mark.browser
TOKENS = 6  # max_new_tokens: random weights run to the limit
CELLS = [
    (
        "from sft_utils import load_model, load_tokenizer\n"
        "from sft_utils.train import chat\n\n"
        "tokenizer = load_tokenizer(verbose=False)\n"
        'model = load_model("EleutherAI/pythia-14m", random_weights=True, seed=0, verbose=False)'
    ),
    f'chat(model, tokenizer, questions=["Where does Ana live?", "Where does Ben live?"], max_new_tokens={TOKENS})',
]


@pytest.fixture()
def chat_lab(lab, tmp_path):
    """The ``lab`` server, with a notebook that builds the chat widget beside the copy of notebook 03."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    notebook.metadata = nbformat.read(browser.ROOT / "notebooks" / "03_mask.ipynb", as_version=4).metadata  # its kernel
    nbformat.write(notebook, tmp_path / "notebooks" / "chat.ipynb")
    return lab


def test_chat_widget_in_jupyterlab(chat_lab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    browser.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=browser.CHROMIUM, args=browser.CHROMIUM_FLAGS, headless=True)
        page = chromium.new_page(viewport={"width": 1200, "height": 800})
        try:
            page.set_default_timeout(120_000)
            page.goto(f"{chat_lab}/lab/tree/chat.ipynb?token={browser.TOKEN}")
            # A notebook the server has not seen run may ask which kernel to start: the preferred one.
            accept = page.locator(".jp-Dialog .jp-mod-accept", has_text="Select")
            try:
                accept.click(timeout=20_000)
            except PlaywrightTimeout:
                pass
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

            # The widget answers its first question as it is built: chips inside the widget's HTML.
            widget = page.locator(".jp-OutputArea-output", has=page.locator(".widget-html .sft-chat-reply"))
            expect(widget).to_have_count(1, timeout=180_000)  # kernel start, model build, 2 busy cores
            chips = widget.locator(".widget-html .sft-chat-tokens .chip.chat-token")
            expect(chips).to_have_count(TOKENS)
            expect(widget.locator(".sft-chat-reply")).to_contain_text("Where does Ana live?")
            expect(widget.locator(".sft-chat-stop")).to_contain_text(f"max_new_tokens = {TOKENS}")
            assert widget.locator(".sft-chat-legend").count() == 1
            assert widget.locator(".sft-chat-reply").count() == 1  # the static text/html is not drawn as well
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)

            # Type a message, send it: a new reply, chips with a probability each.
            text = widget.locator(".widget-text input")
            text.fill("Hello, who are you?")
            widget.locator("button", has_text="send").click()
            expect(widget.locator(".sft-chat-reply")).to_contain_text("Hello, who are you?")
            expect(chips).to_have_count(TOKENS)
            probability = float(chips.first.get_attribute("data-p"))
            assert 0 <= probability <= 1
            assert chips.first.get_attribute("title").startswith("id ")
            assert widget.locator(".sft-chat-reply").get_attribute("data-stop") == "length"

            # A held-out question from the dropdown fills the text box.
            widget.locator("select").select_option("Where does Ben live?")
            expect(text).to_have_value("Where does Ben live?")
            widget.screenshot(path=str(browser.ARTIFACTS / "chat.png"))
        except BaseException:
            page.screenshot(path=str(browser.ARTIFACTS / "chat-failure.png"))
            raise
        finally:
            chromium.close()
