"""What learners read in the notebooks speaks to learners: no notes about the repository's tests, CI,
maintainers, shared folders or issue numbers, in markdown, in code (comments included) or in outputs; and
"the memo" is always one click from docs/memo.md."""

import re

import nbformat
import pytest

from sft_utils.course.notebooks import NOTEBOOK_DIR, course_notebooks

NAMES = [p.stem for p in course_notebooks()]

# Each pattern names what it catches. Precise on purpose: "held-out test set", "contest" or "CIFAR" pass.
NOT_FOR_LEARNERS = {
    "a test folder": re.compile(r"\btests?/"),
    "a test file": re.compile(r"\btest_\w+\.py\b"),
    "the test suite": re.compile(
        r"\b(?:the|our|its|their|own|unit|regression|and|with|has|have)\s+(?:a\s+)?tests?\b"
        r"(?!\s+(?:sets?|splits?|data|conversations?)\b)",
        re.IGNORECASE,
    ),
    "CI": re.compile(r"\bCI\b|(?i:\bcontinuous integration\b)"),
    "maintainers": re.compile(r"\bmaintainers?\b", re.IGNORECASE),
    "the shared folder": re.compile(r"\.\./shared\b|\bshared/data\b"),
    "an issue number": re.compile(r"\b(?:issue|PR|pull request)\s*#?\d+|\(#\d+\)", re.IGNORECASE),
    "nbval": re.compile(r"nbval", re.IGNORECASE),
    "pytest": re.compile(r"\bpytest\b", re.IGNORECASE),
}

MEMO_LINK = re.compile(r"\]\(\.\./docs/memo\.md(?:#[\w-]+)?\)")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
# "the memo", "Memo step"; not the conversation ids memo-hello, memo-riddle, nor a link's target.
MEMO_MENTION = re.compile(r"(?<![\w-])memo(?![\w-])", re.IGNORECASE)


def texts(cell):
    """(where, text) pairs: the cell's source, then each text output (stream, text/* data, error)."""
    yield "source", cell.source
    for n, output in enumerate(cell.get("outputs", [])):
        where = f"output {n}"
        if "text" in output:
            yield where, output["text"]
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/"):
                yield f"{where} {mime}", value if isinstance(value, str) else "".join(value)
        if output.get("output_type") == "error":
            yield where, f"{output.get('ename')}: {output.get('evalue')}"


def findings(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        for where, text in texts(cell):
            for what, pattern in NOT_FOR_LEARNERS.items():
                for match in pattern.finditer(text):
                    context = text[max(match.start() - 30, 0) : match.end() + 30].replace("\n", " ")
                    yield f"{name}.ipynb cell {i} ({cell.cell_type}, id {cell.get('id')}), {where}: {what} {context!r}"


@pytest.mark.parametrize("name", NAMES)
def test_no_notes_for_maintainers_in_what_learners_read(name):
    found = list(findings(name))
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("name", NAMES)
def test_every_mention_of_the_memo_links_to_it(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    unlinked = [
        f"{name}.ipynb cell {i} (id {cell.get('id')}): {MEMO_MENTION.search(LINK_TARGET.sub('](…)', cell.source))[0]!r}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        and MEMO_MENTION.search(LINK_TARGET.sub("](…)", cell.source))
        and not MEMO_LINK.search(cell.source)
    ]
    assert unlinked == [], "markdown cells that mention the memo without a link to ../docs/memo.md:\n" + "\n".join(
        unlinked
    )


def test_notebook_01_introduces_the_memo():
    nb = nbformat.read(NOTEBOOK_DIR / "01_format.ipynb", as_version=4)
    title = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# 01"))
    assert "[the memo](../docs/memo.md)" in title.source


BAD = [
    'REPO_URL = "x"  # = sft_utils.REPO_URL (tests/test_colab.py checks)',
    "float32, on the CPU; that is what CI runs.",
    "when the maintainers' sample in `../shared/data/` is present",
    "## Performance: select the trained rows, then project (issue 7)",
    "# NBVAL_CHECK_OUTPUT",
    "run pytest --nbval-lax",
    "Two more faults have their own code and tests:",
    "(The tests run the same check on 100 conversations.)",
    "each has a test in the suite",
]
GOOD = [
    "the loss on the held-out test set",
    "a test split of oasst1",
    "contest, latest, attests, CIFAR, ciphers",
    "Check the mask by decoding the trained tokens.",
    "memo-hello and memo-riddle are conversation ids",
    "pythia-14m in smoke mode; the shared weights of the head",
]


@pytest.mark.parametrize("text", BAD)
def test_the_patterns_catch_notes_for_maintainers(text):
    assert any(p.search(text) for p in NOT_FOR_LEARNERS.values()), text


@pytest.mark.parametrize("text", GOOD)
def test_the_patterns_leave_learner_words_alone(text):
    assert not [what for what, p in NOT_FOR_LEARNERS.items() if p.search(text)], text


def test_memo_mentions_and_links():
    assert MEMO_MENTION.search("as in the memo")
    assert MEMO_MENTION.search("**Memo step 1 of 6.**")
    assert not MEMO_MENTION.search("conversations['memo-hello'] and `memo-riddle`")
    assert not MEMO_MENTION.search(LINK_TARGET.sub("](…)", "[notes](../docs/memo.md)"))
    assert MEMO_LINK.search("[the memo](../docs/memo.md#the-six-steps)")


# The pages beside the notebooks that learners and users read. The README's install section may name `make test`,
# pytest and nbval (commands a user runs); no page names test files, CI, maintainers, the shared folder or issues.
LEARNER_FILES = ["README.md", "data/README.md", "notebooks/solutions/README.md", "docs/performance.md"]
NOT_ON_LEARNER_PAGES = ("a test folder", "a test file", "CI", "maintainers", "the shared folder", "an issue number")


@pytest.mark.parametrize("path", LEARNER_FILES)
def test_learner_pages_speak_to_learners(path):
    text = (NOTEBOOK_DIR.parent / path).read_text()
    found = [
        f"{what}: {text[max(m.start() - 30, 0) : m.end() + 30]!r}"
        for what in NOT_ON_LEARNER_PAGES
        for m in NOT_FOR_LEARNERS[what].finditer(text)
    ]
    assert found == [], f"{path} speaks to maintainers (move it to CONTRIBUTING.md):\n" + "\n".join(found)


def test_learner_pages_check_finds_maintainer_notes():
    note = "Each case has a test (`tests/invariants/`); the maintainers keep ../shared/data/, see issue 123 and CI."
    hits = {what for what in NOT_ON_LEARNER_PAGES if NOT_FOR_LEARNERS[what].search(note)}
    assert hits == {"a test folder", "maintainers", "the shared folder", "an issue number", "CI"}
