"""Exercises of notebook 02_tokenize: a typed marker stays text, why padding is not <|endoftext|>, ids by hand."""

from __future__ import annotations

from ...chat_format import ASSISTANT, OPEN_ASSISTANT, PROMPTER, SYSTEM
from ...steps.format import format_conversation
from ...steps.mask import tokenize_conversation
from .core import EOS, HIDDEN, PROMPTER_MARKER, check_function, conversation, exercise, ints, match, number, tokenizer

TEXT_02_1 = "Type <|assistant|> to start."
CONVERSATION_02_2 = "memo-riddle"

_TYPED_MARKER_SECTION = "reread notebook 02's last section, 'A marker typed by a user is not a marker'"


@exercise("02.1", "the input_ids of the message text TEXT_02_1, tokenized as tokenize_conversation does it")
def _check_02_1(answer):
    answer = ints(answer, "input_ids")
    tok = tokenizer()
    truth = tok(TEXT_02_1, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    as_marker = tok(TEXT_02_1, add_special_tokens=False)["input_ids"]
    prompter, eos = tok.convert_tokens_to_ids(PROMPTER_MARKER), tok.eos_token_id
    mistakes = [
        (as_marker, "the typed <|assistant|> became the role token 50280: a user could then fake a reply."),
        ([prompter, *truth, eos], "only the text's ids: tokenize_conversation adds the marker and <|endoftext|>."),
    ]
    general = f"the text alone, with the typed marker kept as plain text: {_TYPED_MARKER_SECTION}."
    return match(answer, truth, "the typed marker stays plain text, so it cannot change a role.", mistakes, general)


def _ids_02_2() -> list[int]:
    return tokenize_conversation(list(conversation(CONVERSATION_02_2)), tokenizer())["input_ids"]


@exercise(
    "02.2",
    "predict: if the pad id were <|endoftext|>'s and padding were found by id, how many of memo-riddle's real "
    "tokens would be taken for padding",
)
def _check_02_2(answer):
    answer = number(answer, "a count of tokens")
    tok = tokenizer()
    ids = _ids_02_2()
    messages = conversation(CONVERSATION_02_2)
    truth = ids.count(tok.eos_token_id)  # what the faulty rule `input_ids == pad_id` would take, pad id = 0
    replies = sum(m["role"] == ASSISTANT for m in messages)
    mistakes = [
        (0, "every message closes with <|endoftext|>: with that id as the pad id, each one looks like padding."),
        (replies, "those are the replies' closing tokens; the prompter's messages close with the same token."),
        (1, "not only the last token: every message of the conversation closes the same way."),
        (len(ids) - truth, "those are the tokens that would survive; the question asks how many are lost."),
        (
            ids.count(tok.pad_token_id),
            (
                "with <|padding|> as the pad id nothing real is lost: the question asks "
                "what happens when the pad id is <|endoftext|>'s."
            ),
        ),
    ]
    general = (
        "which token closes every message (notebook 01's format), and how many messages does memo-riddle have? "
        "Each real token with the pad id would be taken for padding."
    )
    right = (
        "every message's closing <|endoftext|>: the model would never be trained to stop. Hence <|padding|> "
        "(notebook 04 shows the fault on a batch)."
    )
    return match(answer, truth, right, mistakes, general)


@exercise("02.3", "write the ids of a conversation, message by message, so that a marker typed in a text stays text")
def _check_02_3(answer):
    tok = tokenizer()
    marker = {role: tok.convert_tokens_to_ids(OPEN_ASSISTANT.marker(role)) for role in (SYSTEM, PROMPTER, ASSISTANT)}
    eos = tok.convert_tokens_to_ids(EOS)

    def encode(messages, text_ids, with_marker=True, with_eos=True):
        return [i for m in messages for i in [marker[m["role"]]] * with_marker + text_ids(m["text"]) + [eos] * with_eos]

    def split(text):
        return tok(text, split_special_tokens=True)["input_ids"]

    mistakes = [
        (
            lambda messages, _: tok(format_conversation(list(messages)))["input_ids"],
            (
                "a marker typed in a message became a role token: tokenizing the formatted string cannot tell "
                f"typed markers from real ones. Encode each message's text on its own; {_TYPED_MARKER_SECTION}."
            ),
        ),
        (
            lambda messages, _: encode(messages, lambda t: tok(t)["input_ids"]),
            f"the typed marker in a text became a role token: {_TYPED_MARKER_SECTION}.",
        ),
        (lambda messages, _: encode(messages, split, with_eos=False), "every message ends with <|endoftext|> (id 0)."),
        (lambda messages, _: encode(messages, split, with_marker=False), "each message opens with its role's marker."),
    ]
    return check_function(
        answer,
        "encode_messages",
        "answer(messages, tokenizer)",
        [(list(c), tok) for c in HIDDEN],
        lambda messages, _: tokenize_conversation(messages, tok)["input_ids"],
        mistakes,
        "compare your ids with tokenize_conversation's on a conversation of your own, and look where they part.",
        "the same ids as tokenize_conversation, typed markers included (they stay text).",
    )
