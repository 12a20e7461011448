"""Step 1 of the memo: a conversation (a list of messages) becomes one string.

Introduced in notebook 01_format.

Open-Assistant's format puts a role marker before each message and one ``<|endoftext|>`` after it::

    <|system|>…<|endoftext|><|prompter|>…<|endoftext|><|assistant|>…<|endoftext|>…

Other formats (``chat_format=``: ChatML, Llama 3) write a header of several tokens, a footer or a prefix
(:mod:`sft_utils.chat_format`).

The string is what a person reads; the token ids of step 2 are built message by message from the
validated messages (see :mod:`sft_utils.steps.mask`), never by re-parsing this string, so that a user
who types ``<|assistant|>`` cannot change the role of later tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..chat_format import ASSISTANT, OPEN_ASSISTANT, PROMPTER, ROLE_ALIASES, SYSTEM, ChatFormat, check_chat_format

# Characters that print as nothing: a text made only of these and whitespace is empty to a reader.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def is_blank(text: str) -> bool:
    """True for a ``str`` a reader sees as empty: ``""``, whitespace (``str.strip``'s), and the zero-width
    characters U+200B, U+200C, U+200D, U+2060 and U+FEFF, in any mix. The formatter refuses such a message."""
    return not text.translate(_INVISIBLE).strip()


class ConversationError(ValueError):
    """A conversation that cannot be formatted or masked safely.

    The message names the conversation (when known) and the offending message, so a bad line in a
    10 000-line file can be found. Input of the wrong kind (a dict where the list of messages goes, a list
    where a message goes, a text that is not a str) raises :class:`ConversationTypeError`, which is both this
    and a ``TypeError``.
    """


class ConversationTypeError(ConversationError, TypeError):
    """A conversation, a message or a text of the wrong kind: caught by ``except ConversationError`` (and so by
    ``except ValueError``) and by ``except TypeError`` alike."""


def conversation_name(conversation_id, index=None) -> str:
    """How errors name a conversation: ``conversation 'id', message 3`` (or just ``conversation``)."""
    name = f"conversation {conversation_id!r}" if conversation_id is not None else "conversation"
    return name if index is None else f"{name}, message {index}"


def conversation_entry(conversation, index: int) -> tuple:
    """(name, messages) of item ``index`` of a list of conversations: its ``id`` (else its position) and its
    ``messages``. Raises ConversationTypeError naming the position for anything but a dict with ``messages``."""
    if not isinstance(conversation, Mapping) or "messages" not in conversation:
        is_dict = isinstance(conversation, Mapping)
        got = type(conversation).__name__ + (" without messages" if is_dict else "")
        if is_dict and "role" in conversation:
            got = "a message (a dict with 'role'); a list of conversations holds {'messages': [...]} dicts"
        elif isinstance(conversation, (list, tuple)):
            got += " (a bare list of messages: wrap it as {'messages': messages})"
        raise ConversationTypeError(
            f"conversation {index}: expected a dict with a 'messages' list (as load_conversations returns), got {got}"
        )
    return conversation.get("id", index), conversation["messages"]


def check_conversations(conversations, *, bare_lists: bool = False) -> list:
    """``conversations`` as a list, after checking that it is a list of conversations and not one conversation.

    The items themselves are checked where they are read (:func:`conversation_entry`, :func:`normalize_messages`).
    ``bare_lists``: the caller also takes bare message lists as conversations (the hint then says ``[messages]``).
    Raises TypeError for a dict (one conversation), a str, None or anything not iterable, and for a list of
    messages (one conversation's, where a list of conversations goes).
    """
    if isinstance(conversations, (str, bytes, Mapping)) or not isinstance(conversations, Iterable):
        got = "one dict" if isinstance(conversations, Mapping) else type(conversations).__name__
        raise TypeError(
            f"conversations must be a list of conversations, got {got}; for a single one, pass [conversation]"
        )
    conversations = list(conversations)
    if conversations and all(isinstance(c, Mapping) and "role" in c for c in conversations):
        one = "[messages]" if bare_lists else "[{'messages': messages}]"
        raise TypeError(f"conversations look like the messages of one conversation; pass {one}")
    return conversations


def check_message_list(messages, conversation_id=None) -> None:
    """Raise ConversationTypeError naming the conversation (and the message) unless ``messages`` is a list of
    dicts, saying what was given instead: a conversation dict, one message, a list of conversations."""
    name = conversation_name(conversation_id)
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        hint = ""
        if isinstance(messages, Mapping) and "messages" in messages:
            hint = " (a conversation dict: pass its ['messages'])"
        elif isinstance(messages, Mapping) and "role" in messages:
            hint = " (one message: pass a list of messages, [message])"
        raise ConversationTypeError(f"{name}: messages must be a list of dicts, got {type(messages).__name__}{hint}")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            hint = (
                " (a list of conversations? this takes one conversation's messages)"
                if isinstance(message, (list, tuple))
                else ""
            )
            raise ConversationTypeError(
                f"{conversation_name(conversation_id, i)}: expected a dict with 'role' and 'text', got "
                f"{type(message).__name__}{hint}"
            )
        if "messages" in message and "role" not in message:
            raise ConversationTypeError(
                f"{conversation_name(conversation_id, i)}: expected a message, got a conversation (a dict with "
                "'messages'); this takes one conversation's messages"
            )


def normalize_messages(messages, *, system: str | None = None, conversation_id=None) -> list[dict]:
    """Validate ``messages`` and return them as ``[{"role": "prompter"|"assistant"|"system", "text": str}]``.

    Accepts this course's form (``role`` in {prompter, assistant, system} with ``text``) and the
    ecosystem's chat form (``role`` in {user, assistant, system} with ``content``). ``system``, if
    given, becomes a first system message.

    Rules (each broken rule raises :class:`ConversationError` naming ``conversation_id`` and the
    message index): ``messages`` is a non-empty list of mappings; every role is known; every text is
    a ``str`` that is valid Unicode (no lone surrogate) and holds more than whitespace and zero-width
    characters; a system message may only come first (and not together
    with ``system=``); after it, roles alternate prompter, assistant, prompter, … starting with the
    prompter. A conversation may end on either role (ending on the prompter is a generation prompt).
    Input of the wrong kind (``messages`` not a list, a message not a dict, a text not a ``str``) raises
    :class:`ConversationTypeError`, a ConversationError that is also a TypeError.
    """
    check_message_list(messages, conversation_id)
    # (index named in errors, role, text); the system= argument is named "system=".
    entries: list[tuple] = [("system=", SYSTEM, system)] if system is not None else []
    for i, message in enumerate(messages):
        where = conversation_name(conversation_id, i)
        raw_role = message.get("role")
        role = ROLE_ALIASES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise ConversationError(f"{where}: unknown role {raw_role!r}; expected one of {sorted(ROLE_ALIASES)}")
        if ("text" in message) == ("content" in message):
            problem = "has both 'text' and 'content'" if "text" in message else "has no 'text' (or 'content') key"
            raise ConversationError(f"{where}: {problem}")
        entries.append((i, role, message["text"] if "text" in message else message["content"]))
    if not entries:
        raise ConversationError(f"{conversation_name(conversation_id)}: no messages")

    for position, (i, role, text) in enumerate(entries):
        where = conversation_name(conversation_id, i)
        if not isinstance(text, str):
            raise ConversationTypeError(f"{where}: text must be a str, got {type(text).__name__}")
        if is_blank(text):
            raise ConversationError(f"{where}: text is empty or whitespace only")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate such as "\ud800": not encodable, not tokenizable
            raise ConversationError(f"{where}: text is not valid Unicode ({e.reason} at character {e.start})") from None
        if role == SYSTEM and position != 0:
            detail = "given both system= and a system message" if system is not None else "is not the first message"
            raise ConversationError(f"{where}: system message {detail}")
    turns = entries[1:] if entries[0][1] == SYSTEM else entries
    for k, (i, role, _) in enumerate(turns):
        expected = PROMPTER if k % 2 == 0 else ASSISTANT
        if role != expected:
            where = conversation_name(conversation_id, i)
            raise ConversationError(
                f"{where}: expected role {expected!r} (roles alternate, prompter first), got {role!r}"
            )
    return [{"role": role, "text": text} for _, role, text in entries]


def render_message(message: Mapping, *, chat_format: ChatFormat = OPEN_ASSISTANT) -> str:
    """One normalised message as it appears in the formatted string: header + text + end of message + footer
    (``<|prompter|>`` + text + ``<|endoftext|>`` in :data:`~sft_utils.chat_format.OPEN_ASSISTANT`).

    ``message``: ``{"role": "prompter"|"assistant"|"system", "text": str}``, as :func:`normalize_messages` returns.
    Raises TypeError for anything but such a dict (a str, a list of messages) or a ``chat_format`` that is not a
    ChatFormat; ValueError for another role or a ``content`` key (normalise the message first).
    """
    check_chat_format(chat_format)
    if not isinstance(message, Mapping):
        raise TypeError(f"message must be a dict with 'role' and 'text', got {type(message).__name__}")
    if message.get("role") not in chat_format.role_markers or not isinstance(message.get("text"), str):
        raise ValueError(
            f"message must be normalised, {{'role': 'prompter'|'assistant'|'system', 'text': str}}, got "
            f"{dict(message)!r:.80}; normalize_messages turns 'user' and 'content' into them"
        )
    return chat_format.render(message["role"], message["text"])


def format_conversation(
    messages,
    *,
    system: str | None = None,
    add_generation_prompt: bool = False,
    conversation_id=None,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> str:
    """Memo step 1: render a conversation as one string (Open-Assistant's format by default).

    Args:
        messages: list of ``{"role", "text"}`` (or ``{"role", "content"}``) dicts; see
            :func:`normalize_messages` for the rules.
        system: optional system prompt, rendered first as ``<|system|>…<|endoftext|>``.
        add_generation_prompt: append the assistant's header (``<|assistant|>``) so that a model continues
            with a reply (the same idea as ``apply_chat_template(add_generation_prompt=True)``).
        conversation_id: named in error messages.
        chat_format: prefix, headers, end token and footer (:mod:`sft_utils.chat_format`).

    Returns:
        ``str``, e.g. ``"<|prompter|>Hi<|endoftext|><|assistant|>Hello!<|endoftext|>"``.

    Raises:
        ConversationError: on any message that breaks the rules of :func:`normalize_messages`, or when
            ``add_generation_prompt`` is set and the last message is not the prompter's.
        TypeError: a ``chat_format`` that is not a :class:`~sft_utils.ChatFormat`.
    """
    check_chat_format(chat_format)
    normalized = normalize_messages(messages, system=system, conversation_id=conversation_id)
    text = chat_format.prefix + "".join(render_message(m, chat_format=chat_format) for m in normalized)
    if not add_generation_prompt:
        return text
    if normalized[-1]["role"] != PROMPTER:  # else two assistant turns in a row
        raise ConversationError(
            f"{conversation_name(conversation_id)}: add_generation_prompt needs a conversation that ends "
            f"with the prompter, not the {normalized[-1]['role']}"
        )
    return text + chat_format.marker(ASSISTANT)
