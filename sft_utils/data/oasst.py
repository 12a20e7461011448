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
skipping deleted, review-rejected (``review_result`` False) and synthetic messages with everything
below them. A thread that ends on a prompter turn loses it (nothing to learn there); a thread without
an assistant reply is dropped. One thread per tree keeps a popular prompt from counting many times.

The train/validation split is by tree, from a hash of ``message_tree_id`` (``hashlib``, so it is the
same in every process and on every machine, unlike Python's ``hash``): no tree leaks across.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from ..models.hub import hub_is_reachable
from .conversations import course_data_path, load_conversations

OASST1 = "OpenAssistant/oasst1"
UNRANKED = 0.5  # rank None sorts after rank 0 and before rank 1


def flatten_tree(tree: dict) -> list[dict]:
    """The messages of one nested tree (``{"message_tree_id", "prompt": {..., "replies": [...]}}``) as
    flat rows like oasst1's, root first, depth first; each row gets ``message_tree_id`` and ``parent_id``
    (None for the root), and loses ``replies``. Raises ValueError without a ``prompt`` object or for a message
    without ``message_id``, TypeError for a non-dict tree, prompt or reply (naming the tree)."""
    if not isinstance(tree, dict):
        raise TypeError(f"a tree is a dict with a 'prompt', got {type(tree).__name__}")
    if tree.get("prompt") is None:
        raise ValueError(f"tree {tree.get('message_tree_id')}: no 'prompt' object")
    if not isinstance(tree["prompt"], dict):
        raise TypeError(f"tree {tree.get('message_tree_id')}: 'prompt' is a dict, got {type(tree['prompt']).__name__}")
    tree_id = tree.get("message_tree_id") or tree["prompt"].get("message_id")
    rows, stack = [], [(tree["prompt"], None)]
    while stack:
        message, parent_id = stack.pop()
        replies = message.get("replies") or []
        if message.get("message_id") is None or not isinstance(replies, list):
            problem = "no 'message_id'" if message.get("message_id") is None else "'replies' is not a list"
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
    """False for a deleted, review-rejected (``review_result`` False) or synthetic message.
    ``review_result`` None (not yet reviewed) is kept, as Open-Assistant's own exports keep it."""
    return not message.get("deleted") and message.get("review_result") is not False and not message.get("synthetic")


def _check_rows(rows: list[dict], tree_id) -> None:
    """Raise ValueError (TypeError for a value of the wrong type) naming the tree and the message for a row that would otherwise fail deep inside (a
    KeyError) or give a thread the format refuses later without saying which message: each row needs a
    ``message_id``, a ``role`` of prompter/assistant, a ``text`` that is a ``str`` and a numeric or None ``rank``."""
    for row in rows:
        if not isinstance(row, dict):
            raise TypeError(f"tree {tree_id}: a message row is a dict, got {type(row).__name__}")
        where = f"tree {tree_id}, message {row.get('message_id')}"
        if row.get("message_id") is None:
            raise ValueError(f"{where}: no 'message_id'")
        if row.get("role") not in ("prompter", "assistant"):
            raise ValueError(f"{where}: role must be 'prompter' or 'assistant', got {row.get('role')!r}")
        if not isinstance(row.get("text"), str):
            raise TypeError(f"{where}: text must be a str, got {type(row.get('text')).__name__}")
        rank = row.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, float))):
            raise TypeError(f"{where}: rank must be a number or None, got {rank!r}")


def _rank(message: dict) -> tuple[float, str]:
    # Equal ranks (often all None) fall back to the message id: the same choice whatever the row order.
    return (UNRANKED if message.get("rank") is None else float(message["rank"])), str(message["message_id"])


def _answers(prompt: dict, children: dict) -> list[dict]:
    return [m for m in children[prompt["message_id"]] if m["role"] == "assistant" and is_usable(m)]


def best_thread(rows: list[dict]) -> list[dict]:
    """The best-ranked thread of *one* tree's message rows (any order), root first.

    Returns the chosen rows (each with ``message_id``, ``role``, ``text`` …), alternating
    prompter/assistant and ending on an assistant reply; ``[]`` when the root is unusable or no usable
    assistant reply answers it. Raises ValueError for rows of several trees, without exactly one root, with a
    root that is not the prompter's, or with a malformed row (TypeError for a wrong type, see
    :func:`_check_rows`), naming the tree and the message.
    """
    tree_ids = {row.get("message_tree_id") if isinstance(row, dict) else None for row in rows}
    if len(tree_ids) > 1:
        raise ValueError(f"best_thread takes one tree's messages, got {len(tree_ids)} trees")
    tree_id = next(iter(tree_ids), "?")
    _check_rows(rows, tree_id)
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


def threads_from_messages(rows, *, lang: str | None = None) -> list[dict]:
    """One conversation per tree from oasst1-style message rows (any order, several trees).

    Args:
        rows: an iterable of message dicts (a ``datasets.Dataset`` split, or :func:`flatten_tree` rows).
        lang: keep only trees whose root prompt has this ``lang`` (e.g. ``"en"``); None keeps all.

    Returns:
        ``[{"id": message_tree_id, "lang": str, "message_ids": [...], "messages": [{"role", "text"}]}]``
        in the order trees first appear; trees without a usable thread are left out.

    Raises ValueError (TypeError for a wrong type) naming the row, or the tree and message, for a malformed
    row (see :func:`best_thread`).
    """
    trees = defaultdict(list)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"message row {i}: expected a dict, got {type(row).__name__}")
        if row.get("message_tree_id") is None:
            raise ValueError(f"message row {i} ({row.get('message_id')}): no 'message_tree_id'")
        trees[row["message_tree_id"]].append(row)
    conversations = []
    for tree_id, tree_rows in trees.items():
        thread = best_thread(tree_rows)
        if not thread or (lang is not None and thread[0].get("lang") != lang):
            continue
        conversations.append(
            {
                "id": tree_id,
                "lang": thread[0].get("lang"),
                "message_ids": [m["message_id"] for m in thread],
                "messages": [{"role": m["role"], "text": m["text"]} for m in thread],
            }
        )
    return conversations


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
    message tables together, re-split by :func:`split_by_tree`). Without the hub (unreachable,
    ``HF_HUB_OFFLINE=1``, or loading fails) it falls back to this course's ``data/conversations.jsonl``,
    split the same way with ``fallback_validation_fraction`` (of 13 conversations, 5% would hold out
    none; 25% holds out 3), and ``source`` says so; the language filter is then not applied (the
    course's conversations are mostly English). ``max_conversations`` caps the training list (after the split).
    """
    conversations, source = None, None
    if hub_is_reachable():
        try:
            from datasets import concatenate_datasets, load_dataset

            tables = load_dataset(OASST1)
            rows = concatenate_datasets([tables[name] for name in tables])
            conversations = threads_from_messages(rows, lang=lang)
            source = f"{OASST1} from the hub: {len(rows)} messages -> {len(conversations)} threads (lang={lang})"
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
