"""What CI checks in committed files: clean notebooks (no widget state, machine paths or error outputs, in
every notebook under notebooks/) and relative links that resolve, #anchors included, in the README, docs/,
data/ and the notebooks' markdown."""

import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

from sft_utils.course.notebooks import problems

ROOT = Path(__file__).resolve().parents[2]
ALL_NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
MARKDOWN_FILES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "data").rglob("*.md")]
    + list((ROOT / "notebooks").rglob("*.md"))
)
# [text](target) and ![alt](target); the target ends at whitespace or ')' (titles in quotes are ignored).
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def without_code(markdown: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped (letters, digits, '-', '_' kept), spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def jupyter_anchor(heading: str) -> str:
    """JupyterLab's id for a heading in a notebook: the text with spaces -> '-' (case kept)."""
    return re.sub(r"[`*]", "", heading).strip().replace(" ", "-")


def markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf-8")


def anchors(path: Path) -> set[str]:
    headings = HEADING.findall(FENCE.sub("", markdown_of(path)))
    if path.suffix == ".ipynb":
        return {jupyter_anchor(h) for h in headings} | {github_anchor(h) for h in headings}
    found, seen = set(), {}
    for heading in headings:  # GitHub numbers repeated headings: x, x-1, x-2
        anchor = github_anchor(heading)
        found.add(anchor if anchor not in seen else f"{anchor}-{seen[anchor]}")
        seen[anchor] = seen.get(anchor, 0) + 1
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(without_code(markdown_of(path))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, …: not checked offline
            continue
        file_part, _, anchor = unquote(target).partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix in (".md", ".ipynb") and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=relative)
def test_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert problems(nb) == []
    # Outputs are checked by problems(); the notebook's own metadata must not name a machine either.
    assert not re.search(r"/(?:home|Users|root|work)/", str(nb.metadata))


@pytest.mark.parametrize("path", MARKDOWN_FILES + ALL_NOTEBOOKS, ids=relative)
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_the_link_checker_finds_broken_links_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# A title\n\n## Set-up & use\n\n## Set-up & use\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#a-title) [ok](other.md#set-up--use-1) [ok](#here) [web](https://x.org/y)\n"
        "# Here\n[gone](missing.md) [bad anchor](other.md#nope) `[code](ignored.md)`\n"
        "```\n[fenced](ignored.md)\n```\n![img](pic.png)\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nope: no heading #nope in other.md",
        "pic.png: no such file",
    ]


def test_notebook_anchors_follow_jupyter_and_github():
    assert github_anchor("The memo's table") == "the-memos-table"
    assert jupyter_anchor("The memo's table") == "The-memo's-table"
