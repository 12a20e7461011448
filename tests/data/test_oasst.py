"""oasst1 trees -> one best-ranked thread per tree, on the shared raw Open-Assistant trees."""

import hashlib
import itertools
import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from sft_utils import ConversationError, format_conversation, load_conversations, shared_data_dir
from sft_utils.data.oasst import (
    best_thread,
    best_threads,
    conversations_from_oasst1,
    flatten_tree,
    in_validation,
    is_null,
    is_usable,
    load_oasst1_conversations,
    split_by_tree,
    threads_from_messages,
)

TREE_FILES = ("trees_oasst_en100.jsonl", "trees_oasst2_openpaws.jsonl")


@pytest.fixture(scope="module")
def shared_trees():
    shared = shared_data_dir()
    if shared is None or not all((shared / name).exists() for name in TREE_FILES):
        pytest.skip("raw Open-Assistant trees absent: no ../shared/data/trees_*.jsonl (or $SFT_SHARED_DATA)")
    trees = {}
    for name in TREE_FILES:
        for line in (shared / name).read_text(encoding="utf-8").splitlines():
            tree = json.loads(line)
            trees[tree["message_tree_id"]] = tree
    return trees


def _tree(shared_trees, prefix):
    (tree_id,) = [tree_id for tree_id in shared_trees if tree_id.startswith(prefix)]
    return shared_trees[tree_id]


def _ids(thread):
    return [m["message_id"][:8] for m in thread]


# Checked by hand against the printed trees (role, rank, deleted, review_result of every message).
@pytest.mark.parametrize(
    "prefix, expected",
    [
        # three ranked replies to the root: rank 0 (6ab754aa) wins; no follow-up.
        ("141a4df2", ["141a4df2", "6ab754aa"]),
        # rank 0 (25af6b30), its only follow-up, then rank 0 of the second turn (508ab4e0, not 3ef56f32).
        ("f9818846", ["f9818846", "25af6b30", "47e6d13c", "508ab4e0"]),
        # the root's rank-0 reply b4a69827 is deleted: the thread goes on with a usable one.
        ("27307901", ["27307901", "2b6ad1f0", "926ef67a", "71192656"]),
        # all replies unranked (None): the smallest message id wins; of two follow-ups, 35eceae8 got no answer and is
        # passed over for f8a83974, whose rank-0 answer (2d18c580) ends the thread.
        ("156b36ed", ["156b36ed", "01cac316", "f8a83974", "2d18c580"]),
    ],
)
def test_the_best_ranked_thread_of_a_tree(shared_trees, prefix, expected):
    assert _ids(best_thread(flatten_tree(_tree(shared_trees, prefix)))) == expected


def test_a_review_rejected_reply_is_skipped(shared_trees):
    rows = flatten_tree(_tree(shared_trees, "81fed9b5"))
    rejected = [r for r in rows if r["message_id"].startswith("bc620234")]
    assert rejected[0]["review_result"] is False and rejected[0]["role"] == "assistant"
    assert _ids(best_thread(rows)) == ["81fed9b5", "dd51ffae", "777c5b2b", "f8915349"]


def test_no_deleted_rejected_or_synthetic_message_in_any_thread(shared_trees):
    rows = [row for tree in shared_trees.values() for row in flatten_tree(tree)]
    assert sum(bool(r.get("deleted")) for r in rows) == 19 and sum(r.get("review_result") is False for r in rows) == 7
    by_id = {r["message_id"]: r for r in rows}
    conversations = threads_from_messages(rows)
    assert len(conversations) == 70
    for conversation in conversations:
        thread = [by_id[i] for i in conversation["message_ids"]]
        assert all(is_usable(m) for m in thread)
        assert [m["role"] for m in thread] == ["prompter", "assistant"] * (len(thread) // 2)
        assert [m["parent_id"] for m in thread[1:]] == [m["message_id"] for m in thread[:-1]]


def test_agrees_with_the_shared_flattened_conversations(shared_trees):
    """conversations.jsonl was flattened from the same trees by another script (its README states the rule).
    Two trees differ, where that script's choices are not ours: in 2480d0da it took a follow-up question
    nobody answered (then trimmed it), we take the answered one; in 92825676 three replies are unranked
    and it took the second, we take the smallest message id."""
    shared = shared_data_dir()
    flattened = load_conversations(shared / "conversations.jsonl")
    meta = [json.loads(line) for line in (shared / "conversations.meta.jsonl").read_text().splitlines()]
    reference = {m["tree_id"]: (m["message_ids"], c["messages"]) for m, c in zip(meta, flattened) if m["tree_id"]}
    ours = threads_from_messages(row for tree in shared_trees.values() for row in flatten_tree(tree))
    differ = sorted(c["id"][:8] for c in ours if (c["message_ids"], c["messages"]) != reference[c["id"]])
    assert differ == ["2480d0da", "92825676"]


def test_rows_in_any_order_and_a_language_filter(shared_trees):
    rows = [row for tree in shared_trees.values() for row in flatten_tree(tree)]
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    by_tree = {c["id"]: c for c in threads_from_messages(rows)}
    assert {c["id"]: c for c in threads_from_messages(shuffled)} == by_tree
    english = threads_from_messages(rows, lang="en")
    assert len(english) == 36 + 13 and all(c["lang"] == "en" for c in english)
    assert {c["lang"] for c in by_tree.values()} == {"en", "es", "ru", "ca", "nl", "hu", "de", "zh", "vi"}


def test_split_by_tree_is_a_fixed_hash_of_the_tree_id(shared_trees):
    conversations = threads_from_messages(row for tree in shared_trees.values() for row in flatten_tree(tree))
    train, validation = split_by_tree(conversations, 0.2)
    assert len(train) + len(validation) == 70 and not {c["id"] for c in train} & {c["id"] for c in validation}
    for c in conversations:  # independent recomputation: sha256 -> first 8 bytes -> [0, 1)
        u = int(hashlib.sha256(c["id"].encode()).hexdigest()[:16], 16) / 16**16
        assert in_validation(c["id"], 0.2) == (u < 0.2)
    assert len(validation) == 14  # fixed by the hash: the same on every machine and in every process
    with pytest.raises(ValueError, match="validation_fraction"):
        split_by_tree(conversations, 1.0)


def test_bad_trees_are_refused():
    with pytest.raises(ValueError, match="no 'prompt'"):
        flatten_tree({"message_tree_id": "t"})
    rows = [{"message_id": "a", "parent_id": None, "message_tree_id": "t", "role": "prompter", "text": "x"}]
    with pytest.raises(ValueError, match="2 root messages"):
        best_thread(rows + [{**rows[0], "message_id": "b"}])
    with pytest.raises(ValueError, match="one tree"):
        best_thread(rows + [{**rows[0], "message_tree_id": "u"}])
    assert best_thread(rows) == []  # a prompt without an answer is no training example


def test_offline_falls_back_to_the_course_data_and_says_so():
    train, validation, source = load_oasst1_conversations()
    assert source.startswith("OFFLINE FALLBACK") and "data/conversations.jsonl" in source
    assert len(train) + len(validation) == 13
    assert sorted(c["id"] for c in validation) == ["arabic-greeting", "chinese-tea", "memo-riddle"]


def _row(message_id, parent_id, role, **fields):
    return {
        "message_id": message_id,
        "parent_id": parent_id,
        "message_tree_id": "t",
        "role": role,
        "text": "x",
    } | fields


@pytest.mark.parametrize(
    "reply, error, problem",
    [
        ({"text": None}, TypeError, "tree t, message b: text must be a str, got NoneType"),
        ({"role": "user"}, ValueError, "tree t, message b: role must be 'prompter' or 'assistant', got 'user'"),
        ({"rank": "first"}, TypeError, "tree t, message b: rank must be a number or None, got 'first'"),
        ({"message_id": None}, ValueError, "tree t, message None: no 'message_id'"),
    ],
)
def test_a_malformed_row_is_named(reply, error, problem):
    """Before: text None went through into the thread (the format failed later, naming only the tree), a
    missing key was a bare KeyError, a text rank a float() error."""
    rows = [_row("a", None, "prompter"), _row("b", "a", "assistant") | reply]
    with pytest.raises(error, match=problem):
        threads_from_messages(rows)


def test_a_root_that_is_not_a_prompt_is_refused():
    """Before: the thread [assistant] came back, a conversation the format refuses."""
    with pytest.raises(ValueError, match="tree t, message a: the root is the assistant's"):
        best_thread([_row("a", None, "assistant"), _row("b", "a", "prompter")])


def test_malformed_rows_and_trees_are_named():
    with pytest.raises(ValueError, match=r"message row 1 \(b\): no 'message_tree_id'"):
        threads_from_messages([_row("a", None, "prompter"), {"message_id": "b", "parent_id": "a", "role": "assistant"}])
    with pytest.raises(TypeError, match="message row 0: expected a dict, got str"):
        threads_from_messages(["a row"])
    with pytest.raises(TypeError, match="'prompt' is a dict, got str"):
        flatten_tree({"message_tree_id": "t", "prompt": "hi"})
    prompt = {"message_id": "a", "role": "prompter", "text": "x", "replies": [{"role": "assistant", "text": "y"}]}
    with pytest.raises(ValueError, match="tree t, a reply to a: no 'message_id'"):
        flatten_tree({"message_tree_id": "t", "prompt": prompt})
    with pytest.raises(ValueError, match="tree t, the prompt: 'replies' is not a list"):
        flatten_tree({"message_tree_id": "t", "prompt": prompt | {"replies": "none"}})


# --- Missing values as pandas writes them (NaN, pandas.NA) read as None -------------------------------------------


@pytest.mark.parametrize(
    "value, null",
    [
        (None, True),
        (float("nan"), True),
        (np.nan, True),
        (np.float32("nan"), True),
        (pd.NA, True),
        (pd.NaT, True),
        (0, False),
        (0.0, False),
        (np.int64(0), False),
        (False, False),
        ("", False),
        ("nan", False),
        ([], False),
        ({}, False),
    ],
)
def test_is_null(value, null):
    assert is_null(value) is null


def _unranked_tree(null):
    """p asks; a and b are unranked (null) and tie at 0.5, so the smaller id, a, beats c (rank 1); d (rank 0) is
    deleted. Every other field that may be missing is missing too."""
    return [
        _row("p", null, "prompter", rank=null, lang="en", review_result=null, deleted=null, synthetic=null),
        _row("b", "p", "assistant", rank=null, lang=null, review_result=null, deleted=False, synthetic=null),
        _row("c", "p", "assistant", rank=1, lang=null, review_result=True, deleted=null, synthetic=False),
        _row("a", "p", "assistant", rank=null, lang=null, review_result=null, deleted=null, synthetic=null),
        _row("d", "p", "assistant", rank=0, lang=null, review_result=True, deleted=True, synthetic=False),
    ]


@pytest.mark.parametrize("null", [float("nan"), np.nan, np.float32("nan"), pd.NA], ids=repr)
def test_null_ranks_choose_the_same_thread_as_none_in_every_order(null):
    """Before: with NaN ranks the choice between a, b and c depended on the rows' order (every comparison with
    NaN is False), and a NaN parent_id left the tree without a root."""
    expected = [m["message_id"] for m in best_thread(_unranked_tree(None))]
    assert expected == ["p", "a"]
    for order in itertools.permutations(_unranked_tree(null)):
        thread = best_thread(list(order))
        assert [m["message_id"] for m in thread] == expected
        assert [(m["rank"], m["parent_id"]) for m in thread] == [(None, None), (None, "p")]


def test_rows_from_a_dataframe_choose_the_same_threads_in_every_order():
    records = pd.DataFrame(_unranked_tree(None)).to_dict("records")
    assert math.isnan(records[0]["parent_id"]) and math.isnan(records[0]["rank"])  # what pandas makes of None
    for order in itertools.permutations(records):
        (conversation,) = threads_from_messages(order, lang="en")
        assert conversation["message_ids"] == ["p", "a"] and conversation["lang"] == "en"


@pytest.mark.parametrize(
    "fields, usable",
    [
        ({"deleted": np.nan, "review_result": np.nan, "synthetic": pd.NA}, True),
        ({"deleted": np.bool_(True)}, False),
        ({"review_result": np.bool_(False)}, False),
        ({"review_result": 0.0}, False),  # a bool column with missing values becomes float in pandas
        ({"review_result": 1.0, "deleted": 0.0, "synthetic": 0.0}, True),
    ],
)
def test_usable_reads_nulls_as_none_and_numpy_bools_as_bools(fields, usable):
    assert is_usable(_row("b", "a", "assistant") | fields) is usable


# --- A blank message (empty, whitespace, zero-width only) is skipped like a deleted one -----------------------------

BLANK = ["", "  \n\t", "\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \ufeff \u2060\n"]
NOT_BLANK = ["a", "\u200ba", " 4 ", "\u00a0x"]


@pytest.mark.parametrize("text", BLANK + NOT_BLANK, ids=ascii)
def test_blank_means_what_the_formatter_refuses(text):
    refused = False
    try:
        format_conversation([{"role": "prompter", "text": text}])
    except ConversationError:
        refused = True
    assert is_usable(_row("a", None, "prompter", text=text)) is not refused
    assert refused is (text in BLANK)


@pytest.mark.parametrize("blank", BLANK, ids=ascii)
def test_a_blank_best_reply_gives_way_to_the_next_ranked(blank):
    """Before: the blank rank-0 reply was chosen and the formatter then stopped the whole run."""
    rows = [
        _row("p", None, "prompter", text="Hi?"),
        _row("r0", "p", "assistant", text=blank, rank=0),
        _row("r1", "p", "assistant", text="Hello!", rank=1),
        _row("r2", "p", "assistant", text="Hey.", rank=2),
    ]
    (conversation,) = threads_from_messages(rows)
    assert conversation["message_ids"] == ["p", "r1"]
    format_conversation(conversation["messages"], conversation_id=conversation["id"])


def test_a_blank_follow_up_prompt_drops_its_branch():
    rows = [
        _row("p", None, "prompter", text="Hi?"),
        _row("r", "p", "assistant", text="Hello!", rank=0),
        _row("f1", "r", "prompter", text="\u200c \u200d"),  # answered, and the smaller id: taken if it counted
        _row("f1a", "f1", "assistant", text="An answer to nothing.", rank=0),
        _row("f2", "r", "prompter", text="How are you?"),
        _row("f2a", "f2", "assistant", text="Well.", rank=0),
    ]
    assert [m["message_id"] for m in best_thread(rows)] == ["p", "r", "f2", "f2a"]
    assert [m["message_id"] for m in best_thread(rows[:4])] == ["p", "r"]  # no other follow-up: the thread ends
    assert best_thread([_row("p", None, "prompter", text="\ufeff"), _row("r", "p", "assistant", rank=0)]) == []


def test_a_tree_whose_only_reply_is_zero_width_is_dropped_and_counted():
    rows = [
        _row("p", None, "prompter", text="Hi?"),
        _row("r", "p", "assistant", text="Hello!", rank=0),
        _row("q", None, "prompter", text="Say something.", message_tree_id="u"),
        _row("s", "q", "assistant", text="\u200b\u2060", rank=0, message_tree_id="u"),
    ]
    assert best_threads(rows) == {"t": best_thread(rows[:2]), "u": []}
    conversations, summary = conversations_from_oasst1({"train": rows[:2], "validation": rows[2:]}, lang=None)
    assert [c["id"] for c in conversations] == ["t"]
    assert summary == "4 messages in 2 trees -> 1 threads (lang=None); dropped: 1 trees without a usable thread"


def test_the_summary_counts_trees_of_another_language():
    rows = [
        _row("p", None, "prompter", text="Hi?", lang="en"),
        _row("r", "p", "assistant", text="Hello!", lang="en"),
        _row("q", None, "prompter", text="Hola?", lang="es", message_tree_id="u"),
        _row("s", "q", "assistant", text="Hola.", lang="es", message_tree_id="u"),
    ]
    conversations, summary = conversations_from_oasst1({"train": rows}, lang="es")
    assert [c["id"] for c in conversations] == ["u"]
    assert summary == (
        "4 messages in 2 trees -> 1 threads (lang=es); dropped: 0 trees without a usable thread, 1 in another language"
    )
    with pytest.raises(TypeError, match="expected a mapping of split name -> message rows .*, got list"):
        conversations_from_oasst1(rows)
