"""Step 3 of the memo: tokens, the message each token belongs to, and the label mask.

Introduced in notebook 03_mask.

For every token we record the index of its message (``message_indices``) and whether it is trained
(``label_mask``: True on every token of an assistant message, i.e. its ``<|assistant|>`` marker, its
text and its closing ``<|endoftext|>``). The memo's picture, one column per token::

    TEXT:             <|prompter|> Hello ,  how … <|endoftext|> <|assistant|> I  am … <|endoftext|>
    MESSAGE_INDICES:  0            0     0  0       0           1             1  1      1
    LABEL_MASK:       0            0     0  0       0           1             1  1      1

How ids are built: each message's text is tokenized on its own with ``split_special_tokens=True``, and
the marker and ``<|endoftext|>`` ids are put around it. So only markers that the formatter inserts
become role ids; a user who writes ``<|assistant|>`` gets plain-text tokens. For text without such
literals the ids equal ``tokenizer(format_conversation(messages))`` exactly (a test checks it),
because the special tokens already cut the string at every message boundary.

A format whose header goes on with text after its marker (ChatML's ``<|im_start|>assistant\\n``) is built the
same way, piece by piece: prefix, header, text, end of message, footer, each tokenized apart, so that no token
spans a header and a text. A header's ids are those it has in front of a text that starts with a visible
character (see :mod:`sft_utils.chat_format`); a text that starts with whitespace may tokenize differently
in one rendered string, where the tokenizer's pre-split looks across the boundary.
"""

from __future__ import annotations

import warnings

from ..chat_format import ASSISTANT, OPEN_ASSISTANT, PROMPTER, ChatFormat, check_chat_format
from .format import ConversationError, conversation_name, normalize_messages
from .tokenize import check_tokenizer


def require_reply(normalized: list[dict], conversation_id=None) -> list[dict]:
    """``normalized`` unchanged; raises ConversationError naming the conversation when it has no assistant
    message (nothing to train). Shared by every route from messages to a label mask."""
    if not any(m["role"] == ASSISTANT for m in normalized):
        raise ConversationError(
            f"{conversation_name(conversation_id)}: no assistant message, so nothing to train "
            "(for a prompt to generate from, use generation_prompt_ids)"
        )
    return normalized


def check_max_length(max_length) -> None:
    """Raise ValueError unless ``max_length`` is None or an int >= 1 (tokens). Every route that truncates
    (this module, ``sft_utils.scale.preprocess``, ``sft_utils.viz``) checks it here."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be an int >= 1 (tokens), got {max_length!r}")


def warn_no_trained_target(conversation_id, max_length: int, *, stacklevel: int) -> None:
    """The one warning for an example that truncation left with no trained target (``stacklevel`` as the
    caller's own ``warnings.warn`` would take it)."""
    where = conversation_name(conversation_id)
    warnings.warn(
        f"{where}: truncation to max_length={max_length} tokens left no trained token", stacklevel=stacklevel + 1
    )


def tokenize_conversation(
    messages,
    tokenizer,
    *,
    max_length: int | None = None,
    system: str | None = None,
    conversation_id=None,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> dict:
    """Memo steps 2-3: token ids, attention mask, message index and label mask of one conversation.

    Args:
        messages: list of ``{"role", "text"}`` / ``{"role", "content"}`` dicts (see
            :func:`sft_utils.steps.format.normalize_messages`).
        tokenizer: from :func:`sft_utils.load_tokenizer` (needs the role tokens).
        max_length: keep the first ``max_length`` tokens (right truncation; the policy is below).
        system: optional system prompt, as in :func:`sft_utils.format_conversation`.
        conversation_id: named in errors and warnings.
        chat_format: prefix, headers, end token, footer and which parts of a reply are trained
            (:mod:`sft_utils.chat_format`; the tokenizer must hold its tokens: ``load_tokenizer(chat_format=…)``).

    Returns:
        dict of Python lists, all of length T (tokens):
        ``input_ids`` (int), ``attention_mask`` (int, all 1), ``message_indices`` (int, index into the
        normalised messages, the system message counting as message 0 when present, and the format's prefix
        as message 0's) and ``label_mask`` (bool, True on the tokens of each reply that the format trains).

    Raises:
        ConversationError: invalid messages (see ``normalize_messages``), or a conversation with no
            assistant message (nothing to train; a prompt for generation goes to
            :func:`generation_prompt_ids`).
        ValueError: ``max_length`` not an int >= 1; a tokenizer without one of the format's tokens (naming the
            conversation, the message that needs it, the token and the ``load_tokenizer`` call); a format whose
            header would share a token with the text after it.
        TypeError: a ``tokenizer`` that is not a tokenizer object (a name: load it first), or a ``chat_format``
            that is not a ChatFormat. Messages of the wrong kind raise ConversationTypeError, a ConversationError
            that is also a TypeError.

    Truncation policy (``max_length``): the first ``max_length`` tokens are kept, whatever they are.
    Whole leading messages survive; the message that straddles the cut keeps its head; later messages
    are dropped. A cut assistant reply keeps its surviving tokens trained (they are the reply's real
    text), but loses its closing ``<|endoftext|>``, so it teaches nothing about stopping. When no
    trained *target* is left (position 0 is never a target), a ``UserWarning`` names the conversation;
    :func:`sft_utils.scale.truncation.truncation_report` counts such examples over a data set, and
    :func:`sft_utils.scale.truncation.tokenize_conversations` can drop them.

    Pythia's tokenizer normalises text to Unicode NFC first, so decoding the ids gives back the NFC
    form of each text (``"e\u0301"`` comes back as ``"é"``); the mask is unaffected.
    """
    check_max_length(max_length)
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    normalized = require_reply(
        normalize_messages(messages, system=system, conversation_id=conversation_id), conversation_id
    )
    input_ids, message_indices, label_mask = _message_ids(normalized, tokenizer, chat_format, conversation_id)

    if max_length is not None and len(input_ids) > max_length:
        input_ids, message_indices, label_mask = (x[:max_length] for x in (input_ids, message_indices, label_mask))
        # Position 0 is never a target after the shift, so it does not count as trained.
        if not any(label_mask[1:]):
            warn_no_trained_target(conversation_id, max_length, stacklevel=2)
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "message_indices": message_indices,
        "label_mask": label_mask,
    }


def _message_ids(
    normalized: list[dict], tokenizer, chat_format: ChatFormat, conversation_id=None
) -> tuple[list, list, list]:
    """(input_ids, message_indices, label_mask) of validated messages, built piece by piece: the format's
    prefix (message 0's, untrained), then per message its header, text, end of message and footer."""
    # One batched call for all texts; split_special_tokens keeps a typed marker as plain text.
    texts_ids = tokenizer([m["text"] for m in normalized], add_special_tokens=False, split_special_tokens=True)[
        "input_ids"
    ]
    input_ids = written_ids(tokenizer, chat_format, chat_format.prefix, where=conversation_name(conversation_id))
    message_indices, label_mask = [0] * len(input_ids), [False] * len(input_ids)
    headers, closing = {}, None  # looked up when a message first needs them, so that errors name it
    for index, (message, text_ids) in enumerate(zip(normalized, texts_ids)):
        role, where = message["role"], conversation_name(conversation_id, index)
        if role not in headers:
            headers[role] = header_ids(tokenizer, chat_format, role, where=where)
        if closing is None:
            end = token_id(tokenizer, chat_format.end_of_message, chat_format=chat_format, where=where)
            closing = [end, *written_ids(tokenizer, chat_format, chat_format.footer, where=where)]
        ids = [*headers[role], *text_ids, *closing]
        input_ids += ids
        message_indices += [index] * len(ids)
        if role == ASSISTANT:
            label_mask += chat_format.reply_mask(len(text_ids), len(headers[role]), len(closing) - 1)
        else:
            label_mask += [False] * len(ids)
    return input_ids, message_indices, label_mask


# Follows a header when its ids are looked up: a visible character that starts a pre-token of its own after
# whitespace or a special token, as a message's first character does.
_TEXT_START = "x"


def header_ids(tokenizer, chat_format: ChatFormat, role: str, *, where: str = "conversation") -> list[int]:
    """Token ids of ``role``'s header (``chat_format.marker(role)``), as it tokenizes in front of a message's text.

    A header that is one special token (Open-Assistant's) is that token's id. Otherwise the header is tokenized
    followed by a visible character, which is then dropped: the header's ids inside any rendered conversation
    whose text starts with a visible character (on Pythia's BPE, Llama 3's ``\\n\\n`` there is 187 187, where
    alone it would be 535). Raises ValueError, naming ``where``, for a special token of the format that the
    tokenizer lacks, or a header whose last characters the tokenizer joins with a text's first into one token
    (a header that ends in a letter or a space).
    """
    header = chat_format.marker(role)
    if header in chat_format.special_tokens:
        return written_ids(tokenizer, chat_format, header, where=where)
    check_special_tokens(tokenizer, chat_format, header, where=where)
    encoding = tokenizer(header + _TEXT_START, add_special_tokens=False, return_offsets_mapping=True)
    if tuple(encoding["offset_mapping"][-1]) != (len(header), len(header) + 1):
        raise ValueError(
            f"{where}: chat format {chat_format.name!r}: its {role} header {header!r} would share a token with the "
            "text after it; end a header with a special token or a newline"
        )
    return encoding["input_ids"][:-1]


def written_ids(tokenizer, chat_format: ChatFormat, written: str, *, where: str = "conversation") -> list[int]:
    """Token ids of a string the format writes before or after a text (prefix, footer, a one-token header),
    tokenized alone: its special tokens by their ids, the text between them as the tokenizer splits it. Raises
    ValueError as :func:`check_special_tokens`."""
    if not written:
        return []
    check_special_tokens(tokenizer, chat_format, written, where=where)
    if written in chat_format.special_tokens:
        return [token_id(tokenizer, written)]
    return tokenizer(written, add_special_tokens=False)["input_ids"]


def check_special_tokens(tokenizer, chat_format: ChatFormat, written: str, *, where: str) -> None:
    """Raise ValueError, naming ``where``, the token and the ``load_tokenizer`` call, when ``written`` holds one of
    the format's special tokens that the tokenizer lacks (it would silently become text)."""
    for piece in chat_format.pieces(written):
        if piece in chat_format.special_tokens:
            token_id(tokenizer, piece, chat_format=chat_format, where=where)


def generation_prompt_ids(
    messages, tokenizer, *, system: str | None = None, conversation_id=None, chat_format: ChatFormat = OPEN_ASSISTANT
) -> list[int]:
    """Token ids of a prompt for generation: the conversation's ids, then the assistant's header
    (``<|assistant|>``, 50280; ChatML's ``<|im_start|>assistant\\n``, 4 tokens, see :func:`header_ids`).

    Introduced in notebook 08_finetune_pythia. Built like :func:`tokenize_conversation`, so a marker typed
    in the text stays text (``tokenizer(format_conversation(…, add_generation_prompt=True))`` would turn
    it into a role token), and the header has the ids a reply's header has in training. Returns a list of int
    of length T + H (H = 1 in Open-Assistant's format).

    Raises ConversationError when the last message is not the prompter's (see ``normalize_messages``), and
    ValueError as :func:`tokenize_conversation` for a tokenizer without the format's tokens; TypeError
    for a ``tokenizer`` or ``chat_format`` of the wrong kind.
    """
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    normalized = normalize_messages(messages, system=system, conversation_id=conversation_id)
    if normalized[-1]["role"] != PROMPTER:
        raise ConversationError(
            f"{conversation_name(conversation_id)}: a generation prompt must end with the prompter, not the "
            f"{normalized[-1]['role']}"
        )
    ids = _message_ids(normalized, tokenizer, chat_format, conversation_id)[0]
    return ids + header_ids(tokenizer, chat_format, ASSISTANT, where=conversation_name(conversation_id))


def token_id(tokenizer, token: str, *, chat_format: ChatFormat | None = None, where: str | None = None) -> int:
    """The id of ``token``; ValueError when the tokenizer lacks it (load it with ``sft_utils.load_tokenizer``),
    naming ``where`` (a conversation and message) and the call for ``chat_format`` when given; TypeError for a
    ``tokenizer`` that is not a tokenizer object or a ``token`` that is not a str."""
    check_tokenizer(tokenizer)
    if not isinstance(token, str):
        raise TypeError(f"token must be a str such as a role marker, got {type(token).__name__}")
    token_id = tokenizer.convert_tokens_to_ids(token)
    # An unknown token maps to the unk id (0, which is also <|endoftext|> in Pythia).
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        place = f"{where}: " if where else ""
        if chat_format is None:
            hint = "sft_utils.load_tokenizer(chat_format=…) for the chat format you use"
        else:
            hint = f"{chat_format.load_hint()} (chat format {chat_format.name!r})"
        raise ValueError(f"{place}tokenizer has no {token!r} token; load it with {hint}")
    return token_id
