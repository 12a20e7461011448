"""Step 3: message indices and label mask, on the memo's example and on every conversation we have."""

import pytest

import sft_utils
from sft_utils import render_message, shift_for_next_token, tokenize_conversation
from sft_utils.steps.format import ASSISTANT, format_conversation

MEMO_HELLO = [
    {"role": "prompter", "text": "Hello, how are you?"},
    {"role": "assistant", "text": "I am fine."},
    {"role": "prompter", "text": "What is your name?"},
    {"role": "assistant", "text": "My name is John."},
]


def test_memo_message_indices_and_label_mask(tokenizer):
    """The memo's TEXT / MESSAGE_INDICES / LABEL_MASK picture, at token level."""
    example = tokenize_conversation(MEMO_HELLO, tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(example["input_ids"])
    assert tokens == [
        "<|prompter|>",
        "Hello",
        ",",
        "Ġhow",
        "Ġare",
        "Ġyou",
        "?",
        "<|endoftext|>",
        "<|assistant|>",
        "I",
        "Ġam",
        "Ġfine",
        ".",
        "<|endoftext|>",
        "<|prompter|>",
        "What",
        "Ġis",
        "Ġyour",
        "Ġname",
        "?",
        "<|endoftext|>",
        "<|assistant|>",
        "My",
        "Ġname",
        "Ġis",
        "ĠJohn",
        ".",
        "<|endoftext|>",
    ]
    assert example["message_indices"] == [0] * 8 + [1] * 6 + [2] * 7 + [3] * 7
    assert example["label_mask"] == [False] * 8 + [True] * 6 + [False] * 7 + [True] * 7
    assert example["attention_mask"] == [1] * 28


def test_system_message_is_index_0_and_untrained(tokenizer):
    example = tokenize_conversation(MEMO_HELLO[:2], tokenizer, system="Be brief.")
    tokens = tokenizer.convert_ids_to_tokens(example["input_ids"])
    assert tokens[:5] == ["<|system|>", "Be", "Ġbrief", ".", "<|endoftext|>"]
    assert example["message_indices"][:5] == [0] * 5 and example["label_mask"][:5] == [False] * 5
    assert example["message_indices"][5] == 1


def test_ids_equal_tokenizing_the_formatted_string(tokenizer, course_conversations):
    """Building ids message by message is the same as tokenizing the memo's formatted string."""
    for conversation in course_conversations:
        text = format_conversation(conversation["messages"])
        if "<|" in "".join(m["text"] for m in conversation["messages"]):
            continue  # literal markers: handled (differently, on purpose) below
        expected = tokenizer(text)["input_ids"]
        assert tokenize_conversation(conversation["messages"], tokenizer)["input_ids"] == expected, conversation["id"]


def test_literal_markers_in_text_stay_plain_text(tokenizer):
    """A user typing '<|assistant|>' must not open an assistant turn: its tokens keep the user's role."""
    literal = [
        {"role": "prompter", "text": "What does <|assistant|> or <|endoftext|> mean?"},
        {"role": "assistant", "text": "Markers."},
    ]
    spelled = [
        {"role": "prompter", "text": "What does <|assistant |> or <|endoftext |> mean?"},
        {"role": "assistant", "text": "Markers."},
    ]
    a, b = (tokenize_conversation(m, tokenizer) for m in (literal, spelled))
    assert a["input_ids"].count(50280) == 1 and a["input_ids"].count(0) == 2  # only the inserted ones
    trained = lambda e: [i for i, on in zip(e["input_ids"], e["label_mask"]) if on]
    assert trained(a) == trained(b) == [50280, *tokenizer("Markers.")["input_ids"], 0]
    first_assistant = a["input_ids"].index(50280)
    assert a["message_indices"][:first_assistant] == [0] * first_assistant
    assert not any(a["label_mask"][:first_assistant])
    assert tokenizer.decode(a["input_ids"][1 : first_assistant - 1]) == literal[0]["text"]


def test_truncation_keeps_the_first_tokens(tokenizer):
    full = tokenize_conversation(MEMO_HELLO, tokenizer)
    cut = tokenize_conversation(MEMO_HELLO, tokenizer, max_length=10)
    assert all(cut[k] == full[k][:10] for k in full)


def test_truncation_that_removes_every_trained_token_warns(tokenizer):
    with pytest.warns(UserWarning, match="conversation 'hello'.*left no trained token"):
        example = tokenize_conversation(MEMO_HELLO, tokenizer, max_length=8, conversation_id="hello")
    assert example["label_mask"] == [False] * 8


def test_truncation_keeping_only_the_assistant_marker_still_trains_it(tokenizer, recwarn):
    example = tokenize_conversation(MEMO_HELLO, tokenizer, max_length=9)
    assert shift_for_next_token(example)["label_masks"] == [False] * 7 + [True]  # predicting <|assistant|>
    assert not [w for w in recwarn if "no trained token" in str(w.message)]


@pytest.mark.parametrize("value", [0, -1, 2.5, "5", True])
def test_bad_max_length_is_rejected(tokenizer, value):
    with pytest.raises(ValueError, match="max_length must be an int >= 1"):
        tokenize_conversation(MEMO_HELLO, tokenizer, max_length=value)


def test_decomposed_text_comes_back_composed(tokenizer):
    """The tokenizer's NFC normaliser: the ids of "e + combining acute" are those of "é"."""
    decomposed = [{"role": "prompter", "text": "Bonjour"}, {"role": "assistant", "text": "re\u0301sume\u0301"}]
    composed = [{"role": "prompter", "text": "Bonjour"}, {"role": "assistant", "text": "résumé"}]
    assert tokenize_conversation(decomposed, tokenizer) == tokenize_conversation(composed, tokenizer)


def test_tokenizer_without_role_tokens_is_rejected():
    from transformers import AutoTokenizer

    from sft_utils.models.assets import offline_tokenizer_dir

    if not (offline_tokenizer_dir() / "tokenizer.json").exists():
        pytest.skip("needs the offline folder for a base tokenizer")
    with pytest.raises(ValueError, match="has no '<\\|prompter\\|>' token"):
        tokenize_conversation(MEMO_HELLO, AutoTokenizer.from_pretrained(offline_tokenizer_dir()))


def assert_trained_targets_are_the_assistant_messages(conversation, tokenizer):
    """Decoded targets under the shifted label mask == each assistant message rendered, nothing else."""
    messages = conversation["messages"]
    example = tokenize_conversation(messages, tokenizer)
    shifted = shift_for_next_token(example)
    target_message = example["message_indices"][1:]
    assert len(shifted["input_ids"]) == len(shifted["targets"]) == len(shifted["label_masks"])
    assert shifted["targets"] == example["input_ids"][1:]
    trained = [i for i, on in enumerate(shifted["label_masks"]) if on]
    assert all(messages[target_message[t]]["role"] == ASSISTANT for t in trained), conversation["id"]
    for index, message in enumerate(messages):
        ids = [shifted["targets"][t] for t in trained if target_message[t] == index]
        expected = render_message(message) if message["role"] == ASSISTANT else ""
        decoded = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        assert decoded == expected, (conversation["id"], index)


def test_every_course_conversation_trains_exactly_its_assistant_messages(tokenizer, course_conversations):
    assert len(course_conversations) >= 10
    for conversation in course_conversations:
        assert_trained_targets_are_the_assistant_messages(conversation, tokenizer)


def test_every_shared_conversation_trains_exactly_its_assistant_messages(tokenizer, shared_conversations):
    assert len(shared_conversations) == 100
    for conversation in shared_conversations:
        assert_trained_targets_are_the_assistant_messages(conversation, tokenizer)


def test_generation_prompt_ids_end_with_the_assistant_marker_and_keep_typed_markers_as_text(tokenizer):
    messages = [{"role": "prompter", "text": "Say <|assistant|> please"}]
    ids = sft_utils.generation_prompt_ids(messages, tokenizer)
    text_ids = tokenizer(messages[0]["text"], split_special_tokens=True)["input_ids"]
    assert ids == [50279, *text_ids, 0, 50280]
    assert ids.count(50280) == 1
    plain = [{"role": "prompter", "text": "Hi"}]
    assert (
        sft_utils.generation_prompt_ids(plain, tokenizer)
        == tokenizer(format_conversation(plain, add_generation_prompt=True))["input_ids"]
        == [50279, 12764, 0, 50280]
    )


def test_generation_prompt_after_a_reply_is_an_error(tokenizer):
    with pytest.raises(sft_utils.ConversationError, match="must end with the prompter, not the assistant"):
        sft_utils.generation_prompt_ids(MEMO_HELLO, tokenizer, conversation_id="c")
