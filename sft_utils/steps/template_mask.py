"""Memo step 3 for any chat template: the assistant mask found by rendering prefixes of a conversation.

Introduced in notebook 06b_chat_templates. Many templates carry no ``{% generation %}`` block, so
``apply_chat_template(…, return_assistant_tokens_mask=True)`` cannot say which tokens are the assistant's.
Rendering works with every template. For each assistant reply (message k), and only the prefixes it needs:

1. where it starts: the first k messages rendered with the generation prompt (the header that opens a reply,
   ``add_generation_prompt=True``); with ``include_header=True``, the first k messages without it (so the header
   is trained too);
2. where it ends: the first k + 1 messages rendered. When the template ends the last message of a rendering
   differently (an end token or end of text it writes only after the very last message: Phi-3's
   ``<|endoftext|>``, GPT-OSS's ``<|return|>``), the first k + 1 messages are rendered with the generation
   prompt instead, and the reply ends where that prompt begins;
3. each of these renderings must be the start of the full conversation's rendering (the template is
   *prefix-stable* where it matters); a template that rewrites a reply once a later message arrives (Qwen3's
   drops an earlier reply's ``<think>`` block) is refused. Prefixes that end at a user or system message are
   rendered only where a reply needs them, so a template that refuses such a prefix on its own ("No user query
   found") still masks the full conversation;
4. a ``footer`` the template writes after every message's end token (ChatML's newline) is left out, when one is
   named; each reply's own text must lie inside its span, and every message's text must appear in the rendering
   (a template that drops a role it does not know is refused, never trusted);
5. the full rendering is tokenized once, and a token is trained when any of its characters lies in a reply.

**Tokens at a boundary.** Byte-level BPE may merge the header's last characters with a reply's first ones
(``[/INST]`` then ``-`` gives ``]-``), or a reply's last characters with what follows. Such a token carries
reply text, so it is trained, as TRL's ``assistant_only_loss`` and transformers' assistant mask train it: the
model then learns to write the header's last character(s) together with the reply's first ones, while at
generation time the prompt already ends with them (the prompt/reply split it never saw in training).
:func:`template_mask_details` reports each such token.

Like ``apply_chat_template``, this tokenizes the rendered text, so a marker typed inside a message becomes a
special token (``tokenize_conversation`` keeps it as text). Every failure (the template's own ``raise_exception``,
a conversation it cannot render, a rewritten prefix) is a ConversationError naming the conversation and the
message, with the template's own words quoted.
"""

from __future__ import annotations

import re

from ..chat_format import ASSISTANT, PROMPTER, SYSTEM
from .format import ConversationError, ConversationTypeError, check_message_list, conversation_name, is_blank
from .mask import require_reply
from .tokenize import check_tokenizer

# A {% generation %} or {% endgeneration %} tag, with or without whitespace control ({%- … -%}); a Jinja comment.
_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)

USER = "user"
TEMPLATE_ROLES = (SYSTEM, USER, ASSISTANT)  # the roles every chat template knows; the course's prompter is a user


def without_generation_blocks(chat_template: str) -> str:
    """``chat_template`` as most model repositories ship theirs: its ``{% generation %}`` / ``{% endgeneration %}``
    tags removed (what they enclose kept), and its Jinja comments too (so that no comment still names the tag,
    which TRL's check for generation blocks would take for one). Renders the same strings. Raises TypeError for a
    template that is not a str."""
    if not isinstance(chat_template, str):
        raise TypeError(f"chat_template must be a str (a Jinja template), got {type(chat_template).__name__}")
    return _GENERATION_TAG.sub("", _COMMENT.sub("", chat_template))


def template_messages(messages, conversation_id=None) -> list[dict]:
    """``messages`` as the chat template will see them: new ``{"role", "content"}`` dicts, the course's role
    ``prompter`` written ``user`` (the name every template knows; left as it is, most templates would skip it).

    Raises ConversationTypeError (also a TypeError) for messages of the wrong kind, ConversationError for no
    messages, a missing key, a role other than system, user (or prompter) and assistant, or a blank text (as
    :func:`sft_utils.format_conversation` refuses it); each names the conversation and the message.
    """
    check_message_list(messages, conversation_id)
    if not messages:
        raise ConversationError(f"{conversation_name(conversation_id)}: no messages")
    seen = []
    for i, message in enumerate(messages):
        where = conversation_name(conversation_id, i)
        if "role" not in message or "content" not in message:
            raise ConversationError(
                f"{where}: expected 'role' and 'content' (the form chat templates read), got keys {sorted(message)}"
            )
        for key in ("role", "content"):
            if not isinstance(message[key], str):
                raise ConversationTypeError(f"{where}: {key} must be a str, got {type(message[key]).__name__}")
        role = USER if message["role"] == PROMPTER else message["role"]
        if role not in TEMPLATE_ROLES:
            raise ConversationError(
                f"{where}: role {message['role']!r} is not one a chat template is known to render "
                f"({', '.join(TEMPLATE_ROLES)}; the course's 'prompter' is read as 'user')"
            )
        if is_blank(message["content"]):
            raise ConversationError(f"{where}: the {role}'s text is blank ({message['content']!r}); nothing to render")
        seen.append({"role": role, "content": message["content"]})
    return seen


def check_template_messages(messages, conversation_id=None) -> None:
    """Raise as :func:`template_messages` unless ``messages`` is a non-empty list of ``{"role": str, "content": str}``
    dicts (the form chat templates read) with known roles and non-blank texts."""
    template_messages(messages, conversation_id)


def _render(tokenizer, messages, chat_template, where: str, purpose: str, generation_prompt: bool = False) -> str:
    """The rendering of ``messages``; a ConversationError quoting the template (or transformers) when it refuses."""
    try:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt, chat_template=chat_template
        )
    except Exception as error:  # a template's raise_exception, an undefined name, transformers' refusals
        raise ConversationError(
            f"{where}: the chat template refuses {purpose}: {type(error).__name__}: {error}"
        ) from error


def _refusing_message(tokenizer, messages, chat_template) -> int:
    """The message whose arrival makes the template refuse: the one after the longest prefix it renders."""
    for k in range(len(messages) - 1, 0, -1):
        try:
            tokenizer.apply_chat_template(messages[:k], tokenize=False, chat_template=chat_template)
        except Exception:  # noqa: BLE001, S112 - any refusal of a prefix: look at a shorter one
            continue
        return k
    return 0


def _full_rendering(tokenizer, messages, chat_template, conversation_id) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, chat_template=chat_template)
    except Exception as error:
        index = _refusing_message(tokenizer, messages, chat_template)
        raise ConversationError(
            f"{conversation_name(conversation_id, index)}: the chat template refuses the conversation from this "
            f"message on (role {messages[index]['role']!r}): {type(error).__name__}: {error}"
        ) from error


def _before(k: int, prompt: bool = False) -> str:
    """What a rendering of the messages before reply k is, in an error message."""
    if k == 0:
        return "the empty conversation before this reply (the conversation opens with the assistant)"
    return "the generation prompt before this reply" if prompt else "the messages before this reply on their own"


def _reply_start(tokenizer, messages, k, full, chat_template, include_header, where) -> int:
    """Where reply k starts in ``full``: after the generation prompt (or, with the header, the previous message)."""
    if not include_header:
        prompt = _render(tokenizer, messages[:k], chat_template, where, _before(k, prompt=True), generation_prompt=True)
        if full.startswith(prompt):
            return len(prompt)
    before = _render(tokenizer, messages[:k], chat_template, where, _before(k))
    if include_header and full.startswith(before):
        return len(before)
    if include_header:
        # Phi-3 writes <|endoftext|> after the last message only: the messages end where the prompt would begin.
        prompt = _render(tokenizer, messages[:k], chat_template, where, _before(k, prompt=True), generation_prompt=True)
        shared = _shared_start(tokenizer, before, prompt)
        if shared and full.startswith(prompt):
            return shared
    elif prompt.startswith(before) and full.startswith(before):
        header = prompt[len(before) :]
        written = full[len(before) : len(before) + len(header) + 12]
        raise ConversationError(
            f"{where}: the template's generation prompt {header!r} is not how it opens this reply ({written!r}…): "
            "the prompt ends inside the reply's scaffolding (a <think> block, say), so the reply cannot be told "
            "from its header; include_header=True finds it (the header is then trained too)"
        )
    raise ConversationError(
        f"{where}: the template is not prefix-stable: the messages before this reply render differently once it "
        "arrives, so where the reply starts cannot be found"
    )


def _reply_end(tokenizer, messages, k, full, chat_template, where) -> int:
    """Where reply k ends in ``full`` (k is not the last message)."""
    upto = _render(tokenizer, messages[: k + 1], chat_template, where, "the conversation that ends with this reply")
    if full.startswith(upto):
        return len(upto)
    # Some templates end the last message differently (an end of text, GPT-OSS's <|return|>): what the same messages
    # render with a generation prompt after them shows how the reply ends when more follows.
    before = _render(tokenizer, messages[:k], chat_template, where, "the messages before this reply on their own")
    prompted = _render(
        tokenizer, messages[:k], chat_template, where, "the generation prompt before this reply", generation_prompt=True
    )
    followed = _render(
        tokenizer,
        messages[: k + 1],
        chat_template,
        where,
        "a generation prompt after this reply",
        generation_prompt=True,
    )
    header = prompted[_shared_start(tokenizer, before, prompted) :]
    if header and followed.endswith(header) and full.startswith(followed[: -len(header)]):
        return len(followed) - len(header)
    raise ConversationError(
        f"{where}: the template is not prefix-stable: the arrival of message {k + 1} changes how this reply "
        "renders (it rewrites the reply itself, not only what it writes after the last message), so no reply can "
        "be found by rendering prefixes"
    )


def _shared_start(tokenizer, a: str, b: str) -> int:
    """How much of ``a`` starts ``b`` too, in whole tokens: a template that writes an end of text after the last
    message (``…<|end|>\n<|endoftext|>``) or a generation prompt (``…<|end|>\n<|assistant|>\n``) shares the
    characters ``<|`` of two different special tokens, never a token."""
    if b.startswith(a):
        return len(a)
    shared = 0
    ids_a = tokenizer(a, add_special_tokens=False, return_offsets_mapping=True)
    ids_b = tokenizer(b, add_special_tokens=False, return_offsets_mapping=True)["input_ids"]
    for i, (x, y) in enumerate(zip(ids_a["input_ids"], ids_b)):
        if x != y:
            return shared
        shared = ids_a["offset_mapping"][i][1]
    return shared


def _check_texts(messages, full, spans, conversation_id) -> None:
    """Raise unless every message's text appears in ``full`` (in order) and each reply's inside its span."""
    position, replies = 0, iter(spans)
    for i, message in enumerate(messages):
        text = message["content"].strip()
        where = conversation_name(conversation_id, i)
        if message["role"] == ASSISTANT:
            start, end = next(replies)
            if text not in full[start:end]:
                raise ConversationError(
                    f"{where}: the reply's text is not inside the span the template gives it ({full[start:end]!r}): "
                    "the template rewrites replies (drops a <think> block, say), so its mask cannot be trusted"
                )
            position = max(position, start)
            continue
        found = full.find(text, position)
        if found < 0:
            raise ConversationError(
                f"{where}: the template does not write this {message['role']} message's text: it drops or rewrites "
                "it, so the mask would be that of another conversation"
            )
        position = found + len(text)


def reply_spans(
    messages, tokenizer, *, chat_template=None, include_header: bool = False, footer: str = "", conversation_id=None
):
    """(full rendering, [(start, end) character span of each assistant reply]) of ``messages`` (the ecosystem's
    ``{"role", "content"}`` form, the course's ``prompter`` read as ``user``) under ``chat_template`` (default: the
    tokenizer's own); ``footer`` (a str) is left out of the end of each reply. See the module's steps.

    Raises ConversationError naming the conversation and the message: a conversation without an assistant message
    (as :func:`sft_utils.tokenize_conversation`), a template that refuses the conversation or a prefix a reply needs
    (its message quoted), a reply rewritten once a later message arrives (not prefix-stable), a generation prompt
    that ends inside the reply's scaffolding (the message names ``include_header=True``), a reply that does not end
    with ``footer``, a message whose text the template drops; raises as :func:`template_messages` for messages of
    the wrong kind, and TypeError for a ``tokenizer`` that is not a tokenizer object or a ``footer`` not a str.
    """
    check_message_list(messages, conversation_id)
    check_tokenizer(tokenizer)
    if not isinstance(footer, str):
        raise TypeError(f"footer must be a str ('' for none), got {type(footer).__name__}")
    messages = template_messages(messages, conversation_id)
    require_reply(messages, conversation_id)
    full = _full_rendering(tokenizer, messages, chat_template, conversation_id)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != ASSISTANT:
            continue
        where = conversation_name(conversation_id, k)
        start = _reply_start(tokenizer, messages, k, full, chat_template, include_header, where)
        end = len(full) if k == len(messages) - 1 else _reply_end(tokenizer, messages, k, full, chat_template, where)
        if not full[start:end].endswith(footer) or end - len(footer) < start:
            raise ConversationError(f"{where}: the reply does not end with the footer {footer!r}")
        spans.append((start, end - len(footer)))
    _check_texts(messages, full, spans, conversation_id)
    return full, spans


def template_mask_details(
    messages, tokenizer, *, chat_template=None, include_header: bool = False, footer: str = "", conversation_id=None
) -> dict:
    """What :func:`mask_from_template` computes, with what it read: a dict of

    - ``input_ids``, ``label_mask``: as :func:`mask_from_template` (lists, one per token);
    - ``text``: the full rendering (str); ``spans``: each reply's ``(start, end)`` character span in it;
    - ``offsets``: each token's ``(start, end)`` characters in ``text``;
    - ``straddles``: per token (bool), True on a trained token that crosses the edge of a reply's span (a BPE merge
      of a header's last characters with the reply's first ones, or of the reply's last ones with what follows):
      trained for the reply characters it carries, it also trains the characters outside the reply.

    Raises as :func:`reply_spans`.
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
    offsets = [tuple(o) for o in encoding["offset_mapping"]]
    label_mask, straddles = [], []
    for s, e in offsets:
        e = max(e, s + 1)  # a token with no characters of its own counts where it stands
        hit = [(a, b) for a, b in spans if s < b and e > a]
        label_mask.append(bool(hit))
        straddles.append(any(s < a or e > b for a, b in hit))
    return {
        "input_ids": list(encoding["input_ids"]),
        "label_mask": label_mask,
        "text": text,
        "spans": spans,
        "offsets": offsets,
        "straddles": straddles,
    }


def mask_from_template(
    messages, tokenizer, *, chat_template=None, include_header: bool = False, footer: str = "", conversation_id=None
):
    """``input_ids`` and ``label_mask`` (lists, one per token) of ``messages`` rendered by a chat template, the mask
    found by :func:`reply_spans`: True on each token that carries a reply's characters (and its header's with
    ``include_header=True``), its closing end token included when the template writes it inside the reply, the
    ``footer`` after it not (``chat_format.footer`` of a format that does not train it: ChatML's ``"\\n"``). A token
    that a BPE merge spreads over a reply's edge is trained (see the module's docstring).

    Equal to ``apply_chat_template(…, return_assistant_tokens_mask=True)`` for a template whose
    ``{% generation %}`` block holds exactly the reply after its header (``include_header=False``) or the
    header too (``include_header=True``), up to the footer. Raises as :func:`reply_spans`.
    """
    details = template_mask_details(
        messages,
        tokenizer,
        chat_template=chat_template,
        include_header=include_header,
        footer=footer,
        conversation_id=conversation_id,
    )
    return {"input_ids": details["input_ids"], "label_mask": details["label_mask"]}
