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
        chat_format: markers, end token and which parts of a reply are trained (:mod:`sft_utils.chat_format`;
            the tokenizer must hold its tokens: ``load_tokenizer(chat_format=…)``).

    Returns:
        dict of Python lists, all of length T (tokens):
        ``input_ids`` (int), ``attention_mask`` (int, all 1), ``message_indices`` (int, index into the
        normalised messages, the system message counting as message 0 when present) and
        ``label_mask`` (bool, True on assistant tokens).

    Raises:
        ConversationError: invalid messages (see ``normalize_messages``), or a conversation with no
            assistant message (nothing to train; a prompt for generation goes to
            :func:`generation_prompt_ids`).
        ValueError: ``max_length`` not an int >= 1, or a tokenizer without the role tokens.
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
    input_ids, message_indices, label_mask = _message_ids(normalized, tokenizer, chat_format)

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


def _message_ids(normalized: list[dict], tokenizer, chat_format: ChatFormat) -> tuple[list, list, list]:
    """(input_ids, message_indices, label_mask) of validated messages, built message by message."""
    marker_ids = {role: token_id(tokenizer, marker) for role, marker in chat_format.role_markers.items()}
    end_id = token_id(tokenizer, chat_format.end_of_message)
    # One batched call for all texts; split_special_tokens keeps a typed marker as plain text.
    texts_ids = tokenizer([m["text"] for m in normalized], add_special_tokens=False, split_special_tokens=True)[
        "input_ids"
    ]

    input_ids, message_indices, label_mask = [], [], []
    for index, (message, text_ids) in enumerate(zip(normalized, texts_ids)):
        ids = [marker_ids[message["role"]], *text_ids, end_id]
        input_ids += ids
        message_indices += [index] * len(ids)
        is_reply = message["role"] == ASSISTANT
        label_mask += chat_format.reply_mask(len(text_ids)) if is_reply else [False] * len(ids)
    return input_ids, message_indices, label_mask


def generation_prompt_ids(
    messages, tokenizer, *, system: str | None = None, conversation_id=None, chat_format: ChatFormat = OPEN_ASSISTANT
) -> list[int]:
    """Token ids of a prompt for generation: the conversation's ids, then ``<|assistant|>`` (50280).

    Introduced in notebook 08_finetune_pythia. Built like :func:`tokenize_conversation`, so a marker typed
    in the text stays text (``tokenizer(format_conversation(…, add_generation_prompt=True))`` would turn
    it into a role token). Returns a list of int of length T + 1.

    Raises ConversationError when the last message is not the prompter's (see ``normalize_messages``), TypeError
    for a ``tokenizer`` or ``chat_format`` of the wrong kind (as :func:`tokenize_conversation`).
    """
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    normalized = normalize_messages(messages, system=system, conversation_id=conversation_id)
    if normalized[-1]["role"] != PROMPTER:
        raise ConversationError(
            f"{conversation_name(conversation_id)}: a generation prompt must end with the prompter, not the "
            f"{normalized[-1]['role']}"
        )
    ids = _message_ids(normalized, tokenizer, chat_format)[0]
    return ids + [token_id(tokenizer, chat_format.marker(ASSISTANT))]


def token_id(tokenizer, token: str) -> int:
    """The id of ``token``; ValueError when the tokenizer lacks it (load it with ``sft_utils.load_tokenizer``),
    TypeError for a ``tokenizer`` that is not a tokenizer object or a ``token`` that is not a str."""
    check_tokenizer(tokenizer)
    if not isinstance(token, str):
        raise TypeError(f"token must be a str such as a role marker, got {type(token).__name__}")
    token_id = tokenizer.convert_tokens_to_ids(token)
    # An unknown token maps to the unk id (0, which is also <|endoftext|> in Pythia).
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(
            f"tokenizer has no {token!r} token; load it with sft_utils.load_tokenizer(chat_format=…) "
            "for the chat format you use"
        )
    return token_id
