"""Exercises of notebook 03_mask: the label mask by hand, a count of trained tokens, and a prediction."""

from __future__ import annotations

from ...steps.mask import tokenize_conversation
from .core import WRONG, conversation, exercise, ints, match, number, tokenizer

SYSTEM_03_3 = "You are a patient teacher. Explain every step of a riddle in plain words, and check each answer twice."

EDGE_HINT = (
    "the reply's <|assistant|> marker and its closing <|endoftext|> are trained too: the model learns to start "
    "and to stop."
)
_MEMO_DIFFERS = "the memo, 'Where the course differs from Open-Assistant's code'"


def merged(mistakes: list[tuple]) -> list[tuple]:
    """``(wrong_answer, hint)`` pairs with the hints of equal wrong answers joined: when two slips give the
    same answer, the hint names both, so it is true whichever the learner made."""
    by_answer: dict = {}
    for wrong, hint in mistakes:
        by_answer.setdefault(wrong, []).append(hint)
    return [
        (
            wrong,
            hints[0]
            if len(hints) == 1
            else "two slips give this answer. " + " ".join(f"({i}) {h}" for i, h in enumerate(hints, 1)),
        )
        for wrong, hints in by_answer.items()
    ]


def _assistant_edges(example) -> tuple[list[int], list[int]]:
    """Positions of each assistant message's marker and of its closing <|endoftext|>."""
    mask, index = example["label_mask"], example["message_indices"]
    starts = [t for t in range(len(mask)) if mask[t] and (t == 0 or index[t - 1] != index[t])]
    ends = [t for t in range(len(mask)) if mask[t] and (t == len(mask) - 1 or index[t + 1] != index[t])]
    return starts, ends


@exercise("03.1", "the label_mask of the memo-hello conversation, one 0/1 per token")
def _check_03_1(answer):
    answer = ints(answer, "a label mask")
    example = tokenize_conversation(list(conversation("memo-hello")), tokenizer())
    truth = [int(x) for x in example["label_mask"]]
    if len(answer) != len(truth):
        if answer in (truth[1:], truth[:-1]):
            return WRONG, "that is the shifted mask of step 4; here the mask is aligned with input_ids, one per token."
        return WRONG, f"the label mask has one value per token: expected {len(truth)} values, got {len(answer)}."
    starts, ends = _assistant_edges(example)
    no_marker = [0 if t in starts else m for t, m in enumerate(truth)]
    no_eos = [0 if t in ends else m for t, m in enumerate(truth)]
    shifted = "shifted by one: the shift belongs to step 4 (notebook 04); here each value is its own token's."
    mistakes = [
        ([1 - m for m in truth], "that trains the prompter: the model would learn to write the questions."),
        ([1] * len(truth), "every token trained is plain causal-LM SFT; assistant-only loss trains the replies only."),
        ([0, *truth[:-1]], shifted),
        ([*truth[1:], 0], shifted),
        ([0 if t in ends else m for t, m in enumerate(no_marker)], EDGE_HINT),
        (no_marker, EDGE_HINT),
        (no_eos, EDGE_HINT),
    ]
    general = "a token is trained when the message it belongs to is the assistant's: reread 'The memo's table'."
    right = "every token of the assistant's messages, marker and closing <|endoftext|> included."
    return match(answer, truth, right, mistakes, general)


@exercise("03.2", "how many tokens of the memo-riddle conversation are trained")
def _check_03_2(answer):
    answer = number(answer, "a count of tokens")
    example = tokenize_conversation(list(conversation("memo-riddle")), tokenizer())
    trained, total = sum(example["label_mask"]), len(example["input_ids"])
    replies = len(_assistant_edges(example)[0])
    mistakes = merged(
        [
            (total - trained, "you counted the untrained tokens (the prompter's); count those the mask trains."),
            (total, "that is every token: count only those where label_mask is True."),
            (
                trained - 1,
                (
                    "one short. Switching the last token off (`label_mask[-1] = False`) is a rule of Open-Assistant's "
                    "collator, whose mask sits on input positions, one token early; the course's label mask trains "
                    f"every token of each reply, the last <|endoftext|> included ({_MEMO_DIFFERS})."
                ),
            ),
            (trained - 2 * replies, EDGE_HINT),
            (trained - replies, EDGE_HINT),
        ]
    )
    general = "count the tokens whose label_mask is True in memo-riddle (notebook 03's last section counts them all)."
    return match(
        answer, trained, "the label mask's trained tokens: every token of the three replies.", mistakes, general
    )


def _share(value: float) -> float:
    """A share given as a fraction or in percent (44 for 44%) as a fraction."""
    return value / 100 if 1 < value <= 100 else value


@exercise(
    "03.3",
    "predict the share of memo-riddle's tokens that are trained once it gets the system prompt SYSTEM_03_3",
)
def _check_03_3(answer):
    given = number(answer, "a share of tokens (0.25 or 25 for a quarter)")
    tok, riddle = tokenizer(), list(conversation("memo-riddle"))
    before = tokenize_conversation(riddle, tok)
    after = tokenize_conversation(riddle, tok, system=SYSTEM_03_3)  # what the learner is asked to predict
    trained, total = sum(after["label_mask"]), len(after["input_ids"])
    if given in (trained, total):
        return WRONG, "that is a count of tokens; the question asks for the trained tokens' share of all tokens."
    answer = _share(given)
    added = total - len(before["input_ids"])  # the system message: marker, text, <|endoftext|>
    mistakes = merged(
        [
            (
                sum(before["label_mask"]) / len(before["input_ids"]),
                "that is the share without the system prompt: its tokens join the conversation, so the share changes.",
            ),
            (
                (trained + added) / total,
                "the system message is not the assistant's: it adds to all tokens, not to the trained ones.",
            ),
            (
                trained / (total - 2),
                "close: the system message is written like every message, with its marker and <|endoftext|>.",
            ),
        ]
    )

    def equal(a, b):
        return abs(a - b) <= 0.005  # a prediction to half a percentage point

    general = (
        "the system prompt is message 0 and is never trained: what does it add to the trained tokens, and what to "
        "all tokens? (notebook 03, 'Building it in view': how a message becomes tokens)"
    )
    right = (
        f"{trained} of {total} tokens ({trained / total:.1%}): the trained count stays, the total grows by the "
        "system message, so its share falls. Plain SFT would train the system prompt too."
    )
    return match(answer, trained / total, right, mistakes, general, equal=equal)
