"""oasst1's columns in parquet files, written through pandas and read back with datasets.load_dataset, offline,
through conversations_from_oasst1: the code that load_oasst1_conversations runs on the hub's DatasetDict."""

import json
import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sft_utils import shared_data_dir
from sft_utils.data.oasst import conversations_from_oasst1, flatten_tree, in_validation

# OpenAssistant/oasst1's columns, in its order, with its types; but rank is float64, as pandas leaves an integer
# column with missing values (the hub's is int32).
SCORES = ("toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit")
SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("parent_id", pa.string()),
        ("user_id", pa.string()),
        ("created_date", pa.string()),
        ("text", pa.string()),
        ("role", pa.string()),
        ("lang", pa.string()),
        ("review_count", pa.int32()),
        ("review_result", pa.bool_()),
        ("deleted", pa.bool_()),
        ("rank", pa.float64()),
        ("synthetic", pa.bool_()),
        ("model_name", pa.string()),
        ("detoxify", pa.struct([(name, pa.float64()) for name in SCORES])),
        ("message_tree_id", pa.string()),
        ("tree_state", pa.string()),
        ("emojis", pa.struct([("name", pa.list_(pa.string())), ("count", pa.list_(pa.int32()))])),
        (
            "labels",
            pa.struct(
                [("name", pa.list_(pa.string())), ("value", pa.list_(pa.float64())), ("count", pa.list_(pa.int32()))]
            ),
        ),
    ]
)
COLUMNS = tuple(SCHEMA.names)
DETOXIFY = dict.fromkeys(SCORES, 0.001)


def oasst1_row(message: dict) -> dict:
    """A flatten_tree row with oasst1's columns: emojis as {"name": [...], "count": [...]}, as on the hub; the raw
    trees carry no user, date, labels or toxicity scores, so those get placeholders or None."""
    emojis = message.get("emojis") or {}
    return {
        "message_id": message["message_id"],
        "parent_id": message.get("parent_id"),
        "user_id": "00000000-0000-0000-0000-000000000000",
        "created_date": "2023-02-05T14:23:50.983374+00:00",
        "text": message["text"],
        "role": message["role"],
        "lang": message.get("lang"),
        "review_count": message.get("review_count", 3),
        "review_result": message.get("review_result"),
        "deleted": message.get("deleted", False),
        "rank": message.get("rank"),
        "synthetic": message.get("synthetic", False),
        "model_name": message.get("model_name"),
        "detoxify": message.get("detoxify"),
        "message_tree_id": message["message_tree_id"],
        "tree_state": "ready_for_export",
        "emojis": {"name": list(emojis), "count": list(emojis.values())},
        "labels": message.get("labels"),
    }


def _message(message_id, parent_id, role, text, rank=None, tree="hand-tree-1", **fields):
    labels = {"name": ["spam", "quality"], "value": [0.0, 0.75], "count": [3, 3]}
    common = {"message_tree_id": tree, "lang": "en", "review_result": True, "detoxify": DETOXIFY, "labels": labels}
    return (
        {"message_id": message_id, "parent_id": parent_id, "role": role, "text": text, "rank": rank} | common | fields
    )


# Written by hand: every rule that a missing value could upset. Unranked replies tie at 0.5 and go to the smaller id.
HAND_TREES = [
    _message("h0-root", None, "prompter", "What is two plus two?"),
    _message("h1-deleted", "h0-root", "assistant", "Four, I think.", rank=0, deleted=True),
    _message("h2-zero-width", "h0-root", "assistant", "\u200b\u2060\ufeff", rank=1),
    _message("h3-synthetic", "h0-root", "assistant", "4", synthetic=True, model_name="oasst-sft-1-pythia-12b"),
    _message("h4-answer", "h0-root", "assistant", "Two plus two is four.", rank=2, emojis={"+1": 2}),
    _message("h5-blank-follow-up", "h4-answer", "prompter", "\u200c \u200d", review_result=None, labels=None),
    _message("h6-answer-to-blank", "h5-blank-follow-up", "assistant", "Nothing to answer.", rank=0),
    _message("h7-follow-up", "h4-answer", "prompter", "And two times two?", detoxify=None),
    _message("h9-second", "h7-follow-up", "assistant", "Also four."),
    _message("h8-first", "h7-follow-up", "assistant", "Four as well.", review_result=None),
    _message("h-only-root", None, "prompter", "Say something.", tree="hand-tree-2"),
    _message("h-only-zero-width", "h-only-root", "assistant", "\u200b", rank=0, tree="hand-tree-2"),
]
HAND_THREAD = {
    "id": "hand-tree-1",
    "lang": "en",
    "message_ids": ["h0-root", "h4-answer", "h7-follow-up", "h8-first"],
    "messages": [
        {"role": "prompter", "text": "What is two plus two?"},
        {"role": "assistant", "text": "Two plus two is four."},
        {"role": "prompter", "text": "And two times two?"},
        {"role": "assistant", "text": "Four as well."},
    ],
}


def write_pandas(frame: pd.DataFrame, path) -> None:
    """pandas' own writer: pyarrow turns the NaN of a missing rank into a parquet null."""
    frame.to_parquet(path, index=False, schema=SCHEMA)


def write_nan_values(frame: pd.DataFrame, path) -> None:
    """The rank column stored as NaN *values* (pyarrow without pandas semantics), not nulls: datasets gives NaN."""
    table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
    ranks = pa.array(frame["rank"].to_numpy(), type=pa.float64(), from_pandas=False)
    pq.write_table(table.set_column(COLUMNS.index("rank"), "rank", ranks), path)


def load_parquet_splits(tmp_path, splits: dict, writer):
    """{split: oasst1-style dict rows} -> DataFrame -> one parquet file per split -> load_dataset("parquet")."""
    from datasets import load_dataset

    files = {}
    for split, rows in splits.items():
        frame = pd.DataFrame([oasst1_row(row) for row in rows], columns=list(COLUMNS))
        assert frame["rank"].dtype == "float64" and frame["rank"].isna().any()  # pandas' NaN for a missing rank
        files[split] = str(tmp_path / f"{split}-00000-of-00001.parquet")
        writer(frame, files[split])
    return load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "datasets-cache"))


@pytest.fixture(scope="module")
def real_rows():
    shared = shared_data_dir()
    if shared is None or not (shared / "trees_oasst_en100.jsonl").exists():
        pytest.skip("raw Open-Assistant trees absent: no ../shared/data/trees_oasst_en100.jsonl (or $SFT_SHARED_DATA)")
    lines = (shared / "trees_oasst_en100.jsonl").read_text(encoding="utf-8").splitlines()
    return [row for line in lines for row in flatten_tree(json.loads(line))]


@pytest.mark.parametrize("writer", [write_pandas, write_nan_values], ids=["pandas-nulls", "nan-values"])
def test_hand_written_trees_from_parquet(tmp_path, writer):
    tables = load_parquet_splits(tmp_path, {"train": HAND_TREES[:10], "validation": HAND_TREES[10:]}, writer)
    assert list(tables) == ["train", "validation"] and tables["train"].num_rows == 10
    ranks = {row["message_id"]: row["rank"] for row in tables["train"]}
    missing = ranks["h8-first"]
    assert missing is None if writer is write_pandas else math.isnan(missing)
    assert ranks["h4-answer"] == 2.0 and isinstance(ranks["h4-answer"], float)  # float64, where the hub has int32
    conversations, summary = conversations_from_oasst1(tables, lang="en")
    assert conversations == [HAND_THREAD]
    assert summary == (
        "12 messages in 2 trees -> 1 threads (lang=en); dropped: 1 trees without a usable thread, 0 in another language"
    )


@pytest.mark.parametrize("writer", [write_pandas, write_nan_values], ids=["pandas-nulls", "nan-values"])
def test_real_trees_from_parquet_choose_what_the_json_trees_choose(tmp_path, real_rows, writer):
    train = [row for row in real_rows if not in_validation(row["message_tree_id"], 0.2)]
    validation = [row for row in real_rows if in_validation(row["message_tree_id"], 0.2)] + HAND_TREES
    tables = load_parquet_splits(tmp_path, {"train": train, "validation": validation}, writer)
    conversations, summary = conversations_from_oasst1(tables, lang=None)
    assert (conversations, summary) == conversations_from_oasst1({"train": train, "validation": validation}, lang=None)
    assert summary == "440 messages in 38 trees -> 37 threads (lang=None); dropped: 1 trees without a usable thread"
    by_tree = {c["id"][:8]: [i[:8] for i in c["message_ids"]] for c in conversations}
    # all replies unranked: the smallest id wins; of two follow-ups the answered one (f8a83974) is taken
    assert by_tree["156b36ed"] == ["156b36ed", "01cac316", "f8a83974", "2d18c580"]
    assert conversations[-1] == HAND_THREAD
    first = conversations[0]
    assert first["message_ids"][:2] == ["951cb256-e0f7-49a4-9236-779f2be14b41", "fc1b6882-489d-4773-8edb-ab3cce588680"]
    assert first["messages"][1]["text"].startswith("When purchasing a new TV, here are the important specifications")
