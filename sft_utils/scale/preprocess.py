"""Memo steps 1-3 for a whole dataset at once: validate, tokenize and mask thousands of conversations.

Introduced in notebook 05_project's performance cells (and ``benchmarks/preprocess.py``). The result is
exactly :func:`sft_utils.tokenize_conversation` for every conversation (tests check ids, message indices,
label masks and truncation); only the route is faster:

1. every message of a batch of conversations is validated (``normalize_messages``, so errors still name
   the conversation) and its text goes into one list;
2. the texts are encoded in **one** call of the Rust tokenizer (``encode_batch_fast``: no offsets, which
   we never use), with ``encode_special_tokens`` set, the backend's name for transformers'
   ``split_special_tokens=True``: a typed ``<|assistant|>`` stays plain text;
3. the conversations are assembled with numpy, not a Python loop per token: the header of each message
   (``<|prompter|>``; ChatML's ``<|im_start|>user\\n``) goes at the message's start, ``<|endoftext|>`` and the
   format's footer at its end, the text ids in between, the format's prefix before a conversation's first
   message; message indices and the label mask are each message's index and role, repeated over its length,
   with the format's choice on a reply's header, end and footer (the ids of :mod:`sft_utils.steps.mask`).

:func:`preprocess_dataset` runs this through ``datasets.Dataset.map(batched=True, num_proc=…)`` and hands
Arrow arrays back, so ``datasets`` never converts millions of Python ints.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from ..chat_format import ASSISTANT, OPEN_ASSISTANT, PROMPTER, SYSTEM, ChatFormat, check_chat_format
from ..steps.example import describe
from ..steps.format import check_conversations, normalize_messages
from ..steps.mask import check_max_length, header_ids, require_reply, token_id, warn_no_trained_target, written_ids
from ..steps.tokenize import check_tokenizer

OUTPUT_COLUMNS = ("input_ids", "attention_mask", "message_indices", "label_mask")
_ROLES = (PROMPTER, ASSISTANT, SYSTEM)  # role -> small int code, the index in this tuple (every format's roles)


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without added special tokens, markers typed in a text kept as plain text.

    The same ids as ``tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]``
    (a test checks it), through the backend's batch call without the per-token offsets transformers
    builds. Raises TypeError for a slow (Python) tokenizer, which has no batch path, and for ``texts`` that are not
    a list of str (one str: pass ``[text]``).
    """
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of str, got {describe(texts)}; for one text, pass [text]")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts must be a list of str, got {describe(text)} at index {index}")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer; load it with sft_utils.load_tokenizer()")
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # _fast: tokenizers >= 0.20.2
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = True  # = split_special_tokens=True
    try:
        encodings = encode(texts, add_special_tokens=False)
    finally:
        backend.encode_special_tokens = previous
    return [encoding.ids for encoding in encodings]


def tokenize_packed(
    conversations,
    tokenizer,
    *,
    max_length: int | None = None,
    conversation_ids=None,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> dict:
    """Memo steps 1-3 for many conversations, as flat arrays plus offsets (the layout of Arrow list columns).

    Args:
        conversations: a sequence of message lists (each as :func:`sft_utils.tokenize_conversation` takes).
        tokenizer: a fast tokenizer from :func:`sft_utils.load_tokenizer`.
        max_length: keep the first ``max_length`` tokens of each conversation; warns, naming it, when that
            leaves no trained token (as ``tokenize_conversation`` does).
        conversation_ids: one id per conversation, named in errors and warnings (default: the position).
        chat_format: markers, end token and trained parts of a reply (:mod:`sft_utils.chat_format`).

    Returns:
        dict of numpy arrays: ``offsets`` int64 ``[C + 1]`` (conversation c is ``[offsets[c]:offsets[c+1]]``),
        ``input_ids`` int32 ``[N]``, ``message_indices`` int32 ``[N]``, ``label_mask`` bool ``[N]``, with C
        conversations and N tokens in all.

    Raises:
        ConversationError: a conversation that breaks the rules of ``normalize_messages``, or that has no
            assistant message (as ``tokenize_conversation``), named by its id.
        ValueError: a bad ``max_length``, ``conversation_ids`` of another length than ``conversations``, or a
            tokenizer without the role tokens.
        TypeError: a slow tokenizer, or one that is not a tokenizer object; ``conversation_ids`` that are not a
            list (a str); ``conversations`` that are one
            conversation (its messages, or a dict), a str or None; a ``chat_format`` that is not a ChatFormat.
    """
    check_max_length(max_length)
    conversations = check_conversations(conversations, bare_lists=True)
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    if conversation_ids is None:
        conversation_ids = range(len(conversations))
    elif isinstance(conversation_ids, (str, bytes)) or not isinstance(conversation_ids, (Sequence, np.ndarray)):
        raise TypeError(f"conversation_ids must be a list, one id per conversation, got {describe(conversation_ids)}")
    elif len(conversation_ids) != len(conversations):  # zip would silently drop the conversations past the ids
        raise ValueError(f"{len(conversation_ids)} conversation_ids for {len(conversations)} conversations")
    normalized = [
        require_reply(normalize_messages(m, conversation_id=cid), cid)
        for m, cid in zip(conversations, conversation_ids)
    ]
    messages = list(itertools.chain.from_iterable(normalized))
    text_ids = encode_texts(tokenizer, [m["text"] for m in messages])
    headers = [header_ids(tokenizer, chat_format, role, where="tokenize_packed") for role in _ROLES]
    end_id = token_id(tokenizer, chat_format.end_of_message, chat_format=chat_format, where="tokenize_packed")
    prefix, footer = (
        written_ids(tokenizer, chat_format, s, where="tokenize_packed")
        for s in (chat_format.prefix, chat_format.footer)
    )

    # Per message: role code; length = prefix (a conversation's first message only) + header + text + end of
    # message + footer; start and end in the flat array.
    roles = np.fromiter((_ROLES.index(m["role"]) for m in messages), dtype=np.int8, count=len(messages))
    text_lengths = np.fromiter(map(len, text_ids), dtype=np.int64, count=len(messages))
    # Per conversation: how many messages, and the index of its first message in `messages`.
    counts = np.fromiter(map(len, normalized), dtype=np.int64, count=len(normalized))
    first_message = np.cumsum(counts) - counts
    prefix_lengths = np.zeros(len(messages), dtype=np.int64)
    prefix_lengths[first_message[counts > 0]] = len(prefix)
    header_lengths = np.array([len(h) for h in headers], dtype=np.int64)[roles]
    message_lengths = prefix_lengths + header_lengths + text_lengths + 1 + len(footer)
    message_ends = np.cumsum(message_lengths)
    message_starts = message_ends - message_lengths
    header_starts = message_starts + prefix_lengths
    end_positions = message_ends - 1 - len(footer)

    input_ids = np.empty(int(message_ends[-1]) if len(messages) else 0, dtype=np.int32)
    is_text = np.ones(len(input_ids), dtype=bool)
    is_reply = roles == _ROLES.index(ASSISTANT)
    label_mask = np.repeat(is_reply, message_lengths)
    # The format's pieces, one position at a time (a few per message), then the texts into the rest.
    pieces = [(message_starts[prefix_lengths > 0], prefix, [False] * len(prefix))]
    # What a reply trains of them: ChatFormat.reply_mask's rule, cut at the text (of length 0 here).
    for code, header in enumerate(headers):
        pieces.append((header_starts[roles == code], header, chat_format.reply_mask(0, len(header))[: len(header)]))
    pieces.append((end_positions, [end_id, *footer], chat_format.reply_mask(0, 1, len(footer))[1:]))
    for starts, ids, trained in pieces:
        for offset, (piece_id, piece_trained) in enumerate(zip(ids, trained)):
            positions = starts + offset
            input_ids[positions] = piece_id
            is_text[positions] = False
            label_mask[positions] &= piece_trained  # the format's choice, on replies only
    input_ids[is_text] = np.fromiter(itertools.chain.from_iterable(text_ids), np.int32, int(text_lengths.sum()))
    index_in_conversation = np.arange(len(messages)) - np.repeat(first_message, counts)
    message_indices = np.repeat(index_in_conversation.astype(np.int32), message_lengths)
    lengths = np.add.reduceat(message_lengths, first_message) if len(messages) else counts

    packed = {"input_ids": input_ids, "message_indices": message_indices, "label_mask": label_mask}
    if max_length is not None and (lengths > max_length).any():
        packed, lengths = _truncate(packed, lengths, max_length, conversation_ids)
    packed["offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return packed


def _truncate(packed: dict, lengths: np.ndarray, max_length: int, conversation_ids) -> tuple[dict, np.ndarray]:
    """Keep the first ``max_length`` tokens of each conversation; warn where no trained target is left."""
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(packed["input_ids"])) - np.repeat(starts, lengths)  # token position in its conversation
    keep = position < max_length
    # Position 0 is never a target after the shift, so it does not count as trained (as in tokenize_conversation).
    trained = np.add.reduceat((packed["label_mask"] & keep & (position > 0)).astype(np.int64), starts)
    ids = list(conversation_ids)
    for c in np.flatnonzero((lengths > max_length) & (trained == 0)):
        warn_no_trained_target(ids[c], max_length, stacklevel=3)
    return {k: v[keep] for k, v in packed.items()}, np.minimum(lengths, max_length)


def examples_from_packed(packed: dict) -> list[dict]:
    """The output of :func:`tokenize_packed` as one dict of Python lists per conversation (``input_ids``,
    ``attention_mask``, ``message_indices``, ``label_mask``): what :func:`sft_utils.tokenize_conversation`
    returns for each. Raises TypeError for anything but a dict, ValueError for one without those arrays and
    ``offsets``."""
    if not isinstance(packed, Mapping):
        raise TypeError(f"packed must be the dict tokenize_packed returns, got {describe(packed)}")
    missing = [k for k in ("offsets", "input_ids", "message_indices", "label_mask") if k not in packed]
    if missing:
        raise ValueError(f"packed has no {', '.join(missing)}; expected the dict tokenize_packed returns")
    if len(packed["offsets"]) == 1:  # no conversation (np.split would still return one empty piece)
        return []
    bounds = packed["offsets"][1:-1]
    columns = {k: np.split(packed[k], bounds) for k in ("input_ids", "message_indices", "label_mask")}
    return [
        {
            "input_ids": ids.tolist(),
            "attention_mask": [1] * len(ids),
            "message_indices": indices.tolist(),
            "label_mask": mask.tolist(),
        }
        for ids, indices, mask in zip(columns["input_ids"], columns["message_indices"], columns["label_mask"])
    ]


def _without_none(messages):
    """Arrow stores a list of structs with every field: a ``{"role", "text"}`` message read next to
    ``{"role", "content"}`` ones comes back with ``"content": None``. Drop those None fields."""
    return [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in messages]


def _map_batch(
    batch: dict, indices: list[int], *, tokenizer, max_length, messages_column, id_column, keep, chat_format
):
    """``Dataset.map(batched=True)`` function: an Arrow table of the ``keep`` columns and ``OUTPUT_COLUMNS``.

    A table (not a dict of lists) so that ``datasets`` writes the arrays as they are."""
    import pyarrow as pa

    ids = batch[id_column] if id_column in batch else [f"row {i}" for i in indices]
    conversations = [_without_none(m) if isinstance(m, list) else m for m in batch[messages_column]]
    for messages, cid in zip(conversations, ids):
        if not isinstance(messages, list):  # a row whose messages are one dict: named by its id, not as a batch
            normalize_messages(messages, conversation_id=cid)
    packed = tokenize_packed(
        conversations, tokenizer, max_length=max_length, conversation_ids=ids, chat_format=chat_format
    )
    offsets = pa.array(packed["offsets"].astype(np.int32))

    def lists(values: np.ndarray) -> pa.ListArray:
        return pa.ListArray.from_arrays(offsets, pa.array(values))

    columns = {column: pa.array(batch[column]) for column in keep}
    columns["input_ids"] = lists(packed["input_ids"])
    columns["attention_mask"] = lists(np.ones(len(packed["input_ids"]), dtype=np.int8))
    columns["message_indices"] = lists(packed["message_indices"])
    columns["label_mask"] = lists(packed["label_mask"])
    return pa.table(columns)


def preprocess_dataset(
    dataset,
    tokenizer,
    *,
    max_length: int | None = None,
    num_proc: int | None = None,
    batch_size: int = 1000,
    messages_column: str = "messages",
    id_column: str = "id",
    keep_columns: tuple[str, ...] = ("id",),
    desc: str | None = "tokenize + mask",
    chat_format: ChatFormat = OPEN_ASSISTANT,
):
    """Memo steps 1-3 over a dataset: ``datasets.Dataset.map(batched=True, num_proc=num_proc)``.

    Args:
        dataset: a ``datasets.Dataset`` with a ``messages`` column, or a list of conversation dicts (as
            :func:`sft_utils.load_conversations` returns), turned into one.
        tokenizer: a fast tokenizer from :func:`sft_utils.load_tokenizer`.
        max_length: right truncation, as in :func:`sft_utils.tokenize_conversation`.
        num_proc: worker processes for ``map`` (None: this process; the Rust tokenizer already uses
            several threads inside one batch call).
        batch_size: conversations per batched call.
        messages_column, id_column: column names; ``id_column`` (when present) names conversations in
            errors, else they are named ``"row <index>"``.
        keep_columns: input columns kept next to the outputs (those present); the others are dropped.
        desc: progress-bar label of ``map`` (None: no label).
        chat_format: as in :func:`tokenize_packed`.

    Returns:
        ``datasets.Dataset`` with ``input_ids`` (int32 lists), ``attention_mask`` (int8), ``message_indices``
        (int32) and ``label_mask`` (bool), each row equal to ``tokenize_conversation`` of that conversation.

    Raises:
        ConversationError: a bad conversation, named by its id (raised from inside ``map``).
        ValueError: a bad ``max_length``, an empty list, or no ``messages_column``. TypeError: a slow tokenizer or
            anything but a tokenizer, a ``chat_format`` that is not a ChatFormat, or a ``dataset`` that is neither
            a ``Dataset`` nor a list of dicts (one conversation, or the list of its messages).
    """

    check_max_length(max_length)
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    if isinstance(dataset, (list, tuple)):
        if not dataset:
            raise ValueError("dataset is an empty list: no conversations to preprocess")
        dataset = _from_list(check_conversations(dataset), messages_column, id_column)
    elif not hasattr(dataset, "column_names"):
        one = "; for a single conversation, pass [conversation]" if isinstance(dataset, Mapping) else ""
        raise TypeError(f"dataset must be a datasets.Dataset or a list of dicts, got {type(dataset).__name__}{one}")
    if messages_column not in dataset.column_names:
        raise ValueError(f"dataset has no {messages_column!r} column (columns: {dataset.column_names})")
    keep = [c for c in dataset.column_names if c in keep_columns and c not in OUTPUT_COLUMNS]
    return dataset.map(
        _map_batch,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        num_proc=num_proc,
        remove_columns=dataset.column_names,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "messages_column": messages_column,
            "id_column": id_column,
            "keep": keep,
            "chat_format": chat_format,
        },
        desc=desc,
        # datasets would otherwise hash the tokenizer by pickling it (about a second per call).
        new_fingerprint=_fingerprint(dataset, tokenizer, max_length, messages_column, id_column, keep, chat_format),
    )


def _from_list(rows: list, messages_column: str, id_column: str):
    """``datasets.Dataset.from_list(rows)``; Arrow's own errors on a bad row (a text that is not a ``str``, a
    lone surrogate) become the ConversationError that names the conversation."""
    import datasets
    import pyarrow as pa

    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"row {i}: expected a dict with a {messages_column!r} list, got {type(row).__name__}")
    try:
        return datasets.Dataset.from_list(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError) as error:
        for i, row in enumerate(rows):  # find the conversation Arrow choked on
            if messages_column in row:
                normalize_messages(row[messages_column], conversation_id=row.get(id_column, f"row {i}"))
        raise ValueError(f"cannot build a dataset from these rows: {error}") from error


def _fingerprint(dataset, tokenizer, *args) -> str:
    """Cache key of the mapped dataset: the input's fingerprint, the tokenizer's full JSON and the arguments."""
    digest = hashlib.sha256(f"{__name__} v1 {dataset._fingerprint} {args!r}".encode())
    digest.update(tokenizer.backend_tokenizer.to_str().encode())
    return digest.hexdigest()[:16]
