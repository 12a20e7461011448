"""The fast dataset pipeline gives exactly tokenize_conversation's ids and masks, and the same errors."""

import warnings

import pytest

from sft_utils import ConversationError, tokenize_conversation
from sft_utils.scale.preprocess import encode_texts, examples_from_packed, preprocess_dataset, tokenize_packed


def tokenize_conversations(conversations, tokenizer, **kwargs):
    """The fast route's examples, in tokenize_conversation's form."""
    return examples_from_packed(tokenize_packed(conversations, tokenizer, **kwargs))


TYPED_MARKERS = [
    {"role": "prompter", "text": "Say <|assistant|> and <|endoftext|> literally<|prompter|>"},
    {"role": "assistant", "text": "<|system|>Done: <|assistant|>"},
]


def reference(conversations, tokenizer, max_length=None):
    """tokenize_conversation one by one, and the warnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples = [
            tokenize_conversation(c["messages"], tokenizer, max_length=max_length, conversation_id=c["id"])
            for c in conversations
        ]
    return examples, [str(w.message) for w in caught]


def fast(conversations, tokenizer, max_length=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples = tokenize_conversations(
            [c["messages"] for c in conversations],
            tokenizer,
            max_length=max_length,
            conversation_ids=[c["id"] for c in conversations],
        )
    return examples, [str(w.message) for w in caught]


def test_batched_encoding_keeps_typed_markers_as_text(tokenizer):
    texts = [m["text"] for m in TYPED_MARKERS]
    split = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert encode_texts(tokenizer, texts) == split
    # Without split_special_tokens the typed markers would become role ids: the check above can fail.
    assert tokenizer(texts, add_special_tokens=False)["input_ids"] != split
    assert not {50279, 50280, 50281, 0} & {i for ids in split for i in ids}


def test_encoding_restores_the_tokenizer_setting(tokenizer):
    encode_texts(tokenizer, ["x"])
    assert tokenizer.backend_tokenizer.encode_special_tokens is False
    assert tokenizer("<|assistant|>", add_special_tokens=False)["input_ids"] == [50280]


@pytest.mark.parametrize("max_length", [None, 1, 2, 9, 64, 700])
def test_equals_tokenize_conversation_on_course_data(tokenizer, course_conversations, max_length):
    conversations = course_conversations + [{"id": "typed-markers", "messages": TYPED_MARKERS}]
    assert fast(conversations, tokenizer, max_length) == reference(conversations, tokenizer, max_length)


@pytest.mark.parametrize("max_length", [None, 8, 300, 2048])
def test_equals_tokenize_conversation_on_shared_data(tokenizer, shared_conversations, max_length):
    examples, messages = fast(shared_conversations, tokenizer, max_length)
    expected, expected_messages = reference(shared_conversations, tokenizer, max_length)
    assert messages == expected_messages
    for conversation, example, want in zip(shared_conversations, examples, expected):
        assert example == want, conversation["id"]


def test_truncation_warning_names_the_conversation(tokenizer):
    conversation = [{"role": "prompter", "text": "a long question " * 20}, {"role": "assistant", "text": "yes"}]
    with pytest.warns(UserWarning, match="conversation 'long-q'.*left no trained token"):
        tokenize_conversations([conversation], tokenizer, max_length=10, conversation_ids=["long-q"])


def test_bad_conversation_is_named(tokenizer):
    good = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello"}]
    bad = [{"role": "assistant", "text": "I speak first"}]
    with pytest.raises(ConversationError, match=r"conversation 'bad-one', message 0: expected role 'prompter'"):
        tokenize_conversations([good, bad], tokenizer, conversation_ids=["good", "bad-one"])


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "8"])
def test_bad_max_length_is_rejected(tokenizer, value):
    with pytest.raises(ValueError, match="max_length"):
        tokenize_conversations([TYPED_MARKERS], tokenizer, max_length=value)


def test_a_slow_tokenizer_is_refused():
    with pytest.raises(TypeError, match="not a fast tokenizer"):
        encode_texts(object(), ["hello"])


def test_empty_list_gives_no_examples(tokenizer):
    assert tokenize_conversations([], tokenizer) == []


def test_dataset_rows_equal_tokenize_conversation(tokenizer, course_conversations):
    dataset = preprocess_dataset(course_conversations, tokenizer, max_length=64, batch_size=5, desc=None)
    expected, _ = reference(course_conversations, tokenizer, max_length=64)
    assert dataset.column_names == ["id", "input_ids", "attention_mask", "message_indices", "label_mask"]
    assert dataset["id"] == [c["id"] for c in course_conversations]
    rows = [{k: row[k] for k in expected[0]} for row in dataset]
    assert rows == expected
    assert str(dataset.features["input_ids"].feature.dtype) == "int32"


def test_dataset_with_worker_processes_gives_the_same_rows(tokenizer, course_conversations):
    one = preprocess_dataset(course_conversations, tokenizer, batch_size=4, desc=None)
    two = preprocess_dataset(course_conversations, tokenizer, batch_size=4, num_proc=2, desc=None)
    assert one.to_dict() == two.to_dict()


def test_dataset_accepts_both_message_forms(tokenizer):
    """Arrow fills a missing struct field with None; a 'content' message next to 'text' ones still works."""
    rows = [
        {"id": "course-form", "messages": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Yo"}]},
        {"id": "chat-form", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
    ]
    dataset = preprocess_dataset(rows, tokenizer, desc=None)
    assert dataset[0]["input_ids"] == dataset[1]["input_ids"]
    assert dataset[1]["input_ids"] == tokenize_conversation(rows[1]["messages"], tokenizer)["input_ids"]


def test_dataset_error_names_the_conversation(tokenizer):
    rows = [{"id": "fine", "messages": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Yo"}]}]
    rows.append(
        {"id": "blank-reply", "messages": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": " "}]}
    )
    with pytest.raises(ConversationError, match=r"conversation 'blank-reply', message 1: text is empty"):
        preprocess_dataset(rows, tokenizer, desc=None)


def test_dataset_without_messages_column_is_refused(tokenizer):
    with pytest.raises(ValueError, match="no 'messages' column"):
        preprocess_dataset([{"id": "x", "text": "hello"}], tokenizer, desc=None)


def test_no_reply_is_refused_as_by_tokenize_conversation(tokenizer):
    """A conversation without an assistant message has nothing to train: an error, not a row of False."""
    rows = [{"id": "question-only", "messages": [{"role": "prompter", "text": "Hi"}]}]
    with pytest.raises(ConversationError, match=r"conversation 'question-only': no assistant message"):
        tokenize_conversation(rows[0]["messages"], tokenizer, conversation_id="question-only")
    with pytest.raises(ConversationError, match=r"conversation 'question-only': no assistant message"):
        tokenize_conversations([rows[0]["messages"]], tokenizer, conversation_ids=["question-only"])
    with pytest.raises(ConversationError, match=r"conversation 'question-only': no assistant message"):
        preprocess_dataset(rows, tokenizer, desc=None)


@pytest.mark.parametrize(
    "text, problem",
    [(5, "text must be a str, got int"), ("a\ud800", "text is not valid Unicode")],
)
def test_rows_arrow_cannot_store_are_named(tokenizer, text, problem):
    """Arrow refuses a non-str text next to str ones, or a lone surrogate, before sft_utils sees the rows."""
    rows = [
        {"id": "fine", "messages": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Yo"}]},
        {"id": "odd-text", "messages": [{"role": "prompter", "text": text}, {"role": "assistant", "text": "Yo"}]},
    ]
    with pytest.raises(ConversationError, match=rf"conversation 'odd-text', message 0: {problem}"):
        preprocess_dataset(rows, tokenizer, desc=None)


@pytest.mark.parametrize("dataset, problem", [({"messages": []}, "got dict"), ([[{"role": "prompter"}]], "row 0")])
def test_a_dataset_of_the_wrong_kind_is_refused(tokenizer, dataset, problem):
    with pytest.raises(TypeError, match=problem):
        preprocess_dataset(dataset, tokenizer, desc=None)


def test_ids_of_another_length_are_refused(tokenizer):
    """Before: three conversations with one id gave one example, the other two silently dropped."""
    conversation = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Yo"}]
    with pytest.raises(ValueError, match="1 conversation_ids for 3 conversations"):
        tokenize_conversations([conversation] * 3, tokenizer, conversation_ids=["a"])
