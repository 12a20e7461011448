"""The committed notebooks: all seven, executed, clean, and checked by nbval where it matters.

nbval itself (``pytest --nbval-lax``) re-runs them; these tests check what nbval does not.
"""

import nbformat
import pytest

from sft_utils.notebooks import NOTEBOOK_DIR, course_notebooks, problems

EXPECTED = ["01_format", "02_tokenize", "03_mask", "04_shift", "05_project", "06_masked_loss", "07_finetune_pythia"]


def test_the_seven_notebooks_in_order():
    assert [p.stem for p in course_notebooks()] == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_clean(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    assert problems(nb) == []
    assert any("sft_utils" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", EXPECTED[:6])
def test_printed_ids_masks_and_losses_are_checked_by_nbval(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    checked = [c for c in nb.cells if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source]
    assert checked and all(c.outputs for c in checked)


def test_problems_catches_what_must_not_be_committed():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {}
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="saved to /home/me/x\n"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="", traceback=[]),
    ]
    nb.cells = [cell, nbformat.v4.new_code_cell("x = 1")]
    found = problems(nb)
    assert found == [
        "widget state in metadata",
        "cell 0: not executed",
        "cell 0: machine path '/home/me/x'",
        "cell 0: error output ValueError",
        "cell 1: not executed",
    ]
