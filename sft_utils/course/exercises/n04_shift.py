"""Exercises of notebook 04_shift: next-token targets, a mask broken on purpose, and transformers' labels."""

from __future__ import annotations

import torch

from ...steps.mask import tokenize_conversation
from ...steps.shift import IGNORE_INDEX, labels_from_label_mask, shift_for_next_token
from .core import conversation, exercise, ints, match, match_list, number, tokenizer
from .n03_mask import merged

CONVERSATION_04_2 = "memo-riddle"
_OFF_BY_ONE = "notebook 04's appendix, '2. Off by one'"


def _hello_example() -> dict:
    return tokenize_conversation(list(conversation("memo-hello")), tokenizer())


@exercise("04.1", "the targets of the memo-hello conversation (the memo's shifted convention)")
def _check_04_1(answer):
    answer, example = ints(answer, "targets"), _hello_example()
    ids, truth = example["input_ids"], shift_for_next_token(example)["targets"]
    mistakes = [
        (ids, "each target is the token after its input: unshifted, the model would learn to copy its input."),
        (ids[:-1], "that is the input side, what the model reads; the targets are what it must predict."),
        ([ids[0], *ids[:-2]], "shifted the wrong way: targets look ahead, not back."),
    ]
    general = "one target per input position: the token the model must predict there (reread 'Shifting one example')."
    right = "the next token at every position: the first token is never a target."
    return match_list(answer, truth, right, mistakes, general, "targets (one per input position)")


def off_by_one_changes(example) -> tuple[int, int]:
    """(targets the unshifted mask skips, targets it trains that it must not), against the shifted mask."""
    right, wrong = example["label_mask"][1:], example["label_mask"][:-1]
    skipped = sum(r and not w for r, w in zip(right, wrong, strict=True))
    extra = sum(w and not r for r, w in zip(right, wrong, strict=True))
    return skipped, extra


@exercise(
    "04.2",
    "break the mask on purpose (label_mask[:-1] on the shifted targets of memo-riddle): predict how many targets "
    "it gets wrong",
)
def _check_04_2(answer):
    answer = number(answer, "a count of targets")
    tok = tokenizer()
    messages = list(conversation(CONVERSATION_04_2))
    example = tokenize_conversation(messages, tok)
    skipped, extra = off_by_one_changes(example)
    replies = sum(m["role"] == "assistant" for m in messages)
    mistakes = merged(
        [
            (
                skipped,
                (
                    "those are the targets it skips, one per reply; what does it train after each reply's "
                    f"<|endoftext|>? ({_OFF_BY_ONE})"
                ),
            ),
            (
                extra,
                (
                    "those are the targets it trains wrongly; it also skips one target at the start of each reply "
                    f"({_OFF_BY_ONE})."
                ),
            ),
            (
                2 * replies,
                "close: after the last reply the conversation ends, so nothing follows it to be trained wrongly.",
            ),
            (0, f"the unshifted mask is one position off at every edge of a reply: {_OFF_BY_ONE} shows memo-hello's."),
        ]
    )
    general = (
        f"at each reply's start and end the unshifted mask is one position off: reread {_OFF_BY_ONE}, which does "
        "this to memo-hello, then count for memo-riddle's replies."
    )
    right = (
        f"{skipped} skipped (each reply's <|assistant|> target) and {extra} trained wrongly (the <|prompter|> after "
        "a reply): the model would not learn to open a reply, and would learn to write the user's turn."
    )
    return match(answer, skipped + extra, right, mistakes, general)


@exercise("04.3", "the labels of memo-hello in transformers' convention (for model(input_ids, labels=...))")
def _check_04_3(answer):
    answer = ints(answer, "labels")
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
        (
            torch.where(mask, ids, 0).tolist(),
            "0 is <|endoftext|>, a real token: an ignored position has its own value.",
        ),
        (ids.tolist(), "that trains every token, the prompter's too (plain SFT): untrained positions must be ignored."),
        (
            torch.where(mask, IGNORE_INDEX, ids).tolist(),
            "that trains the prompter and ignores the replies: the other way round.",
        ),
    ]
    general = (
        "reread 'The other convention': which value makes cross_entropy ignore a position, and who does the shift?"
    )
    right = "the ids where trained, -100 elsewhere, not shifted: the model shifts."
    return match_list(answer, truth, right, mistakes, general, "labels (one per token: not shifted)")
