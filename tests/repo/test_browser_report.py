"""The mask report (``python -m sft_utils.inspect``) in a real browser: headless Chromium, driven by Playwright.

Writes the report of the course's data (Open-Assistant's format, max_length 64, compared with TRL), opens it
from disk and checks what Chromium draws: every token a chip, the computed colours of trained, untrained and
padding chips equal to the palette's, cut chips struck through, the two switches, no request beyond the file.
Saves ``build/artifacts/mask_report.png`` and checks that the trained and untrained colours are in it.

Marked ``browser``. Skips, saying why, when Chromium or Playwright are missing, unless ``SFT_REQUIRE_BROWSER=1``,
in which case it fails (as the notebook browser test does, whose Chromium settings it shares).
"""

import importlib.util
import os
from pathlib import Path

import pytest

import sft_utils
from sft_utils.inspect import inspect_data
from sft_utils.viz import palette
from sft_utils.viz.report import report_html

_spec = importlib.util.spec_from_file_location("browser_helpers", Path(__file__).with_name("test_browser.py"))
_browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_browser)
ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS = _browser.ARTIFACTS, _browser.CHROMIUM, _browser.CHROMIUM_FLAGS

pytestmark = pytest.mark.browser


def _missing() -> str:
    """Why the test cannot run here ('' when it can)."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set SFT_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return ""


def rgb(hex_colour: str) -> str:
    """``"#4ade80"`` as getComputedStyle writes it: ``"rgb(74, 222, 128)"``."""
    return "rgb({}, {}, {})".format(*(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)))


@pytest.fixture()
def report_page(tmp_path):
    why = _missing()
    if why:
        if os.environ.get("SFT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SFT_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    report = inspect_data(sft_utils.course_data_path(), chat_format=sft_utils.OPEN_ASSISTANT, max_length=64)
    path = tmp_path / "report.html"
    path.write_text(report_html(report), encoding="utf-8")
    return report, path


def test_the_mask_report_in_chromium(report_page):
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    report, path = report_page
    masked = [c for c in report.conversations if c.refused is None]
    trained = sum(sum(c.label_mask) for c in masked)
    untrained = sum(len(c.label_mask) for c in masked) - trained
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        try:
            page.goto(path.as_uri())
            tokens = page.locator(".tokens .chip")
            expect(tokens).to_have_count(trained + untrained + sum(bool(c.padding) for c in masked))
            assert page.locator(".tokens .chip.mask-1").count() == trained
            assert page.locator(".tokens .chip.mask-0").count() == untrained

            def computed(selector: str, style: str = "backgroundColor") -> str:
                return page.locator(selector).first.evaluate(f"e => getComputedStyle(e).{style}")

            assert computed(".tokens .chip.mask-1") == rgb(palette.TRAINED)
            assert computed(".tokens .chip.mask-0") == rgb(palette.UNTRAINED)
            assert computed(".tokens .chip.pad") == rgb(palette.PADDING)
            assert computed(".tokens .chip.pad", "borderTopStyle") == "dashed"
            assert computed(".tokens .chip.removed", "opacity") == "0.35"
            assert "line-through" in computed(".tokens .chip.removed", "textDecorationLine")
            cut = sum(len(c.input_ids) - c.kept for c in masked)
            assert page.locator(".tokens .chip.removed").count() == cut > 0

            # Only the conversations with a finding: the cut replies, and format-question's typed markers.
            sections = page.locator("section.conversation")
            with_findings = sum(bool(c.findings) for c in report.conversations)
            assert 0 < with_findings < len(report.conversations)
            page.locator("#findings-toggle").check()
            expect(page.locator("section.conversation:visible")).to_have_count(with_findings)
            assert sections.count() == len(report.conversations)

            # TRL: format-question types markers, which TRL's tokenizer makes special: TRL's own row is shown.
            assert report.kind_counts()["trl-differs"] >= 1
            rows = page.locator(".trl-row")
            expect(rows.first).to_be_visible()
            assert computed(".trl-row .chip.mask-1") == rgb(palette.TRAINED)
            page.screenshot(path=str(ARTIFACTS / "mask_report.png"))
            page.locator("#trl-toggle").uncheck()
            expect(rows.first).to_be_hidden()
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "mask_report_failure.png"))
            raise
        finally:
            browser.close()
    assert requests == [path.as_uri()]  # the page fetches nothing
    colours = {colour for _, colour in Image.open(ARTIFACTS / "mask_report.png").convert("RGB").getcolors(1 << 20)}
    assert {tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h in (palette.TRAINED, palette.UNTRAINED)} <= colours
