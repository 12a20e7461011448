"""Checks for the notebooks' exercises: right or wrong, and why, without printing the solution.

Introduced at the end of notebooks 01-08 and 06b. An exercise id is ``"<notebook>.<number>"`` (``"03.1"``:
notebook 03, exercise 1; ``"06b.1"``: notebook 06b, exercise 1). In a notebook::

    answer = None  # your code
    sft_utils.exercises.check("03.1", answer)

Each check recomputes the true answer with ``sft_utils`` itself (the label mask of the given conversation,
the masked loss of the given batch, …), so the checks cannot drift from the code the course teaches. A wrong
answer that matches a typical mistake (a mask shifted by one, a mean over padded positions, training on the
prompter, …) gets a hint aimed at that mistake; any other wrong answer gets a general hint. ``None`` (the
placeholder) is "not answered yet", never an error. The solutions are in ``notebooks/solutions/``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..chat_format import ASSISTANT, OPEN_ASSISTANT, PROMPTER, SYSTEM, ZEPHYR
from ..data.conversations import course_data_path, load_conversations
from ..steps.format import format_conversation
from ..steps.loss import MaskedCrossEntropyLoss, per_token_nll
from ..steps.mask import generation_prompt_ids, tokenize_conversation
from ..steps.shift import IGNORE_INDEX, labels_from_label_mask, shift_for_next_token

CORRECT, WRONG, UNANSWERED = "correct", "wrong", "unanswered"
# The exercises are about Open-Assistant's format: its end token and markers, from the one place that names them.
_EOS = OPEN_ASSISTANT.end_of_message
_SYSTEM_MARKER, _PROMPTER_MARKER, _ASSISTANT_MARKER = (OPEN_ASSISTANT.marker(r) for r in (SYSTEM, PROMPTER, ASSISTANT))


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


def exercise(exercise_id: str, task: str):
    """Register ``judge(answer) -> (status, message)`` as the check of ``exercise_id``."""

    def register(judge):
        EXERCISES[exercise_id] = Exercise(task, judge)
        return judge

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
    except _Unreadable as why:
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
    """
    if exercise_id != "06.1":
        raise KeyError(f"exercise {exercise_id!r} has no inputs")
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 7, 11, generator=generator) * 2
    targets = torch.randint(2, 11, (2, 7), generator=generator)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    label_masks = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    targets[attention_mask == 0] = 1  # padded targets hold the pad id
    return {"logits": logits, "targets": targets, "label_masks": label_masks, "attention_mask": attention_mask}


# --- helpers ---------------------------------------------------------------------------------------------


class _Unreadable(Exception):
    """An answer of the wrong kind; its message says what was expected."""


def _call(function, signature: str, *args):
    """The learner's ``function(*args)``; an error it raises is a wrong answer that names the error."""
    try:
        return function(*args)
    except Exception as error:  # the learner's code: any error is theirs to fix, never a crash of the check
        raise _Unreadable(f"your function, called as {signature}, raised {type(error).__name__}: {error}") from error


@functools.cache
def _tokenizer():
    from ..steps.tokenize import load_tokenizer

    return load_tokenizer(verbose=False)


@functools.cache
def _conversation(conversation_id: str) -> tuple:
    by_id = {c["id"]: c["messages"] for c in load_conversations(course_data_path())}
    return tuple(by_id[conversation_id])


def _ints(answer, what: str) -> list[int]:
    """A list/tuple/tensor/numpy array of ints or bools as a list of int."""
    given = answer
    if hasattr(answer, "tolist") and not isinstance(answer, (list, tuple)):  # tensors, numpy arrays
        answer = answer.tolist()
    if isinstance(answer, (list, tuple)):
        answer = [x.item() if hasattr(x, "item") else x for x in answer]  # numpy / tensor scalars inside a list
    if not isinstance(answer, (list, tuple)) or not all(isinstance(x, (int, bool)) for x in answer):
        raise _Unreadable(f"expected {what} (a flat list of ints), got {_describe(given)}")
    return [int(x) for x in answer]


def _number(answer, what: str) -> float:
    # A one-value tensor or numpy array/scalar (np.sum gives np.int64, a float32 loss np.float32) is a number.
    one_value = answer.numel() == 1 if torch.is_tensor(answer) else getattr(answer, "size", None) == 1
    if one_value and hasattr(answer, "item"):
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise _Unreadable(f"expected {what} (a number), got {_describe(answer)}")
    return float(answer)


def _describe(answer) -> str:
    text = repr(answer)
    return f"{type(answer).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


def _match(answer, truth, right: str, mistakes: list[tuple], general: str, same=None) -> tuple[str, str]:
    """Compare with the truth, then with each typical mistake ``(wrong_answer, hint)``, in order."""
    same = same or (lambda a, b: a == b)
    if same(answer, truth):
        return CORRECT, right
    for wrong, hint in mistakes:
        if same(answer, wrong):
            return WRONG, hint
    return WRONG, general


def _length_hint(answer: list, expected: int, what: str) -> tuple[str, str] | None:
    if len(answer) != expected:
        return WRONG, f"{what} has one value per token: expected {expected} values, got {len(answer)}."
    return None


def _match_list(answer: list, truth: list, right: str, mistakes: list[tuple], general: str, what: str):
    """:func:`_match` for per-token lists: an unrecognised answer of the wrong length is told so."""
    status, message = _match(answer, truth, right, mistakes, general)
    if status == WRONG and message == general and len(answer) != len(truth):
        return WRONG, f"expected {len(truth)} {what}, got {len(answer)} values."
    return status, message


def _plain(value):
    """A learner's result as plain Python for comparison: tensors and arrays to lists, bools to ints."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return int(value) if isinstance(value, bool) else value


def _same(a, b) -> bool:
    """Equal as plain values; floats to 1e-5 relative."""
    a, b = _plain(a), _plain(b)
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-5)
    return a == b


def _check_function(answer, name: str, signature: str, cases: list, reference, mistakes: list, general: str, right):
    """Run the learner's function on hidden ``cases`` (tuples of arguments, copied for each call) and compare
    with ``reference``; when it differs, the first typical mistake ``(wrong_function, hint)`` that it matches on
    every case gives the hint."""
    import copy

    if not callable(answer):
        raise _Unreadable(f"expected your function (answer = {name}), got {_describe(answer)}")
    outputs = [_call(answer, signature, *copy.deepcopy(case)) for case in cases]
    if all(_same(o, reference(*copy.deepcopy(c))) for o, c in zip(outputs, cases, strict=True)):
        return CORRECT, right
    for wrong, hint in mistakes:
        if all(_same(o, wrong(*copy.deepcopy(c))) for o, c in zip(outputs, cases, strict=True)):
            return WRONG, hint
    return WRONG, general


# --- notebook 01: format ---------------------------------------------------------------------------------

CHAT_01_1 = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello, how can I help?"}]
SYSTEM_01_1 = "Answer in one sentence."
CHAT_01_2 = [
    {"role": "prompter", "text": "What is 2 + 2?"},
    {"role": "assistant", "text": "4."},
    {"role": "prompter", "text": "And 3 + 3?"},
]


def _by_hand(parts, eos_after=lambda i: True) -> str:
    return "".join(marker + text + (_EOS if eos_after(i) else "") for i, (marker, text) in enumerate(parts))


@exercise("01.1", "the string of CHAT_01_1 with the system prompt SYSTEM_01_1, written without format_conversation")
def _check_01_1(answer):
    if not isinstance(answer, str):
        raise _Unreadable(f"expected a string, got {_describe(answer)}")
    truth = format_conversation(CHAT_01_1, system=SYSTEM_01_1)
    system, user, bot = (
        (_SYSTEM_MARKER, SYSTEM_01_1),
        (_PROMPTER_MARKER, "Hi!"),
        (_ASSISTANT_MARKER, "Hello, how can I help?"),
    )
    mistakes = [
        (_by_hand([user, bot]), "the system prompt is missing: it is one more message, always first."),
        (_by_hand([user, bot, system]), "the system message comes first, before the prompter."),
        (
            _by_hand([system, ("<|user|>", "Hi!"), bot]),
            "there is no <|user|> marker: the role `user` maps to prompter.",
        ),
        (
            _by_hand([system, user, bot], eos_after=lambda i: i != 1),
            "every message closes with <|endoftext|>, the prompter's too.",
        ),
        (
            _by_hand([system, user, bot], eos_after=lambda i: i != 2),
            "the reply needs its closing <|endoftext|>: it is how the model learns to stop.",
        ),
    ]
    general = "compare marker by marker: <|system|>, <|prompter|>, <|assistant|>, each text followed by <|endoftext|>."
    return _match(answer, truth, "one marker + text + <|endoftext|> per message, system first.", mistakes, general)


@exercise("01.2", "the string to give the model so that it answers the last question of CHAT_01_2")
def _check_01_2(answer):
    if not isinstance(answer, str):
        raise _Unreadable(f"expected a string, got {_describe(answer)}")
    conversation = format_conversation(CHAT_01_2)
    truth = format_conversation(CHAT_01_2, add_generation_prompt=True)
    mistakes = [
        (conversation, "the model must be told whose turn it is: end with the assistant's marker."),
        (truth + _EOS, "do not close the reply: the model writes the reply and its <|endoftext|> itself."),
        (conversation + _PROMPTER_MARKER, "the next turn is the assistant's, not the prompter's."),
        (
            format_conversation(CHAT_01_2[-1:], add_generation_prompt=True),
            "keep the whole conversation: `3 + 3` only makes sense after the first exchange.",
        ),
    ]
    general = "format the whole conversation as in notebook 01, then open the assistant's turn."
    return _match(answer, truth, "the conversation, then <|assistant|>: the reply is the model's.", mistakes, general)


# --- notebook 02: tokenize -------------------------------------------------------------------------------

TEXT_02_1 = "Type <|assistant|> to start."


@exercise("02.1", "the input_ids of the message text TEXT_02_1, tokenized as tokenize_conversation does it")
def _check_02_1(answer):
    answer = _ints(answer, "input_ids")
    tokenizer = _tokenizer()
    truth = tokenizer(TEXT_02_1, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    as_marker = tokenizer(TEXT_02_1, add_special_tokens=False)["input_ids"]
    prompter, eos = tokenizer.convert_tokens_to_ids(_PROMPTER_MARKER), tokenizer.eos_token_id
    mistakes = [
        (as_marker, "the typed <|assistant|> became the role token 50280: a user could then fake a reply."),
        ([prompter, *truth, eos], "only the text's ids: tokenize_conversation adds the marker and <|endoftext|>."),
    ]
    general = "tokenize the text alone, keeping any typed marker as plain text (see notebook 02's last section)."
    return _match(answer, truth, "the typed marker stays plain text, so it cannot change a role.", mistakes, general)


@exercise("02.2", "(eos id, pad id): the id every reply must end with, and the id used for padding")
def _check_02_2(answer):
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise _Unreadable(f"expected a pair (eos_id, pad_id), got {_describe(answer)}")
    answer = tuple(_ints(list(answer), "two ids"))
    tokenizer = _tokenizer()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    mistakes = [
        ((pad, eos), "swapped: <|endoftext|> ends messages, <|padding|> fills batches."),
        ((eos, eos), "padding with <|endoftext|> would make real end tokens look like padding (notebook 04)."),
        ((tokenizer.convert_tokens_to_ids(_ASSISTANT_MARKER), pad), "50280 is <|assistant|>, the reply's first token."),
    ]
    general = "look at tokenizer.eos_token_id and tokenizer.pad_token_id (notebook 02, 'The role tokens')."
    return _match(answer, (eos, pad), "<|endoftext|> = 0 ends every message; <|padding|> = 1 pads.", mistakes, general)


# Hidden conversations for the build-it checks: a typed marker, a system message, several turns.
_HIDDEN = (
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


@exercise("02.3", "write the ids of a conversation, message by message, so that a marker typed in a text stays text")
def _check_02_3(answer):
    tokenizer = _tokenizer()
    marker = {
        role: tokenizer.convert_tokens_to_ids(OPEN_ASSISTANT.marker(role)) for role in (SYSTEM, PROMPTER, ASSISTANT)
    }
    eos = tokenizer.convert_tokens_to_ids(_EOS)

    def encode(messages, text_ids, with_marker=True, with_eos=True):
        return [i for m in messages for i in [marker[m["role"]]] * with_marker + text_ids(m["text"]) + [eos] * with_eos]

    split = lambda text: tokenizer(text, split_special_tokens=True)["input_ids"]
    mistakes = [
        (
            lambda messages, tok: tokenizer(format_conversation(list(messages)))["input_ids"],
            (
                "a marker typed in a message became a role token: encode each text on its own, with "
                "split_special_tokens=True, and insert the real markers' ids yourself."
            ),
        ),
        (
            lambda messages, tok: encode(messages, lambda t: tokenizer(t)["input_ids"]),
            "the typed marker became a role token: encode each text with split_special_tokens=True.",
        ),
        (
            lambda messages, tok: encode(messages, split, with_eos=False),
            "every message ends with <|endoftext|> (id 0).",
        ),
        (
            lambda messages, tok: encode(messages, split, with_marker=False),
            "each message opens with its role's marker.",
        ),
    ]
    return _check_function(
        answer,
        "encode_messages",
        "answer(messages, tokenizer)",
        [(list(c), tokenizer) for c in _HIDDEN],
        lambda messages, tok: tokenize_conversation(messages, tokenizer)["input_ids"],
        mistakes,
        "for each message: its role marker's id, its text's ids, then <|endoftext|>.",
        "the same ids as tokenize_conversation, typed markers included (they stay text).",
    )


# --- notebook 03: mask -----------------------------------------------------------------------------------


def _assistant_edges(example) -> tuple[list[int], list[int]]:
    """Positions of each assistant message's marker and of its closing <|endoftext|>."""
    mask, index = example["label_mask"], example["message_indices"]
    starts = [t for t in range(len(mask)) if mask[t] and (t == 0 or index[t - 1] != index[t])]
    ends = [t for t in range(len(mask)) if mask[t] and (t == len(mask) - 1 or index[t + 1] != index[t])]
    return starts, ends


@exercise("03.1", "the label_mask of the memo-hello conversation, one 0/1 per token")
def _check_03_1(answer):
    answer = _ints(answer, "a label mask")
    example = tokenize_conversation(list(_conversation("memo-hello")), _tokenizer())
    truth = [int(x) for x in example["label_mask"]]
    if wrong_length := _length_hint(answer, len(truth), "the label mask"):
        if answer == truth[1:] or answer == truth[:-1]:
            return WRONG, "that is the shifted mask of step 4; here the mask is aligned with input_ids (T values)."
        return wrong_length
    starts, ends = _assistant_edges(example)
    no_marker = [0 if t in starts else m for t, m in enumerate(truth)]
    no_eos = [0 if t in ends else m for t, m in enumerate(truth)]
    mistakes = [
        ([1 - m for m in truth], "that trains the prompter: the model would learn to write the questions."),
        ([1] * len(truth), "every token trained is plain causal-LM SFT; assistant-only loss trains the replies only."),
        ([0, *truth[:-1]], "shifted by one: the shift belongs to step 4 (notebook 04); here mask[t] is token t's."),
        ([*truth[1:], 0], "shifted by one: the shift belongs to step 4 (notebook 04); here mask[t] is token t's."),
        ([0 if t in ends else m for t, m in enumerate(no_marker)], _EDGE_HINT),
        (no_marker, _EDGE_HINT),
        (no_eos, _EDGE_HINT),
    ]
    general = "a token is trained when its message is the assistant's; compare with message_indices."
    right = "every token of the assistant's messages, marker and closing <|endoftext|> included."
    return _match(answer, truth, right, mistakes, general)


_EDGE_HINT = (
    "the reply's <|assistant|> marker and its closing <|endoftext|> are trained too: the model learns to start "
    "and to stop."
)


@exercise("03.2", "how many tokens of the memo-riddle conversation are trained")
def _check_03_2(answer):
    answer = _number(answer, "a count of tokens")
    example = tokenize_conversation(list(_conversation("memo-riddle")), _tokenizer())
    trained, total = sum(example["label_mask"]), len(example["input_ids"])
    replies = len(_assistant_edges(example)[0])
    mistakes = [
        (total - trained, "you counted the untrained tokens (the prompter's)."),
        (total, "that is every token: count only those where label_mask is True."),
        (trained - 2 * replies, _EDGE_HINT),
        (trained - replies, _EDGE_HINT),
    ]
    general = "sum the label_mask of tokenize_conversation(riddle, tokenizer)."
    return _match(answer, trained, "the sum of the label mask.", mistakes, general)


@exercise("03.3", "write the label mask from each token's message index and the messages' roles")
def _check_03_3(answer):
    tokenizer = _tokenizer()
    cases = []
    for conversation in _HIDDEN:
        example = tokenize_conversation(list(conversation), tokenizer)
        cases.append((example["message_indices"], [m["role"] for m in conversation]))
    mistakes = [
        (
            lambda indices, roles: [int(roles[i] != ASSISTANT) for i in indices],
            "that marks the prompter's (and system's) tokens: the assistant's are trained.",
        ),
        (
            lambda indices, roles: [i % 2 for i in indices],
            "message 1 is not always the assistant's: a system message first shifts the parity. Use the roles.",
        ),
        (lambda indices, roles: [1] * len(indices), "that trains every token: plain SFT, not the memo's mask."),
    ]
    return _check_function(
        answer,
        "label_mask_from_roles",
        "answer(message_indices, roles)",
        cases,
        lambda indices, roles: [int(roles[i] == ASSISTANT) for i in indices],
        mistakes,
        "one 0/1 per token: 1 where the token's message is the assistant's.",
        "label_mask[t] = roles[message_indices[t]] is the assistant: the memo's step 3.",
    )


# --- notebook 04: shift ----------------------------------------------------------------------------------


def _hello_example() -> dict:
    return tokenize_conversation(list(_conversation("memo-hello")), _tokenizer())


@exercise("04.1", "the targets of the memo-hello conversation (the memo's shifted convention)")
def _check_04_1(answer):
    answer, example = _ints(answer, "targets"), _hello_example()
    ids, truth = example["input_ids"], shift_for_next_token(example)["targets"]
    mistakes = [
        (ids, "targets[t] is the token after input_ids[t]: unshifted, the model would copy its input."),
        (ids[:-1], "that is the input side (input_ids[:-1]); the targets are one position later."),
        ([ids[0], *ids[:-2]], "shifted the wrong way: targets look ahead, not back."),
    ]
    general = "one target per input position, each the next token."
    right = "targets = input_ids[1:], the next token at every position."
    return _match_list(answer, truth, right, mistakes, general, "targets (one per input position)")


SHIFT_KEYS = ("input_ids", "targets", "label_masks")


@exercise("04.2", "write shift_for_next_token: an example's input_ids, targets and label_masks, aligned")
def _check_04_2(answer):
    tokenizer = _tokenizer()
    cases = [(tokenize_conversation(list(c), tokenizer),) for c in _HIDDEN]

    def shifted(example, ids_from, targets_from, mask_from):
        ids, mask = example["input_ids"], [int(m) for m in example["label_mask"]]
        return {"input_ids": ids_from(ids), "targets": targets_from(ids), "label_masks": mask_from(mask)}

    def keys(function):  # compare only the three keys the task asks for
        return lambda example: {k: function(example)[k] for k in SHIFT_KEYS}

    mistakes = [
        (
            lambda e: shifted(e, lambda i: i[:-1], lambda i: i[1:], lambda m: m[:-1]),
            "the mask must move with the targets: label_masks[t] says whether targets[t] is trained.",
        ),
        (
            lambda e: shifted(e, lambda i: i[:-1], lambda i: i[:-1], lambda m: m[1:]),
            "targets[t] is the token after input_ids[t]: unshifted, the model would learn to copy its input.",
        ),
        (
            lambda e: shifted(e, lambda i: i[1:], lambda i: i[:-1], lambda m: m[:-1]),
            "shifted the wrong way: the inputs are the first T-1 tokens, the targets the last T-1.",
        ),
    ]
    if callable(answer):
        import copy

        first = _call(answer, "answer(example)", copy.deepcopy(cases[0][0]))
        if not isinstance(first, dict) or any(k not in first for k in SHIFT_KEYS):
            return WRONG, f"return a dict with input_ids, targets and label_masks; got {_describe(first)}"
        answer = keys(answer)
    return _check_function(
        answer,
        "shift",
        "answer(example)",
        cases,
        keys(shift_for_next_token),
        mistakes,
        "input_ids[:-1] predict targets = input_ids[1:]; the label mask moves with the targets.",
        "inputs drop the last token, targets and label_masks the first: one shift, for both.",
    )


@exercise("04.3", "the labels of memo-hello in transformers' convention (for model(input_ids, labels=...))")
def _check_04_3(answer):
    answer = _ints(answer, "labels")
    example = _hello_example()
    ids = torch.tensor(example["input_ids"])
    mask = torch.tensor(example["label_mask"])
    truth = labels_from_label_mask(ids, mask).tolist()
    shifted = shift_for_next_token(example)
    mistakes = [
        (
            torch.where(torch.tensor(shifted["label_masks"]), torch.tensor(shifted["targets"]), IGNORE_INDEX).tolist(),
            "shifted twice: model(labels=...) shifts inside its loss, so labels stay aligned with input_ids.",
        ),
        (torch.where(mask, ids, 0).tolist(), "0 is <|endoftext|>, a real token: untrained positions hold -100."),
        (ids.tolist(), "labels = input_ids trains every token (plain SFT): put -100 where the mask is False."),
        (torch.where(mask, IGNORE_INDEX, ids).tolist(), "that trains the prompter: -100 goes where the mask is False."),
    ]
    general = "labels = input_ids, with -100 wherever label_mask is False; not shifted."
    right = "input_ids with -100 on untrained tokens; the model shifts."
    return _match_list(answer, truth, right, mistakes, general, "labels (one per token: not shifted)")


# --- notebook 05: project --------------------------------------------------------------------------------


def _pythia_14m():
    from ..models.pythia import pythia_config

    return pythia_config("pythia-14m")


@exercise("05.1", "the shape of pythia-14m's logits for input_ids of shape [4, 37]")
def _check_05_1(answer):
    if torch.is_tensor(answer) or not isinstance(answer, (tuple, list, torch.Size)):
        raise _Unreadable(f"expected a shape such as (1, 2, 3), got {_describe(answer)}")
    answer = tuple(_ints(list(answer), "a shape"))
    config = _pythia_14m()
    truth = (4, 37, config.vocab_size)
    mistakes = [
        (
            (4, 37, len(_tokenizer())),
            "the head has vocab_size rows (model.config.vocab_size), padded beyond len(tokenizer).",
        ),
        (
            (4, 37, config.hidden_size),
            "that is the hidden state before the head; the head maps it to one score per token.",
        ),
        ((37, 4, config.vocab_size), "batch first: [batch, seq, vocab]."),
        ((4, 36, config.vocab_size), "the model does not shift: one row of logits per input position."),
    ]
    general = "logits are [batch, seq, vocab_size]; look at model.config."
    return _match(
        answer, truth, "[batch, seq, vocab_size]: one score per vocabulary entry per position.", mistakes, general
    )


@exercise("05.2", "the memory, in GB (10^9 bytes), of float32 logits for a batch of 8 x 2048 tokens of pythia-14m")
def _check_05_2(answer):
    answer = _number(answer, "a size in GB")
    elements = 8 * 2048 * _pythia_14m().vocab_size
    truth = elements * 4 / 1e9
    mistakes = [
        (elements * 2 / 1e9, "that is bfloat16 (2 bytes); float32 takes 4 bytes per value."),
        (elements / 1e9, "that counts values; each float32 value takes 4 bytes."),
        (elements * 4 / 2**30, "that is GiB (2^30 bytes); the question asks GB (10^9 bytes)."),
    ]
    general = "batch x seq x vocab_size values, 4 bytes each (sft_utils.steps.project.logits_nbytes)."

    def close(a, b):
        return math.isclose(a, b, rel_tol=0.005)

    return _match(answer, truth, "batch x seq x vocab_size x 4 bytes: over 3 GB.", mistakes, general, same=close)


def _projection_cases():
    generator = torch.Generator().manual_seed(5)
    cases = []
    for batch, length, width, vocab in ((2, 5, 4, 11), (3, 4, 6, 7)):
        hidden = torch.randn(batch, length, width, generator=generator)
        weight = torch.randn(vocab, width, generator=generator)
        label_masks = torch.rand(batch, length, generator=generator) < 0.4
        label_masks[0, 1] = True
        cases.append((hidden, weight, label_masks))
    return cases


@exercise("05.3", "write select-then-project: the logits of the trained rows only, [N, vocab]")
def _check_05_3(answer):
    mistakes = [
        (
            lambda h, w, m: h @ w.t(),
            "that projects every position, [B, T, vocab]: select the trained rows first (hidden[label_masks]).",
        ),
        (lambda h, w, m: h[~m] @ w.t(), "those are the untrained rows: keep the ones where label_masks is True."),
    ]
    return _check_function(
        answer,
        "trained_logits",
        "answer(hidden, weight, label_masks)",
        _projection_cases(),
        lambda h, w, m: h[m] @ w.t(),
        mistakes,
        "hidden[label_masks] is [N, hidden]; times weight.T gives [N, vocab].",
        "select, then project: N rows through the head instead of B × T.",
    )


# --- notebook 06: loss -----------------------------------------------------------------------------------


@exercise("06.1", "the assistant-only loss of the batch sft_utils.exercises.inputs('06.1'), in nats")
def _check_06_1(answer):
    answer = _number(answer, "a loss")
    batch = inputs("06.1")
    logits, targets, mask = batch["logits"], batch["targets"], batch["label_masks"]
    attention = batch["attention_mask"].bool()
    truth = MaskedCrossEntropyLoss()(logits, targets, mask).item()
    nll = per_token_nll(logits, targets)
    per_example = [nll[b][mask[b]].mean() for b in range(len(mask))]
    shifted = torch.roll(mask, 1, dims=1)
    shifted[:, 0] = False
    mistakes = [
        (nll.mean().item(), "a mean over every position, padding and prompt included: keep the trained targets only."),
        (
            nll[attention].mean().item(),
            "a mean over all real tokens is plain SFT: the prompt's targets must not count.",
        ),
        (nll[mask].sum().item(), "that is the sum: divide by the number of trained targets."),
        (nll[mask].sum().item() / mask.numel(), "divided by B x T: padding and prompt dilute the loss."),
        (torch.stack(per_example).mean().item(), "a mean of per-example means weights short replies more."),
        (nll[shifted].mean().item(), "the mask is shifted by one: label_masks[t] already belongs to targets[t]."),
        (nll[~mask & attention].mean().item(), "that is the prompt's loss: keep the positions where the mask is True."),
    ]
    general = "-log softmax(logits)[target] at the masked positions, summed, divided by their count."

    def close(a, b):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)

    right = "sum over trained targets / their count."
    return _match(answer, truth, right, mistakes, general, same=close)


@exercise("06.2", "the perplexity of a model that gives every token of pythia-14m's vocabulary the same probability")
def _check_06_2(answer):
    answer = _number(answer, "a perplexity")
    vocab_size = _pythia_14m().vocab_size
    loss = math.log(vocab_size)
    mistakes = [
        (loss, "that is the loss in nats; perplexity = exp(loss)."),
        (math.log2(vocab_size), "that is the loss in bits; perplexity = exp(loss in nats) = 2 ** (loss in bits)."),
        (
            len(_tokenizer()),
            "the logits have vocab_size columns (model.config.vocab_size), a bit more than the tokenizer.",
        ),
        (1 / vocab_size, "that is the probability of each token; perplexity = exp(-log p) = 1 / p."),
    ]
    general = "perplexity = exp(loss), and a uniform model's loss is ln(vocab_size)."

    def close(a, b):
        return math.isclose(a, b, rel_tol=1e-6)

    right = "exp(ln V) = V: as unsure as a uniform pick among V tokens."
    return _match(answer, float(vocab_size), right, mistakes, general, same=close)


def _loss_cases():
    generator = torch.Generator().manual_seed(6)
    cases = []
    for batch, length, vocab in ((2, 6, 9), (3, 5, 13)):
        logits = torch.randn(batch, length, vocab, generator=generator)
        targets = torch.randint(0, vocab, (batch, length), generator=generator)
        label_masks = torch.rand(batch, length, generator=generator) < 0.4
        label_masks[0, :2] = True  # at least one trained target
        cases.append((logits, targets, label_masks))
    return cases


@exercise("06.3", "write the masked cross-entropy: summed over the trained targets, divided by their count")
def _check_06_3(answer):
    def nll(logits, targets):
        return per_token_nll(logits, targets)

    mistakes = [
        (lambda lo, t, m: nll(lo, t).mean().item(), "that averages over every position: untrained ones count too."),
        (
            lambda lo, t, m: (nll(lo, t) * m).sum().item() / m.numel(),
            "the sum is over trained targets, but the division must be by their count, not by B × T.",
        ),
        (lambda lo, t, m: (nll(lo, t) * m).sum().item(), "divide the sum by the number of trained targets."),
        (
            lambda lo, t, m: (
                torch.stack([nll(lo, t)[b][m[b]].mean() for b in range(len(m)) if m[b].any()]).mean().item()
            ),
            "that is a mean of per-example means: a token of a short reply weighs more. One sum, one count.",
        ),
    ]
    return _check_function(
        answer,
        "masked_cross_entropy",
        "answer(logits, targets, label_masks)",
        _loss_cases(),
        lambda lo, t, m: MaskedCrossEntropyLoss()(lo, t, m).item(),
        mistakes,
        "-log softmax(logits)[target] on each trained target, summed, divided by their number.",
        "one sum over all trained targets of the batch, one division by their count.",
    )


# --- notebook 06b: chat templates ------------------------------------------------------------------------

# ZEPHYR (sft_utils.chat_format) is the format exercise 06b.1 asks a label mask for: `sft_utils.exercises.ZEPHYR`.


@functools.cache
def _zephyr_tokenizer():
    from ..steps.tokenize import load_tokenizer

    return load_tokenizer(verbose=False, chat_format=ZEPHYR)


@functools.cache
def _zephyr_masks() -> dict:
    """Token ids of each hidden conversation in Zephyr's format -> its label mask under ZEPHYR and under the
    variants a typical mistake amounts to (a header trained, the end untrained, the footer trained …)."""
    import dataclasses

    variants = {
        "right": {},
        "marker": {"train_marker": True},
        "header": {"train_marker": True, "train_header": True},
        "no end": {"train_end": False},
        "footer": {"train_footer": True},
        "whole message": {"train_marker": True, "train_header": True, "train_footer": True},
    }
    masks = {}
    for conversation in _HIDDEN:
        messages = list(conversation)
        by_variant = {}
        for name, change in variants.items():
            example = tokenize_conversation(
                messages, _zephyr_tokenizer(), chat_format=dataclasses.replace(ZEPHYR, **change)
            )
            by_variant[name] = [int(m) for m in example["label_mask"]]
        roles = [m["role"] for m in messages]
        by_variant["others"] = [int(roles[i] != ASSISTANT) for i in example["message_indices"]]
        masks[tuple(example["input_ids"])] = by_variant
    return masks


def _zephyr_variant(name: str):
    return lambda input_ids: _zephyr_masks()[tuple(input_ids)][name]


@exercise("06b.1", "write the label mask of a Zephyr conversation from its token ids: each reply's text and </s>")
def _check_06b_1(answer):
    mistakes = [
        (
            _zephyr_variant("whole message"),
            (
                "that trains every token of the assistant's messages, Open-Assistant's rule. Here the header "
                "<|assistant|> and its newline come before generation starts, and the newline after </s> after "
                "it stops: train from the reply's first text token to its </s>."
            ),
        ),
        (
            _zephyr_variant("header"),
            "the header (<|assistant|> and its newline) is the generation prompt: the model reads it, never writes it.",
        ),
        (
            _zephyr_variant("marker"),
            "<|assistant|> is part of the header, which the prompt already holds: leave it untrained.",
        ),
        (
            _zephyr_variant("no end"),
            "each reply's </s> must be trained: it is how the model learns to stop.",
        ),
        (
            _zephyr_variant("footer"),
            "the newline after </s> is written after every message, and generation stops at </s>: leave it untrained.",
        ),
        (_zephyr_variant("others"), "that trains the user's and system's messages; the replies are the assistant's."),
    ]
    return _check_function(
        answer,
        "zephyr_label_mask",
        "answer(input_ids)",
        [(list(ids),) for ids in _zephyr_masks()],
        _zephyr_variant("right"),
        mistakes,
        "after each <|assistant|> and its newline, 1 up to and including the next </s>; 0 everywhere else.",
        "each reply's text and its </s>: what the model writes after the generation prompt, up to where it stops.",
    )


@exercise("06b.2", "how many more tokens the course's tokenizer can take before pythia-14m's embeddings need resizing")
def _check_06b_2(answer):
    answer = _number(answer, "a number of tokens")
    rows, length = _pythia_14m().vocab_size, len(_tokenizer())
    base = length - len(OPEN_ASSISTANT.added_tokens)
    mistakes = [
        (
            rows - base,
            "those are Pythia's spare rows before the course added its five tokens; count from len(tokenizer).",
        ),
        (rows, "that is every row of the embedding matrix; most of them already hold a token."),
        (length, "that is len(tokenizer): the tokens that already have a row."),
        (0, "the embedding matrix has more rows than the tokenizer has tokens: compare the two."),
        (len(OPEN_ASSISTANT.added_tokens), "those are the tokens the course added; how many rows are still free?"),
    ]
    general = "rows of the embedding matrix (model.config.vocab_size) minus the tokens that have one (len(tokenizer))."
    right = "vocab_size − len(tokenizer): ids up to 50 303 have a row; the next token needs resize_token_embeddings."
    return _match(answer, rows - length, right, mistakes, general)


# --- notebook 07: train it yourself ----------------------------------------------------------------------


@functools.cache
def _accumulation_setup():
    """A 1-layer model of pythia-14m's width and two micro-batches of very different trained counts (hidden
    from the learner), and the gradient of each micro-batch's summed loss."""
    from transformers import GPTNeoXForCausalLM

    from ..data.toy import toy_conversations
    from ..models.pythia import pythia_config
    from ..steps.shift import AssistantOnlyCollator
    from ..train.step import masked_loss_sum

    config = pythia_config("pythia-14m")
    config.num_hidden_layers = 1
    torch.manual_seed(7)
    model = GPTNeoXForCausalLM(config).eval()
    tokenizer, collate = _tokenizer(), AssistantOnlyCollator(1)
    short = toy_conversations("facts", "held-out", 1, seed=5)
    long = toy_conversations("last_word", "held-out", 3, seed=5) + toy_conversations("reverse", "held-out", 3, seed=5)
    micro = [collate([tokenize_conversation(c["messages"], tokenizer) for c in group]) for group in (short, long)]
    sums, counts, grads = [], [], []
    for batch in micro:
        model.zero_grad(set_to_none=True)
        loss_sum, count = masked_loss_sum(model, batch)
        loss_sum.backward()
        sums.append(loss_sum.item())
        counts.append(count)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    return model, micro, sums, counts, grads


@exercise("07.1", "write the backward pass of one step over several micro-batches, weighting every token equally")
def _check_07_1(answer):
    import copy

    if not callable(answer):
        raise _Unreadable(f"expected your function (answer = accumulate), got {_describe(answer)}")
    model, micro, sums, counts, grads = _accumulation_setup()
    model = copy.deepcopy(model)
    # Fresh tensors each time: an answer that edits a batch in place must not change the next check.
    loss = _call(answer, "answer(model, micro_batches)", model, [{k: v.clone() for k, v in b.items()} for b in micro])
    if any(p.grad is None for p in model.parameters()):
        return WRONG, "no gradient reached the weights: call .backward() on each micro-batch's part of the loss."
    got = torch.cat([p.grad.flatten() for p in model.parameters()])
    total, k = sum(counts), len(counts)
    # Every way of combining the micro-batches is a weighted sum of their summed-loss gradients.
    candidates = [
        ([1 / total] * k, None),
        (
            [1 / (k * n) for n in counts],
            (
                "that averages the micro-batch means: a token of the short micro-batch "
                "weighs more than a token of the long one. Divide every sum by the step's total count."
            ),
        ),
        ([1 / n for n in counts], "each micro-batch's mean, added up: too large, and short micro-batches weigh more."),
        ([1.0] * k, "the summed loss is never divided: the step would grow with the number of trained tokens."),
        ([1 / k] * k, "divided by the number of micro-batches; divide by the number of trained targets."),
    ]
    for weights, hint in candidates:
        expected = sum(w * g for w, g in zip(weights, grads, strict=True))
        # Compared as whole vectors: float32 rounding is relative to the gradient's size, not to each entry's.
        if torch.linalg.vector_norm(got - expected) <= 1e-4 * torch.linalg.vector_norm(expected):
            if hint is not None:
                return WRONG, hint
            loss = _number(loss, "the step's loss")
            if not math.isclose(loss, sum(sums) / total, rel_tol=1e-4):
                return WRONG, "the gradients are right; return the step's loss: all sums over the total count."
            return CORRECT, "every trained token weighs 1/N, N the step's count: the gradient of one big batch."
    return WRONG, "each micro-batch's summed loss (masked_loss_sum) divided by the step's total count, then backward."


def _weighted_inputs():
    """Per-target losses and two disjoint masks (reply targets, prompt targets), hidden from the learner."""
    generator = torch.Generator().manual_seed(11)
    nll = torch.rand(3, 12, generator=generator) * 8
    label_masks = torch.zeros(3, 12, dtype=torch.bool)
    label_masks[0, 8:] = label_masks[1, 3:5] = label_masks[2, 10:] = True
    prompt_masks = ~label_masks
    prompt_masks[2, :2] = False  # two untrained padding targets: in neither mask
    return nll, label_masks, prompt_masks


@exercise("07.2", "write the prompt-weighted loss: w times each prompt target, over the weighted count")
def _check_07_2(answer):
    if not callable(answer):
        raise _Unreadable(f"expected your function (answer = prompt_weighted_loss), got {_describe(answer)}")
    nll, reply, prompt = _weighted_inputs()
    s_reply, s_prompt, n_reply, n_prompt = nll[reply].sum(), nll[prompt].sum(), reply.sum(), prompt.sum()
    weights = (0.0, 0.1, 0.5, 1.0)
    signature = "answer(nll, label_masks, prompt_masks, w)"
    got = [_number(_call(answer, signature, nll.clone(), reply.clone(), prompt.clone(), w), "a loss") for w in weights]
    formulas = {
        "right": lambda w: (s_reply + w * s_prompt) / (n_reply + w * n_prompt),
        "the weighted sum needs a weighted count: reply count + w × prompt count, not every token.": lambda w: (
            (s_reply + w * s_prompt) / (n_reply + n_prompt)
        ),
        "the weight belongs to the prompt's targets; the reply's always count fully.": lambda w: (
            (w * s_reply + s_prompt) / (w * n_reply + n_prompt)
        ),
        "that is the masked loss whatever w is; w must bring the prompt's targets in.": lambda w: s_reply / n_reply,
        "that is plain SFT's mean whatever w is; w = 0 must give the masked loss.": lambda w: (
            (s_reply + s_prompt) / (n_reply + n_prompt)
        ),
    }
    for message, formula in formulas.items():
        if all(math.isclose(g, float(formula(w)), rel_tol=1e-5) for g, w in zip(got, weights, strict=True)):
            if message == "right":
                return CORRECT, "w = 0 gives the masked loss, w = 1 plain SFT's mean, and every w in between."
            return WRONG, message
    return WRONG, "sum nll over the reply's targets plus w times over the prompt's; divide by count + w × count."


# --- notebook 08: fine-tune ------------------------------------------------------------------------------

COUNTS_08_1 = [12, 30, 18, 40]


@exercise("08.1", "accumulating 4 micro-batch losses with reduction='sum': divide their summed gradient by what?")
def _check_08_1(answer):
    answer = _number(answer, "a number")
    truth = sum(COUNTS_08_1)
    mistakes = [
        (
            len(COUNTS_08_1),
            (
                "that is the number of micro-batches: with summed losses every token still weighs the same, but the "
                "step is many times too large. Divide by what one big batch's mean divides by."
            ),
        ),
        (truth / len(COUNTS_08_1), "the mean count; divide by the step's total number of trained targets."),
        (1, "without dividing, the step size grows with the number of trained tokens."),
    ]
    general = "one big batch divides by its trained-target count; accumulation must give the same gradient."
    right = "the step's total count of trained targets: the same gradient as one big batch."
    return _match(answer, truth, right, mistakes, general)


@exercise("08.2", "the id that must end the prompt so that the model writes the reply")
def _check_08_2(answer):
    answer = _number(answer, "a token id")
    tokenizer = _tokenizer()
    question = [{"role": "prompter", "text": "What is 15% of 80?"}]
    truth = generation_prompt_ids(question, tokenizer)[-1]
    mistakes = [
        (tokenizer.eos_token_id, "<|endoftext|> closes the prompter's message; then the assistant's turn opens."),
        (
            tokenizer.convert_tokens_to_ids(_PROMPTER_MARKER),
            "that is the prompter's marker; the reply is the assistant's.",
        ),
        (tokenizer.pad_token_id, "padding is never part of a prompt."),
    ]
    general = "see sft_utils.generation_prompt_ids (notebook 08, 'Asking the model')."
    return _match(answer, truth, "<|assistant|> (50280): the model continues as the assistant.", mistakes, general)


@exercise("08.3", "write a padding collator for a tokenizer whose pad id is <|endoftext|>'s, 0")
def _check_08_3(answer):
    tokenizer = _tokenizer()
    examples = [tokenize_conversation(list(c), tokenizer) for c in _HIDDEN]
    examples.append(tokenize_conversation(list(_conversation("memo-hello")), tokenizer))
    cases = [(examples[:2], 0), (examples[1:], 0)]
    from ..steps.shift import AssistantOnlyCollator

    def by_id(examples, pad_id):
        batch = AssistantOnlyCollator(pad_id).pad(examples)
        batch["attention_mask"] = (batch["input_ids"] != pad_id).long()
        batch["label_mask"] = batch["label_mask"] & (batch["input_ids"] != pad_id)
        return batch

    mistakes = [
        (
            by_id,
            (
                "padding found by id: every reply's real <|endoftext|> has the pad id too, so it is masked out and "
                "the model never learns to stop. Pad by length."
            ),
        ),
    ]
    return _check_function(
        answer,
        "pad_batch",
        "answer(examples, pad_id)",
        cases,
        lambda examples, pad_id: AssistantOnlyCollator(pad_id).pad(examples),
        mistakes,
        "right-pad input_ids with pad_id; attention_mask and label_mask from each example's length, 0 after it.",
        "padding is found by length, so each reply's closing <|endoftext|> stays trained.",
    )
