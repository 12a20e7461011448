"""Conversations on disk: this course's JSONL form, and where the data folders are.

Introduced in notebook 01_format. One conversation a line::

    {"id": "riddle", "messages": [{"role": "prompter", "text": "…"}, {"role": "assistant", "text": "…"}]}

``role``/``text`` or the ecosystem's ``role``/``content`` (``user`` for the prompter) are accepted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..steps.format import ConversationError, normalize_messages

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def course_data_path(name: str = "conversations.jsonl") -> Path:
    """A file in the project's ``data/`` folder (the conversations this course wrote itself)."""
    return PROJECT_ROOT / "data" / name


def shared_data_dir() -> Path | None:
    """The team's shared real Open-Assistant data (``$SFT_SHARED_DATA``, else ``../shared/data`` beside the
    project), or None when absent. It is never copied into the project."""
    candidates = [os.environ.get("SFT_SHARED_DATA"), PROJECT_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def read_records(path):
    """The JSON objects of a JSONL file, one a non-empty line, as ``(where, record)`` pairs, ``where`` being
    ``"<file name>:<line number>"`` (1-based); the messages are not checked (:func:`load_conversations` does).

    Raises FileNotFoundError for no such file, and ConversationError naming the file and line for a line that
    is not UTF-8, not JSON, or not a JSON object with a ``messages`` key.
    """
    path = Path(path)
    with path.open("rb") as f:  # bytes, so that a bad encoding is reported with its line
        for lineno, raw in enumerate(f, start=1):
            where = f"{path.name}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ConversationError(f"{where}: not UTF-8 (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConversationError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict) or "messages" not in record:
                raise ConversationError(f"{where}: expected a JSON object with a 'messages' list")
            yield where, record


def record_id(record: dict, where: str):
    """A record's ``id``, or ``where`` (``"<file name>:<line number>"``) when it has none."""
    return record.get("id") if record.get("id") is not None else where


def load_conversations(path) -> list[dict]:
    """Read a JSONL file of conversations.

    Returns:
        list of dicts, one per non-empty line: the line's keys, with ``messages`` normalised to
        ``[{"role": "prompter"|"assistant"|"system", "text": str}]`` and ``id`` set to
        ``"<file name>:<line number>"`` when the line has none.

    Raises:
        FileNotFoundError: no such file.
        ConversationError: a line that is not UTF-8, not a JSON object, or without a valid ``messages``
            list; the message names the file and line (1-based).
    """
    conversations = []
    for where, record in read_records(path):
        conversation_id = record_id(record, where)
        messages = normalize_messages(record["messages"], conversation_id=f"{conversation_id} ({where})")
        conversations.append({**record, "id": conversation_id, "messages": messages})
    return conversations
