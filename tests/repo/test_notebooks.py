"""The committed notebooks: all nine, executed, clean, and checked by nbval where it matters.

nbval itself (``pytest --nbval-lax``) re-runs them; these tests check what nbval does not. nbval's controls
are cell tags (``nbval-check-output`` …), never ``# NBVAL_*`` comments in the learners' code.
"""

import nbformat
import pytest

from sft_utils.course.notebooks import NBVAL_TAGS, NOTEBOOK_DIR, course_notebooks, nbval_tags, problems

EXPECTED = [
    "01_format",
    "02_tokenize",
    "03_mask",
    "04_shift",
    "05_project",
    "06_masked_loss",
    "06b_chat_templates",
    "07_train_it_yourself",
    "08_finetune_pythia",
]


def test_the_nine_notebooks_in_order():
    assert [p.stem for p in course_notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_clean(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    assert problems(nb) == []
    assert any("sft_utils" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", EXPECTED[:6])
def test_printed_ids_masks_and_losses_are_checked_by_nbval(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    checked = [c for c in nb.cells if c.cell_type == "code" and "nbval-check-output" in nbval_tags(c)]
    assert checked and all(c.outputs for c in checked)


@pytest.mark.parametrize("name", EXPECTED)
def test_nbval_controls_are_tags_not_comments(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    for i, cell in enumerate(nb.cells):
        assert "NBVAL" not in cell.source.upper(), f"{name} cell {i}: an nbval comment; use a cell tag"
        assert set(nbval_tags(cell)) <= set(NBVAL_TAGS), f"{name} cell {i}: {nbval_tags(cell)}"
        assert cell.cell_type == "code" or not nbval_tags(cell), f"{name} cell {i}: nbval tags a code cell only"


def test_nbval_reads_the_tags_the_notebooks_use():
    """The installed nbval maps each tag to the behaviour the course relies on (under --nbval-lax, only
    nbval-check-output cells are compared)."""
    from nbval.plugin import find_metadata_tags

    assert dict(find_metadata_tags({"tags": ["nbval-check-output"]})) == {"check": True}
    assert dict(find_metadata_tags({"tags": ["nbval-ignore-output"]})) == {"check": False}
    assert dict(find_metadata_tags({"tags": ["nbval-skip"]})) == {"skip": True}


def test_problems_catches_what_must_not_be_committed():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {}
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="saved to /home/me/x\n"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="", traceback=[]),
    ]
    nb.cells = [cell, nbformat.v4.new_code_cell("x = 1")]
    commented = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(2)", metadata={"tags": ["nbval-check-ouput"]})
    commented.execution_count = 1
    nb.cells.append(commented)
    found = problems(nb)
    assert found == [
        "widget state in metadata",
        "cell 0: not executed",
        "cell 0: machine path '/home/me/x'",
        "cell 0: error output ValueError",
        "cell 1: not executed",
        "cell 2: nbval comment '# NBVAL_CHECK_OUTPUT' (use a cell tag)",
        "cell 2: unknown nbval tag 'nbval-check-ouput'",
    ]


def test_each_run_time_is_written_once_and_the_readme_agrees():
    """The notebooks' headers are generated from tools/learning_cells_run_times.json; the README's course map
    must give the same CPU time for each notebook."""
    import json
    import re

    root = NOTEBOOK_DIR.parent
    times = json.loads((root / "tools" / "learning_cells_run_times.json").read_text())
    readme = {
        name: int(seconds)
        for name, seconds in re.findall(
            r"\]\(notebooks/(\d\d[a-z]?_\w+)\.ipynb\) \|[^\n]*\| (\d+) s[^|]*\| \[open\]",
            (root / "README.md").read_text(),
        )
    }
    assert readme == {name: entry["cpu_seconds"] for name, entry in times.items()}
    for name, entry in times.items():
        header = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4).cells[0].source
        assert f"{entry['cpu_seconds']} s on 2 cores" in header
        assert header.count(" s on 2 cores") == 1


@pytest.mark.parametrize("name", EXPECTED)
def test_cell_ids_name_what_a_cell_is_not_when_it_was_built(name):
    """Cell ids travel with the notebook (JupyterLab, Colab, nbviewer): no work-log markers such as 'i6-' in them."""
    import re

    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    marked = [c.id for c in nb.cells if re.match(r"(?:i|issue)-?\d+\b|.*issue", c.id, re.IGNORECASE)]
    assert not marked
