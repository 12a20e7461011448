"""Exercises of notebook 06b_chat_templates: a label mask for Zephyr's layout, and ChatML with its header trained."""

from __future__ import annotations

import dataclasses
import functools

from ...chat_format import ASSISTANT, CHATML, ZEPHYR
from ...steps.mask import tokenize_conversation
from .core import HIDDEN, check_function, conversation, exercise, match, number
from .n03_mask import merged

# ZEPHYR (sft_utils.chat_format) is the format exercise 06b.1 asks a label mask for: `sft_utils.exercises.ZEPHYR`.
_WHICH_TOKENS = "reread 'Which tokens to train: a choice, measured'"


@functools.cache
def _tokenizer_for(chat_format):
    from ...steps.tokenize import load_tokenizer

    return load_tokenizer(verbose=False, chat_format=chat_format)


@functools.cache
def _zephyr_masks() -> dict:
    """Token ids of each hidden conversation in Zephyr's format -> its label mask under ZEPHYR and under the
    variants a typical mistake amounts to (a header trained, the end untrained, the footer trained …)."""
    variants = {
        "right": {},
        "marker": {"train_marker": True},
        "header": {"train_marker": True, "train_header": True},
        "no end": {"train_end": False},
        "footer": {"train_footer": True},
        "whole message": {"train_marker": True, "train_header": True, "train_footer": True},
    }
    masks = {}
    for conversation_ in HIDDEN:
        messages = list(conversation_)
        by_variant = {}
        for name, change in variants.items():
            example = tokenize_conversation(
                messages, _tokenizer_for(ZEPHYR), chat_format=dataclasses.replace(ZEPHYR, **change)
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
                "it stops."
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
        (_zephyr_variant("no end"), "each reply's </s> must be trained: it is how the model learns to stop."),
        (
            _zephyr_variant("footer"),
            "the newline after </s> is written after every message, and generation stops at </s>: leave it untrained.",
        ),
        (_zephyr_variant("others"), "that trains the user's and system's messages; the replies are the assistant's."),
    ]
    return check_function(
        answer,
        "zephyr_label_mask",
        "answer(input_ids)",
        [(list(ids),) for ids in _zephyr_masks()],
        _zephyr_variant("right"),
        mistakes,
        (
            "which tokens does the model write after the generation prompt, and at which token does it stop? "
            f"Check your mask on memo-hello's ids, token by token; {_WHICH_TOKENS}."
        ),
        "each reply's text and its </s>: what the model writes after the generation prompt, up to where it stops.",
    )


@exercise(
    "06b.2",
    "change ChatML to train each reply's whole header too, and predict how many of memo-hello's tokens are trained",
)
def _check_06b_2(answer):
    answer = number(answer, "a count of tokens")
    hello, tok = list(conversation("memo-hello")), _tokenizer_for(CHATML)
    trained = {
        name: sum(tokenize_conversation(hello, tok, chat_format=dataclasses.replace(CHATML, **change))["label_mask"])
        for name, change in {
            "before": {},
            "asked": {"train_marker": True, "train_header": True},
            "marker": {"train_marker": True},
            "footer": {"train_footer": True},
            "header and footer": {"train_marker": True, "train_header": True, "train_footer": True},
        }.items()
    }
    replies = sum(m["role"] == ASSISTANT for m in hello)
    header = (trained["asked"] - trained["before"]) // replies  # tokens of '<|im_start|>assistant\n'
    mistakes = merged(
        [
            (trained["before"], "that is ChatML as it ships; with the header trained, more tokens are."),
            (
                trained["marker"],
                (
                    "that adds one token per reply; the header is more than <|im_start|>: the role's name and its "
                    "newline too (count its tokens in 'Templates without generation blocks')."
                ),
            ),
            (
                trained["footer"],
                "that trains the newline after <|im_end|>, the footer; the header comes before the text.",
            ),
            (
                trained["header and footer"],
                "the newline after <|im_end|> is the footer, not the header: still untrained.",
            ),
            (trained["before"] + header, "memo-hello has two replies, each with its header."),
            (trained["before"] + replies * (header - 1), "the header ends with its newline, one token more."),
        ]
    )
    general = (
        "count the tokens of one reply's header in the token table of 'Templates without generation blocks', "
        "then add them for every reply."
    )
    right = (
        f"{trained['asked']}: {header} header tokens more per reply. The generation prompt already holds them, so "
        "training them teaches what inference never asks for (the measurement above compares both choices)."
    )
    return match(answer, trained["asked"], right, mistakes, general)
