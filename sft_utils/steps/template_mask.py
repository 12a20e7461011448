"""Memo step 3 for any chat template: the assistant mask found by rendering growing prefixes of a conversation.

Many templates carry no ``{% generation %}`` block, so ``apply_chat_template(…, return_assistant_tokens_mask=True)``
cannot say which tokens are the assistant's. Rendering works with every template:

1. render the first k messages, for every k (``apply_chat_template(…, tokenize=False)``);
2. each rendering must start with the one before it (the template is *prefix-stable*); a template that
   rewrites earlier messages when a later one arrives (some do, for system prompts or date lines) is refused;
3. an assistant reply is what its message adds after the generation prompt (the header that opens a reply,
   ``add_generation_prompt=True``), or, with ``include_header=True``, after the previous messages, less a
   ``footer`` the template writes after every message's end token (ChatML's newline), when one is named;
4. the full rendering is tokenized once, and a token is trained when its first character lies in a reply.

Like ``apply_chat_template``, this tokenizes the rendered text, so a marker typed inside a message becomes a
special token (``tokenize_conversation`` keeps it as text).
"""

from __future__ import annotations

import re

from .format import ConversationError, ConversationTypeError, check_message_list, conversation_name
from .tokenize import check_tokenizer

# A {% generation %} or {% endgeneration %} tag, with or without whitespace control ({%- … -%}); a Jinja comment.
_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)


def without_generation_blocks(chat_template: str) -> str:
    """``chat_template`` as most model repositories ship theirs: its ``{% generation %}`` / ``{% endgeneration %}``
    tags removed (what they enclose kept), and its Jinja comments too (so that no comment still names the tag,
    which TRL's check for generation blocks would take for one). Renders the same strings. Raises TypeError for a
    template that is not a str."""
    if not isinstance(chat_template, str):
        raise TypeError(f"chat_template must be a str (a Jinja template), got {type(chat_template).__name__}")
    return _GENERATION_TAG.sub("", _COMMENT.sub("", chat_template))


def _render(tokenizer, messages, chat_template, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt, chat_template=chat_template
    )


def check_template_messages(messages, conversation_id=None) -> None:
    """Raise unless ``messages`` is a non-empty list of ``{"role": str, "content": str}`` dicts (the form chat
    templates read): ConversationTypeError (also a TypeError) for the wrong kind, ConversationError for a missing
    key, each naming the conversation and the message."""
    check_message_list(messages, conversation_id)
    if not messages:
        raise ConversationError(f"{conversation_name(conversation_id)}: no messages")
    for i, message in enumerate(messages):
        where = conversation_name(conversation_id, i)
        if "role" not in message or "content" not in message:
            raise ConversationError(
                f"{where}: expected 'role' and 'content' (the form chat templates read), got keys {sorted(message)}"
            )
        for key in ("role", "content"):
            if not isinstance(message[key], str):
                raise ConversationTypeError(f"{where}: {key} must be a str, got {type(message[key]).__name__}")


def reply_spans(
    messages, tokenizer, *, chat_template=None, include_header: bool = False, footer: str = "", conversation_id=None
):
    """(full rendering, [(start, end) character span of each assistant reply]) of ``messages`` (the ecosystem's
    ``{"role", "content"}`` form) under ``chat_template`` (default: the tokenizer's own); ``footer`` (a str) is
    left out of the end of each reply.

    Raises ConversationError naming the conversation and the message whose arrival changes how the earlier
    messages render (the template is not prefix-stable), whose reply does not start with the generation
    prompt, or does not end with ``footer``; raises as :func:`check_template_messages` for messages of the wrong
    kind, and TypeError for a ``tokenizer`` that is not a tokenizer object or a ``footer`` that is not a str.
    """
    check_template_messages(messages, conversation_id)
    check_tokenizer(tokenizer)
    if not isinstance(footer, str):
        raise TypeError(f"footer must be a str ('' for none), got {type(footer).__name__}")
    spans, previous = [], ""
    for k in range(1, len(messages) + 1):
        text = _render(tokenizer, messages[:k], chat_template)
        where = conversation_name(conversation_id, k - 1)
        if not text.startswith(previous):
            raise ConversationError(
                f"{where}: the template is not prefix-stable: adding this message changes how the earlier ones "
                "render, so no reply can be found by rendering growing prefixes"
            )
        if messages[k - 1]["role"] == "assistant":
            start = len(previous)
            if not include_header:
                prompt = _render(tokenizer, messages[: k - 1], chat_template, generation_prompt=True)
                if not text.startswith(prompt):
                    raise ConversationError(f"{where}: the reply does not start with the template's generation prompt")
                start = len(prompt)
            if not text.endswith(footer) or len(text) - len(footer) < start:
                raise ConversationError(f"{where}: the reply does not end with the footer {footer!r}")
            spans.append((start, len(text) - len(footer)))
        previous = text
    return previous, spans


def mask_from_template(
    messages, tokenizer, *, chat_template=None, include_header: bool = False, footer: str = "", conversation_id=None
):
    """``input_ids`` and ``label_mask`` (lists, one per token) of ``messages`` rendered by a chat template, the mask
    found by :func:`reply_spans`: True on each reply's tokens (and on its header with ``include_header=True``),
    its closing end token included when the template writes it inside the reply, the ``footer`` after it not
    (``chat_format.footer`` of a format that does not train it: ChatML's ``"\\n"``).

    Equal to ``apply_chat_template(…, return_assistant_tokens_mask=True)`` for a template whose
    ``{% generation %}`` block holds exactly the reply after its header (``include_header=False``) or the
    header too (``include_header=True``), up to the footer. Raises as :func:`reply_spans`.
    """
    text, spans = reply_spans(
        messages,
        tokenizer,
        chat_template=chat_template,
        include_header=include_header,
        footer=footer,
        conversation_id=conversation_id,
    )
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    label_mask = [any(s <= start < e for s, e in spans) for start, _ in encoding["offset_mapping"]]
    return {"input_ids": encoding["input_ids"], "label_mask": label_mask}
