"""Truncation over a data set: what ``max_length`` cut, and which examples it left with nothing to train.

Introduced in notebook 04_shift ("How masks go wrong"). The policy itself is
:func:`sft_utils.tokenize_conversation`'s: keep the first ``max_length`` tokens; a cut assistant reply
keeps its surviving tokens trained. This module counts its effects, so that an example whose trained
tokens were all cut off is never fed to training without anyone knowing: its loss would be 0 (the
masked mean divides by max(count, 1)), a silent no-op that still takes a place in the batch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ..chat_format import OPEN_ASSISTANT, ChatFormat, check_chat_format
from ..steps.format import check_conversations, conversation_entry, conversation_name
from ..steps.mask import check_max_length, token_id, tokenize_conversation
from ..steps.tokenize import check_tokenizer


@dataclass
class TruncationReport:
    """What ``max_length`` did to a list of conversations (counts are examples unless said otherwise).

    Attributes:
        max_length: the limit, in tokens (None: no truncation).
        examples: conversations tokenized.
        truncated: ids of the conversations longer than ``max_length`` (cut).
        replies_cut: ids whose cut fell inside an assistant reply (its head stays trained, its
            closing ``<|endoftext|>`` is lost).
        no_trained_target: ids left without a single trained target (all assistant tokens cut).
        dropped: ids removed from the returned examples (``drop_untrained=True``); else empty.
        trained_targets_before, trained_targets_after: trained targets (tokens) summed over all
            examples, without and with truncation.
    """

    max_length: int | None
    examples: int = 0
    truncated: list = field(default_factory=list)
    replies_cut: list = field(default_factory=list)
    no_trained_target: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    trained_targets_before: int = 0
    trained_targets_after: int = 0

    def __str__(self) -> str:
        return (
            f"max_length={self.max_length}: {self.examples} examples, {len(self.truncated)} truncated, "
            f"{len(self.replies_cut)} with a reply cut, {len(self.no_trained_target)} with no trained target "
            f"({len(self.dropped)} dropped); trained targets {self.trained_targets_before} -> "
            f"{self.trained_targets_after}"
        )


def trained_target_count(example: dict) -> int:
    """Trained targets of one tokenized example: ``sum(label_mask[1:])`` (position 0 is never a target)."""
    return int(sum(example["label_mask"][1:]))


def tokenize_conversations(
    conversations,
    tokenizer,
    *,
    max_length: int | None = None,
    drop_untrained: bool = False,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> tuple[list[dict], TruncationReport]:
    """Tokenize many conversations with one ``max_length`` and report what truncation did.

    Args:
        conversations: dicts with ``messages`` (and ``id``, named in the report; else the list index),
            as returned by :func:`sft_utils.load_conversations`.
        tokenizer: from :func:`sft_utils.load_tokenizer`.
        max_length: as in :func:`sft_utils.tokenize_conversation` (None: no truncation).
        drop_untrained: leave out the examples with no trained target (listed in ``report.dropped``).
        chat_format: as in :func:`sft_utils.tokenize_conversation`.

    Returns:
        ``(examples, report)``: the examples as :func:`sft_utils.tokenize_conversation` returns them, in
        order, and a :class:`TruncationReport`. Each example's own "left no trained token" warning is
        replaced by one summary ``UserWarning``: naming the dropped examples, or the kept ones that have no
        trained target.

    Raises:
        ConversationError: an item that is not a ``{"messages": [...]}`` dict (a ConversationTypeError, also a
            TypeError), or a conversation that :func:`sft_utils.tokenize_conversation` refuses.
        ValueError: a bad ``max_length``.
        TypeError: ``conversations`` that are one conversation (a dict, or the list of its messages), a str or
            None; a ``tokenizer`` or ``chat_format`` of the wrong kind.
    """
    check_max_length(max_length)
    conversations = check_conversations(conversations)
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    report = TruncationReport(max_length=max_length)
    examples = []
    for index, conversation in enumerate(conversations):
        name, messages = conversation_entry(conversation, index)
        full = tokenize_conversation(messages, tokenizer, conversation_id=name, chat_format=chat_format)
        example = full
        if max_length is not None and len(full["input_ids"]) > max_length:
            with warnings.catch_warnings():  # counted in the report instead, once per data set
                warnings.simplefilter("ignore", UserWarning)
                example = tokenize_conversation(
                    conversation["messages"],
                    tokenizer,
                    max_length=max_length,
                    conversation_id=name,
                    chat_format=chat_format,
                )
            report.truncated.append(name)
            # The message at the cut is an assistant's and loses its end of message past the cut: a reply cut in
            # two (a footer alone past it, ChatML's newline after <|im_end|>, leaves the reply whole).
            cut_message = full["message_indices"][max_length - 1]
            end_id = token_id(tokenizer, chat_format.end_of_message)  # tokenize_conversation found it
            past = zip(full["input_ids"][max_length:], full["message_indices"][max_length:])
            if full["label_mask"][max_length - 1] and (end_id, cut_message) in past:
                report.replies_cut.append(name)
        report.examples += 1
        report.trained_targets_before += trained_target_count(full)
        report.trained_targets_after += trained_target_count(example)
        if trained_target_count(example) == 0:
            report.no_trained_target.append(name)
            if drop_untrained:
                report.dropped.append(name)
                continue
        examples.append(example)
    if report.dropped:
        warnings.warn(
            f"dropped {len(report.dropped)} of {report.examples} conversation(s) left with no trained token "
            f"by truncation to max_length={max_length} ({_first_names(report.dropped)})",
            stacklevel=2,
        )
    kept_empty = [n for n in report.no_trained_target if n not in report.dropped]
    if kept_empty:
        warnings.warn(
            f"{len(kept_empty)} example(s) have no trained target after truncation to max_length={max_length} "
            f"({_first_names(kept_empty)}); they add nothing to the loss. Pass drop_untrained=True to leave them out.",
            stacklevel=2,
        )
    return examples, report


def _first_names(ids: list) -> str:
    """The first three conversations named as errors name them, then "…" when there are more."""
    return ", ".join(conversation_name(n) for n in ids[:3]) + (", …" if len(ids) > 3 else "")


def truncation_report(
    conversations, tokenizer, *, max_length: int, chat_format: ChatFormat = OPEN_ASSISTANT
) -> TruncationReport:
    """The :class:`TruncationReport` of :func:`tokenize_conversations` alone (nothing dropped, no warning).

    E.g. ``print(truncation_report(conversations, tokenizer, max_length=64))`` prints
    ``max_length=64: 13 examples, 5 truncated, 4 with a reply cut, 0 with no trained target …``. Raises as
    :func:`tokenize_conversations`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return tokenize_conversations(conversations, tokenizer, max_length=max_length, chat_format=chat_format)[1]
