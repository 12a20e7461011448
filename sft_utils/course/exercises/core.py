"""What every exercise's check shares: the registry, the verdict, and answers read and compared as values.

A check recomputes the true answer with ``sft_utils`` itself, so it cannot drift from the code the course
teaches. Numbers are compared with a tolerance fit for float32 (relative to the size of the values, since
float32 rounds relative to them), so any correct formulation passes: another order of operations,
``torch.einsum``, a float64 computation cast back. Ids and masks are compared exactly.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...chat_format import ASSISTANT, OPEN_ASSISTANT, PROMPTER, SYSTEM
from ...data.conversations import course_data_path, load_conversations

CORRECT, WRONG, UNANSWERED = "correct", "wrong", "unanswered"
# The exercises are about Open-Assistant's format: its end token and markers, from the one place that names them.
EOS = OPEN_ASSISTANT.end_of_message
SYSTEM_MARKER, PROMPTER_MARKER, ASSISTANT_MARKER = (OPEN_ASSISTANT.marker(r) for r in (SYSTEM, PROMPTER, ASSISTANT))

#: float32 rounds each value to about 6e-8 of its size; sums of a few hundred terms stay well within 1e-5.
FLOAT32_RTOL = 1e-5
#: bfloat16 and float16 keep 2-3 significant digits: an answer only this close was computed in low precision.
LOW_PRECISION_RTOL = 2e-2


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``status`` is ``"correct"``, ``"wrong"`` or ``"unanswered"``."""

    exercise_id: str
    status: str
    message: str

    def __str__(self) -> str:
        mark = {CORRECT: "✅ right", WRONG: "❌ not yet", UNANSWERED: "… not answered yet"}[self.status]
        return f"{self.exercise_id} {mark}: {self.message}"


@dataclass(frozen=True)
class Exercise:
    task: str  # one line, as the notebook asks it
    judge: Callable  # answer -> (status, message)


EXERCISES: dict[str, Exercise] = {}
_INPUTS: dict[str, Callable[[], dict]] = {}


def exercise(exercise_id: str, task: str):
    """Register ``judge(answer) -> (status, message)`` as the check of ``exercise_id``."""

    def register(judge):
        EXERCISES[exercise_id] = Exercise(task, judge)
        return judge

    return register


def given_inputs(exercise_id: str):
    """Register ``make() -> dict`` as the data :func:`inputs` hands the learner for ``exercise_id``."""

    def register(make):
        _INPUTS[exercise_id] = make
        return make

    return register


def verdict(exercise_id: str, answer) -> Verdict:
    """Judge ``answer``; never raises on a bad answer (an answer of the wrong kind is a wrong answer).

    Raises KeyError for an unknown exercise id (a typo in the notebook, not a learner's mistake).
    """
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(EXERCISES)}")
    if answer is None or answer is Ellipsis:
        return Verdict(exercise_id, UNANSWERED, "replace `None` with your answer and run the cell again.")
    try:
        status, message = EXERCISES[exercise_id].judge(answer)
    except Unreadable as why:
        status, message = WRONG, str(why)
    return Verdict(exercise_id, status, message)


def check(exercise_id: str, answer) -> None:
    """Print whether ``answer`` to ``exercise_id`` is right, and why (or a hint); never the solution."""
    print(verdict(exercise_id, answer))


@functools.cache
def inputs(exercise_id: str) -> dict:
    """Data given to the learner for an exercise (fixed: recomputed identically on every call).

    ``"06.1"``: a padded batch ``logits`` float32 ``[2, 7, 11]``, ``targets`` int64 ``[2, 7]``,
    ``label_masks`` bool ``[2, 7]`` (the assistant's targets) and ``attention_mask`` int64 ``[2, 7]``
    (0 on padding), as ``AssistantOnlyCollator`` would give it with a vocabulary of 11 tokens.
    Raises KeyError for an exercise without inputs.
    """
    if exercise_id not in _INPUTS:
        raise KeyError(f"exercise {exercise_id!r} has no inputs")
    return _INPUTS[exercise_id]()


# --- reading answers -------------------------------------------------------------------------------------


class Unreadable(Exception):
    """An answer of the wrong kind; its message says what was expected."""


def call(function, signature: str, *args):
    """The learner's ``function(*args)``; an error it raises is a wrong answer that names the error."""
    try:
        return function(*args)
    except Exception as error:  # the learner's code: any error is theirs to fix, never a crash of the check
        raise Unreadable(f"your function, called as {signature}, raised {type(error).__name__}: {error}") from error


def describe(answer) -> str:
    text = repr(answer)
    return f"{type(answer).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


def ints(answer, what: str) -> list[int]:
    """A list/tuple/tensor/numpy array of ints or bools as a list of int; ``what`` names it in the error."""
    given = answer
    if hasattr(answer, "tolist") and not isinstance(answer, (list, tuple)):  # tensors, numpy arrays
        answer = answer.tolist()
    if isinstance(answer, (list, tuple)):
        answer = [x.item() if hasattr(x, "item") else x for x in answer]  # numpy / tensor scalars inside a list
    if not isinstance(answer, (list, tuple)) or not all(isinstance(x, (int, bool)) for x in answer):
        raise Unreadable(f"expected {what} as a flat list of ints, got {describe(given)}")
    return [int(x) for x in answer]


def number(answer, what: str) -> float:
    """One number (int, float, or a one-value tensor or numpy array); ``what`` names it in the error."""
    one_value = answer.numel() == 1 if torch.is_tensor(answer) else getattr(answer, "size", None) == 1
    if one_value and hasattr(answer, "item"):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or math.isnan(answer):
        raise Unreadable(f"expected {what} as one number, got {describe(answer)}")
    return float(answer)


def plain(value):
    """A learner's result as plain Python for comparison: tensors and arrays to lists, bools to ints."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return int(value) if isinstance(value, bool) else value


def _magnitude(value) -> float:
    if isinstance(value, dict):
        return max((_magnitude(v) for v in value.values()), default=0.0)
    if isinstance(value, list):
        return max((_magnitude(v) for v in value), default=0.0)
    return abs(value) if isinstance(value, (int, float)) else 0.0


def _close(a, b, tol: float) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_close(a[k], b[k], tol) for k in a)
        )
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_close(x, y, tol) for x, y in zip(a, b))
        )
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol
    return a == b


def same(answer, truth, rtol: float = FLOAT32_RTOL) -> bool:
    """Equal as values: ints exactly; floats within ``rtol`` of the largest value of ``truth`` (float32 rounds
    relative to the values' size, so a tiny entry of a product is as uncertain as a large one)."""
    answer, truth = plain(answer), plain(truth)
    return _close(answer, truth, rtol * _magnitude(truth) + 1e-12)


def match(answer, truth, right: str, mistakes: list[tuple], general: str, equal=None) -> tuple[str, str]:
    """Compare with the truth, then with each typical mistake ``(wrong_answer, hint)``, in order."""
    equal = equal or same
    if equal(answer, truth):
        return CORRECT, right
    for wrong, hint in mistakes:
        if equal(answer, wrong):
            return WRONG, hint
    return WRONG, general


def match_list(answer: list, truth: list, right: str, mistakes: list[tuple], general: str, what: str):
    """:func:`match` for per-token lists: an unrecognised answer of the wrong length is told so."""
    status, message = match(answer, truth, right, mistakes, general)
    if status == WRONG and message == general and len(answer) != len(truth):
        return WRONG, f"expected {len(truth)} {what}, got {len(answer)} values."
    return status, message


LOW_PRECISION_HINT = (
    "your values agree with the right ones to two or three digits only: something computed in bfloat16 or "
    "float16, or rounded. Keep the inputs' float32."
)


def check_function(answer, name: str, signature: str, cases: list, reference, mistakes: list, general: str, right):
    """Run the learner's function on hidden ``cases`` (tuples of arguments, copied for each call) and compare
    with ``reference``; when it differs, the first typical mistake ``(wrong_function, hint)`` that it matches on
    every case gives the hint."""
    if not callable(answer):
        raise Unreadable(f"expected your function (answer = {name}), got {describe(answer)}")
    outputs = [call(answer, signature, *copy.deepcopy(case)) for case in cases]
    expected = [reference(*copy.deepcopy(case)) for case in cases]
    if all(same(o, e) for o, e in zip(outputs, expected, strict=True)):
        return CORRECT, right
    for wrong, hint in mistakes:
        if all(same(o, wrong(*copy.deepcopy(c))) for o, c in zip(outputs, cases, strict=True)):
            return WRONG, hint
    if all(same(o, e, LOW_PRECISION_RTOL) for o, e in zip(outputs, expected, strict=True)):
        return WRONG, LOW_PRECISION_HINT
    return WRONG, general


# --- data the checks share -------------------------------------------------------------------------------


@functools.cache
def tokenizer():
    from ...steps.tokenize import load_tokenizer

    return load_tokenizer(verbose=False)


@functools.cache
def conversation(conversation_id: str) -> tuple:
    """The messages of one of the course's conversations (data/conversations.jsonl), as a tuple."""
    by_id = {c["id"]: c["messages"] for c in load_conversations(course_data_path())}
    return tuple(by_id[conversation_id])


def pythia_14m():
    from ...models.pythia import pythia_config

    return pythia_config("pythia-14m")


# Hidden conversations for the build-it checks: a typed marker, a system message, several turns.
HIDDEN = (
    (
        {"role": "prompter", "text": "What does <|assistant|> mean in a prompt?"},
        {"role": "assistant", "text": "A marker."},
    ),
    (
        {"role": "system", "text": "Be brief."},
        {"role": "prompter", "text": "Name a colour."},
        {"role": "assistant", "text": "Blue."},
        {"role": "prompter", "text": "Another?"},
        {"role": "assistant", "text": "Red <|endoftext|> green."},
    ),
)
