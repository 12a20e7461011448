"""Checks for the notebooks' exercises: right or wrong, and why, without printing the solution.

Introduced at the end of notebooks 01-08 and 06b. An exercise id is ``"<notebook>.<number>"`` (``"03.1"``:
notebook 03, exercise 1; ``"06b.1"``: notebook 06b, exercise 1). In a notebook::

    answer = None  # your code
    sft_utils.exercises.check("03.1", answer)

One module per notebook (``n03_mask`` holds 03's checks); ``core`` holds what they share. Each check
recomputes the true answer with ``sft_utils`` itself (the label mask of the given conversation, the masked
loss of the given batch, …), so the checks cannot drift from the code the course teaches; a "change it and
predict" exercise runs the change inside its check. Numbers are compared with a tolerance fit for float32, so
any correct formulation passes. A wrong answer that matches a typical mistake (a mask shifted by one, a mean
over padded positions, training on the prompter, …) gets a hint aimed at that mistake; any other wrong answer
gets a hint that points at the idea or the section to reread. ``None`` (the placeholder) is "not answered
yet", never an error. The solutions are in ``notebooks/solutions/``.
"""

from ...chat_format import ZEPHYR
from . import (
    n01_format,
    n02_tokenize,
    n03_mask,
    n04_shift,
    n05_project,
    n06_loss,
    n06b_templates,
    n07_train,
    n08_finetune,
)
from .core import CORRECT, EXERCISES, UNANSWERED, WRONG, Exercise, Verdict, check, inputs, verdict
from .n01_format import CHAT_01_1, CHAT_01_2, SYSTEM_01_1
from .n02_tokenize import TEXT_02_1
from .n03_mask import SYSTEM_03_3
from .n06_loss import P_REPLY_06_3
from .n07_train import TASK_07_3, W_07_3
from .n08_finetune import COUNTS_08_1, R_08_2, SIZE_08_2

MODULES = (
    n01_format,
    n02_tokenize,
    n03_mask,
    n04_shift,
    n05_project,
    n06_loss,
    n06b_templates,
    n07_train,
    n08_finetune,
)

__all__ = [
    "CHAT_01_1",
    "CHAT_01_2",
    "CORRECT",
    "COUNTS_08_1",
    "EXERCISES",
    "MODULES",
    "P_REPLY_06_3",
    "R_08_2",
    "SIZE_08_2",
    "SYSTEM_01_1",
    "SYSTEM_03_3",
    "TASK_07_3",
    "TEXT_02_1",
    "UNANSWERED",
    "WRONG",
    "W_07_3",
    "ZEPHYR",
    "Exercise",
    "Verdict",
    "check",
    "inputs",
    "verdict",
]
