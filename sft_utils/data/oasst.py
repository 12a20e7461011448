"""Open-Assistant's oasst1: message trees -> one conversation per tree, split by tree.

Introduced in notebook 08_finetune_pythia. oasst1 (``datasets.load_dataset("OpenAssistant/oasst1")``)
is a table of *messages*, one row each: ``message_id``, ``parent_id`` (None for a tree's root prompt),
``message_tree_id``, ``role`` (``prompter``/``assistant``), ``text``, ``lang``, ``rank`` (0 = the best
of its siblings, None when unranked), ``deleted``, ``review_result``, ``synthetic``. Open-Assistant's
raw exports nest the same messages as trees (``{"message_tree_id", "prompt": {..., "replies": [...]}}``);
:func:`flatten_tree` turns such a tree into the same rows.

Each tree becomes *one* thread: from the root prompt, at every branch take the best-ranked reply (the
lowest ``rank``; ``None`` counts as 0.5, between the first and the second; ties go to the smaller
``message_id``, so the choice does not depend on the rows' order;
among follow-up prompts, one that got a usable answer before one that did not),
skipping deleted, review-rejected (``review_result`` False), synthetic and blank messages (a text that is
empty, whitespace or zero-width characters only, which the formatter refuses) with everything below them.
A thread that ends on a prompter turn loses it (nothing to learn there); a thread without an assistant
reply is dropped. One thread per tree keeps a popular prompt from counting many times.

A missing value reads as None however it comes: None, or the NaN / ``pandas.NA`` that a pandas round trip
writes in its place (:func:`is_null`), so an unranked reply ranks the same from a DataFrame as from the hub.

The train/validation split is by tree, from a hash of ``message_tree_id`` (``hashlib``, so it is the
same in every process and on every machine, unlike Python's ``hash``): no tree leaks across.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import sys
from collections import defaultdict
from collections.abc import Mapping

from ..models.hub import hub_is_reachable
from ..steps.format import is_blank
from .conversations import course_data_path, load_conversations

OASST1 = "OpenAssistant/oasst1"
UNRANKED = 0.5  # rank None sorts after rank 0 and before rank 1
# The fields this module reads; a null in any of them reads as None.
FIELDS = (
    "message_id",
    "parent_id",
    "message_tree_id",
    "role",
    "text",
    "lang",
    "rank",
    "deleted",
    "review_result",
    "synthetic",
)


def is_null(value) -> bool:
    """True for a missing value as Python, numpy or pandas writes it: None, a NaN float (``float("nan")``,
    ``numpy.nan``, any numpy float NaN), ``pandas.NA`` and ``pandas.NaT``. A pandas round trip of oasst1 writes
    these for None (an unranked reply's ``rank``, the root's ``parent_id``); read as they are, NaN is truthy and
    every comparison with it is False."""
    if value is None:
        return True
    pandas = sys.modules.get("pandas")  # pandas.NA and NaT can only exist once pandas is imported
    if pandas is not None and (value is pandas.NA or value is pandas.NaT):
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and math.isnan(value)


def _field(row: dict, key: str):
    """``row[key]``; None when it is absent or null (:func:`is_null`)."""
    value = row.get(key)
    return None if is_null(value) else value


def _normalized(row: dict) -> dict:
    """A copy of a message row whose null :data:`FIELDS` are None."""
    return row | {key: None for key in FIELDS if key in row and is_null(row[key])}


def flatten_tree(tree: dict) -> list[dict]:
    """The messages of one nested tree (``{"message_tree_id", "prompt": {..., "replies": [...]}}``) as
    flat rows like oasst1's, root first, depth first; each row gets ``message_tree_id`` and ``parent_id``
    (None for the root), and loses ``replies``. Raises ValueError without a ``prompt`` object or for a message
    without ``message_id``, TypeError for a non-dict tree, prompt or reply (naming the tree)."""
    if not isinstance(tree, dict):
        raise TypeError(f"a tree is a dict with a 'prompt', got {type(tree).__name__}")
    if _field(tree, "prompt") is None:
        raise ValueError(f"tree {tree.get('message_tree_id')}: no 'prompt' object")
    if not isinstance(tree["prompt"], dict):
        raise TypeError(f"tree {tree.get('message_tree_id')}: 'prompt' is a dict, got {type(tree['prompt']).__name__}")
    tree_id = _field(tree, "message_tree_id") or _field(tree["prompt"], "message_id")
    rows, stack = [], [(tree["prompt"], None)]
    while stack:
        message, parent_id = stack.pop()
        replies = message.get("replies") or []
        if _field(message, "message_id") is None or not isinstance(replies, list):
            problem = "no 'message_id'" if _field(message, "message_id") is None else "'replies' is not a list"
            where = "the prompt" if parent_id is None else f"a reply to {parent_id}"
            raise ValueError(f"tree {tree_id}, {where}: {problem}")
        rows.append({**{k: v for k, v in message.items() if k != "replies"}, "message_tree_id": tree_id})
        rows[-1]["parent_id"] = parent_id
        for reply in reversed(replies):
            if not isinstance(reply, dict):
                raise TypeError(f"tree {tree_id}, message {message['message_id']}: a reply is not a dict")
            stack.append((reply, message["message_id"]))
    return rows


def is_usable(message: dict) -> bool:
    """False for a deleted, review-rejected (``review_result`` False), synthetic or blank message (a ``text``
    empty, whitespace or zero-width characters only: :func:`sft_utils.steps.format.is_blank`, the test by which
    the formatter refuses a message). ``review_result`` None (not yet reviewed) is kept, as Open-Assistant's own
    exports keep it. A null (:func:`is_null`) reads as None: ``deleted`` NaN is not deleted."""
    deleted, review, synthetic, text = (
        _field(message, key) for key in ("deleted", "review_result", "synthetic", "text")
    )
    rejected = review is not None and not review
    return not (deleted or rejected or synthetic or (isinstance(text, str) and is_blank(text)))


def _checked(rows: list[dict], tree_id) -> list[dict]:
    """The rows, null fields as None (:func:`_normalized`). Raises ValueError (TypeError for a value of the wrong
    type) naming the tree and the message for a row that would otherwise fail deep inside (a KeyError) or give a
    thread the format refuses later without saying which message: each row needs a ``message_id``, a ``role`` of
    prompter/assistant, a ``text`` that is a ``str`` and a numeric or None ``rank``."""
    checked = []
    for row in rows:
        if not isinstance(row, dict):
            raise TypeError(f"tree {tree_id}: a message row is a dict, got {type(row).__name__}")
        row = _normalized(row)
        where = f"tree {tree_id}, message {row.get('message_id')}"
        if row.get("message_id") is None:
            raise ValueError(f"{where}: no 'message_id'")
        if row.get("role") not in ("prompter", "assistant"):
            raise ValueError(f"{where}: role must be 'prompter' or 'assistant', got {row.get('role')!r}")
        if not isinstance(row.get("text"), str):
            raise TypeError(f"{where}: text must be a str, got {type(row.get('text')).__name__}")
        rank = row.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, numbers.Real)):
            raise TypeError(f"{where}: rank must be a number or None, got {rank!r}")
        checked.append(row)
    return checked


def _rank(message: dict) -> tuple[float, str]:
    # Equal ranks (often all None) fall back to the message id: the same choice whatever the row order.
    return (UNRANKED if message.get("rank") is None else float(message["rank"])), str(message["message_id"])


def _answers(prompt: dict, children: dict) -> list[dict]:
    return [m for m in children[prompt["message_id"]] if m["role"] == "assistant" and is_usable(m)]


def best_thread(rows: list[dict]) -> list[dict]:
    """The best-ranked thread of *one* tree's message rows (any order), root first.

    Returns copies of the chosen rows (each with ``message_id``, ``role``, ``text`` …; null fields as None),
    alternating prompter/assistant and ending on an assistant reply; ``[]`` when the root is unusable or no usable
    assistant reply answers it. Raises ValueError for rows of several trees, without exactly one root, with a
    root that is not the prompter's, or with a malformed row (TypeError for a wrong type, see
    :func:`_checked`), naming the tree and the message.
    """
    tree_ids = {_field(row, "message_tree_id") if isinstance(row, dict) else None for row in rows}
    if len(tree_ids) > 1:
        raise ValueError(f"best_thread takes one tree's messages, got {len(tree_ids)} trees")
    tree_id = next(iter(tree_ids), "?")
    rows = _checked(rows, tree_id)
    roots = [row for row in rows if row.get("parent_id") is None]
    if len(roots) != 1:
        raise ValueError(f"tree {tree_id}: {len(roots)} root messages, expected 1")
    if roots[0]["role"] != "prompter":  # a thread must open with a question: the format refuses anything else
        raise ValueError(f"tree {tree_id}, message {roots[0]['message_id']}: the root is the assistant's, not a prompt")
    children = defaultdict(list)
    for row in rows:
        if row.get("parent_id") is not None:
            children[row["parent_id"]].append(row)
    thread, message = [], roots[0]
    while message is not None and is_usable(message):
        thread.append(message)
        # Replies alternate roles; a wrongly-roled reply would break the format, so it is not followed.
        wanted = "assistant" if message["role"] == "prompter" else "prompter"
        replies = [m for m in children[message["message_id"]] if m["role"] == wanted and is_usable(m)]
        if wanted == "prompter":  # a follow-up question nobody answered is a dead end: prefer answered ones
            replies = [m for m in replies if any(_answers(m, children))] or replies
        message = min(replies, key=_rank) if replies else None
    if thread and thread[-1]["role"] == "prompter":
        thread.pop()
    return thread if any(m["role"] == "assistant" for m in thread) else []


def best_threads(rows) -> dict:
    """``{message_tree_id: best_thread(that tree's rows)}`` of oasst1-style message rows (any order, several
    trees), in the order trees first appear; ``[]`` for a tree without a usable thread.

    Raises ValueError (TypeError for a wrong type) naming the row, or the tree and message, for a malformed
    row (see :func:`best_thread`).
    """
    trees = defaultdict(list)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"message row {i}: expected a dict, got {type(row).__name__}")
        tree_id = _field(row, "message_tree_id")
        if tree_id is None:
            raise ValueError(f"message row {i} ({row.get('message_id')}): no 'message_tree_id'")
        trees[tree_id].append(row)
    return {tree_id: best_thread(tree_rows) for tree_id, tree_rows in trees.items()}


def _conversations(threads: dict, lang: str | None) -> list[dict]:
    return [
        {
            "id": tree_id,
            "lang": thread[0].get("lang"),
            "message_ids": [m["message_id"] for m in thread],
            "messages": [{"role": m["role"], "text": m["text"]} for m in thread],
        }
        for tree_id, thread in threads.items()
        if thread and (lang is None or thread[0].get("lang") == lang)
    ]


def threads_from_messages(rows, *, lang: str | None = None) -> list[dict]:
    """One conversation per tree from oasst1-style message rows (any order, several trees).

    Args:
        rows: an iterable of message dicts (a ``datasets.Dataset`` split, :func:`flatten_tree` rows, or a
            DataFrame's ``to_dict("records")``: nulls as NaN read as None).
        lang: keep only trees whose root prompt has this ``lang`` (e.g. ``"en"``); None keeps all.

    Returns:
        ``[{"id": message_tree_id, "lang": str, "message_ids": [...], "messages": [{"role", "text"}]}]``
        in the order trees first appear; trees without a usable thread are left out.

    Raises ValueError (TypeError for a wrong type) naming the row, or the tree and message, for a malformed
    row (see :func:`best_thread`).
    """
    return _conversations(best_threads(rows), lang)


def conversations_from_oasst1(tables, *, lang: str | None = "en") -> tuple[list[dict], str]:
    """oasst1's message tables as ``datasets.load_dataset`` returns them -> ``(conversations, summary)``.

    Args:
        tables: split name -> message rows, all splits taken together in the mapping's order:
            ``load_dataset("OpenAssistant/oasst1")`` (train, validation), or the same columns from files
            (``load_dataset("parquet", data_files={"train": …, "validation": …})``), or plain lists of dicts.
        lang: as in :func:`threads_from_messages`.

    Returns:
        The conversations of :func:`threads_from_messages` over all splits, and a one-line summary:
        ``"N messages in T trees -> K threads (lang=en); dropped: D trees without a usable thread, L in another
        language"`` (without the last part for ``lang=None``).

    Raises TypeError when ``tables`` is not a mapping (a single ``Dataset``: pass ``{"train": dataset}``), and
    as :func:`threads_from_messages` for a malformed row.
    """
    if not isinstance(tables, Mapping):
        raise TypeError(
            f"expected a mapping of split name -> message rows (a DatasetDict), got {type(tables).__name__}"
        )
    threads = best_threads(itertools.chain.from_iterable(tables[name] for name in tables))
    conversations = _conversations(threads, lang)
    messages = sum(len(tables[name]) for name in tables)
    dropped = sum(not thread for thread in threads.values())
    other = len(threads) - dropped - len(conversations)
    summary = (
        f"{messages} messages in {len(threads)} trees -> {len(conversations)} threads (lang={lang}); "
        f"dropped: {dropped} trees without a usable thread"
        + (f", {other} in another language" if lang is not None else "")
    )
    return conversations, summary


def in_validation(tree_id: str, validation_fraction: float) -> bool:
    """True for a tree in the validation split: the first 8 bytes of sha256(tree id), as a number in
    [0, 1), below ``validation_fraction``. The same answer in every process and on every machine."""
    digest = hashlib.sha256(str(tree_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < validation_fraction


def split_by_tree(conversations: list[dict], validation_fraction: float = 0.05) -> tuple[list[dict], list[dict]]:
    """``(train, validation)`` by :func:`in_validation` of each conversation's ``id`` (its tree).
    Raises ValueError for a fraction outside (0, 1)."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    train, validation = [], []
    for conversation in conversations:
        (validation if in_validation(conversation["id"], validation_fraction) else train).append(conversation)
    return train, validation


def load_oasst1_conversations(
    *,
    lang: str | None = "en",
    validation_fraction: float = 0.05,
    fallback_validation_fraction: float = 0.25,
    max_conversations: int | None = None,
) -> tuple[list[dict], list[dict], str]:
    """oasst1 as ``(train, validation, source)`` conversations, one best-ranked thread per tree.

    From the hub with ``datasets.load_dataset("OpenAssistant/oasst1")`` (its train and validation
    message tables together, through :func:`conversations_from_oasst1`, whose summary ``source`` repeats;
    re-split by :func:`split_by_tree`). Without the hub (unreachable,
    ``HF_HUB_OFFLINE=1``, or loading fails) it falls back to this course's ``data/conversations.jsonl``,
    split the same way with ``fallback_validation_fraction`` (of 13 conversations, 5% would hold out
    none; 25% holds out 3), and ``source`` says so; the language filter is then not applied (the
    course's conversations are mostly English). ``max_conversations`` caps the training list (after the split).
    """
    conversations, source = None, None
    if hub_is_reachable():
        try:
            from datasets import load_dataset

            conversations, summary = conversations_from_oasst1(load_dataset(OASST1), lang=lang)
            source = f"{OASST1} from the hub: {summary}"
        except Exception as error:  # noqa: BLE001 - any hub/dataset failure falls back, and says why
            source = f"{OASST1} failed to load ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    else:
        source = f"{OASST1} not loaded (hub unreachable)"
    if conversations is None:
        path = course_data_path()
        conversations = load_conversations(path)
        source = (
            f"OFFLINE FALLBACK: {source}; using the course's {len(conversations)} conversations in data/{path.name}"
        )
        validation_fraction = fallback_validation_fraction
    train, validation = split_by_tree(conversations, validation_fraction)
    if max_conversations is not None:
        train = train[:max_conversations]
    return train, validation, source
