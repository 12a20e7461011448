"""Exercises of notebook 01_format: a conversation as Open-Assistant's string, and the prompt for a reply."""

from __future__ import annotations

from ...steps.format import format_conversation
from .core import ASSISTANT_MARKER, EOS, PROMPTER_MARKER, SYSTEM_MARKER, WRONG, Unreadable, describe, exercise, match

CHAT_01_1 = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello, how can I help?"}]
SYSTEM_01_1 = "Answer in one sentence."
CHAT_01_2 = [
    {"role": "prompter", "text": "What is 2 + 2?"},
    {"role": "assistant", "text": "4."},
    {"role": "prompter", "text": "And 3 + 3?"},
]


def _by_hand(parts, eos_after=lambda i: True) -> str:
    return "".join(marker + text + (EOS if eos_after(i) else "") for i, (marker, text) in enumerate(parts))


def _string(answer) -> str:
    if not isinstance(answer, str):
        raise Unreadable(f"expected a string, got {describe(answer)}")
    return answer


@exercise("01.1", "the string of CHAT_01_1 with the system prompt SYSTEM_01_1, written without format_conversation")
def _check_01_1(answer):
    answer = _string(answer)
    truth = format_conversation(CHAT_01_1, system=SYSTEM_01_1)
    system, user, bot = (
        (SYSTEM_MARKER, SYSTEM_01_1),
        (PROMPTER_MARKER, "Hi!"),
        (ASSISTANT_MARKER, "Hello, how can I help?"),
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
    if answer != truth and "".join(answer.split()) == "".join(truth.split()):
        return WRONG, "a space or newline too many or too few: the format joins markers and texts as they are."
    general = (
        "reread notebook 01's first section: which marker opens each message, in which order the messages come, "
        "and what closes each one."
    )
    return match(answer, truth, "one marker, the text and <|endoftext|> per message, system first.", mistakes, general)


@exercise("01.2", "the string to give the model so that it answers the last question of CHAT_01_2")
def _check_01_2(answer):
    answer = _string(answer)
    conversation = format_conversation(CHAT_01_2)
    truth = format_conversation(CHAT_01_2, add_generation_prompt=True)
    mistakes = [
        (conversation, "the model must be told whose turn it is: end with the assistant's marker."),
        (truth + EOS, "do not close the reply: the model writes the reply and its <|endoftext|> itself."),
        (conversation + PROMPTER_MARKER, "the next turn is the assistant's, not the prompter's."),
        (
            format_conversation(CHAT_01_2[-1:], add_generation_prompt=True),
            "keep the whole conversation: `3 + 3` only makes sense after the first exchange.",
        ),
    ]
    general = (
        "the model continues the string it is given: what must the string hold, and end with, for the next "
        "words to be the assistant's answer to the last question? (notebook 01, the generation prompt)"
    )
    return match(answer, truth, "the conversation, then <|assistant|>: the reply is the model's.", mistakes, general)
