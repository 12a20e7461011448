"""Bad or unusual input gives a clear error or a documented, correct mask; never a silent wrong one.

The validation rules themselves (formatting.normalize_messages) are tested one by one in
test_formatting.py; here they are checked through tokenize_conversation, the path to training, together
with the cases that are not errors: literal markers, Unicode, very long messages and truncation.
"""

import unicodedata

import pytest

from sft_utils import (
    ConversationError,
    render_message,
    shift_for_next_token,
    tokenize_conversation,
    tokenize_conversations,
    truncation_report,
)
from sft_utils.steps.format import ASSISTANT, normalize_messages

HELLO = [{"role": "prompter", "text": "Hello, how are you?"}, {"role": "assistant", "text": "I am fine."}]
MEMO_HELLO = HELLO + [
    {"role": "prompter", "text": "What is your name?"},
    {"role": "assistant", "text": "My name is John."},
]  # 28 tokens: messages of 8, 6, 7 and 7 (test_masking.py prints them)


def roles_by_message(example, messages):
    return [normalize_messages(messages)[i]["role"] for i in example["message_indices"]]


def assert_each_message_decodes_to_itself(example, messages, tokenizer):
    """Every message's tokens decode to its rendering (text in NFC), and exactly the assistant's are trained."""
    normalized = normalize_messages(messages)
    for index, message in enumerate(normalized):
        ids = [i for i, m in zip(example["input_ids"], example["message_indices"]) if m == index]
        nfc = {**message, "text": unicodedata.normalize("NFC", message["text"])}
        assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == render_message(nfc)
    assert example["label_mask"] == [role == ASSISTANT for role in roles_by_message(example, messages)]


# --- errors: each names the conversation and the message ---------------------------------------------


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([{"role": "prompter", "text": "   "}, HELLO[1]], "'c1', message 0: text is empty or whitespace only"),
        ([HELLO[0], {"role": "assistant", "text": "\u200b\ufeff"}], "'c1', message 1: text is empty"),
        ([{"role": "robot", "text": "hi"}, HELLO[1]], "'c1', message 0: unknown role 'robot'"),
        ([HELLO[0], {"role": "assistant"}], "'c1', message 1: has no 'text' (or 'content') key"),
        ([HELLO[0], {"role": "assistant", "text": ["I", "am"]}], "'c1', message 1: text must be a str, got list"),
        ([HELLO[0], {"role": "assistant", "content": None}], "'c1', message 1: text must be a str, got NoneType"),
        ([HELLO[0], HELLO[0], HELLO[1]], "'c1', message 1: expected role 'assistant'"),
        ([HELLO[0], HELLO[1], HELLO[1]], "'c1', message 2: expected role 'prompter'"),
        ([*HELLO, {"role": "system", "text": "Be brief."}], "'c1', message 2: system message is not the first"),
        ([HELLO[0]], "'c1': no assistant message, so nothing to train"),
        ([{"role": "system", "text": "Be brief."}, HELLO[0]], "'c1': no assistant message"),
    ],
)
def test_bad_conversations_are_refused_before_any_mask_is_built(tokenizer, messages, expected):
    with pytest.raises(ConversationError) as error:
        tokenize_conversation(messages, tokenizer, conversation_id="c1")
    assert expected in str(error.value)


def test_a_conversation_ending_with_the_prompter_trains_its_earlier_replies(tokenizer):
    """Not an error: the last prompter turn is context without a reply (28 + 6 tokens, 13 trained)."""
    example = tokenize_conversation([*MEMO_HELLO, {"role": "prompter", "text": "Bye."}], tokenizer)
    assert len(example["input_ids"]) == 32 and sum(example["label_mask"]) == 13
    assert example["label_mask"][-4:] == [False] * 4


# --- literal markers typed in a message stay text -----------------------------------------------------


def run_lengths(example) -> list[tuple[int, bool]]:
    """(message index, trained) of each message, in order: the mask's shape, independent of token counts."""
    runs = []
    for index, trained in zip(example["message_indices"], example["label_mask"]):
        if not runs or runs[-1] != (index, trained):
            runs.append((index, trained))
    return runs


@pytest.mark.parametrize(
    "marker", ["<|assistant|>", "<|prompter|>", "<|endoftext|>", "<|padding|>", "<|system|>", "<|prefix_begin|>"]
)
@pytest.mark.parametrize("role", ["prompter", "assistant"])
def test_a_typed_marker_is_plain_text_in_either_role(tokenizer, marker, role):
    """The mask equals that of the same text with the marker spelled differently; only inserted markers are ids."""
    text = f"What does {marker} mean? {marker}"
    spelled = text.replace("|>", " |>")
    where = 2 if role == "prompter" else 3  # the second prompter turn, or the second reply

    def with_text(t):
        return [{"role": m["role"], "text": t if i == where else m["text"]} for i, m in enumerate(MEMO_HELLO)]

    messages, spelled_messages = with_text(text), with_text(spelled)
    example, reference = (tokenize_conversation(m, tokenizer) for m in (messages, spelled_messages))
    assert run_lengths(example) == run_lengths(reference) == [(0, False), (1, True), (2, False), (3, True)]
    # role ids: exactly the 4 inserted markers and 4 closing <|endoftext|>; <|padding|> (1) never appears
    ids = example["input_ids"]
    assert [i for i in ids if i in (0, 1, 50277, 50279, 50280, 50281)] == [50279, 0, 50280, 0, 50279, 0, 50280, 0]
    assert_each_message_decodes_to_itself(example, messages, tokenizer)


# --- Unicode ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, ids",
    [
        ("re\u0301sume\u0301", [20887, 2204, 860]),  # combining accents: the tokenizer's NFC gives "résumé"
        ("a\u200bb", [66, 12882, 67]),  # a zero-width space inside a word is kept (3 bytes, one token)
        ("שלום", [26344, 20770, 12859, 240]),  # right-to-left
        ("x\u202eabc", [89, 325, 108, 19758]),  # a right-to-left override character stays in the text
        ("👩\u200d💻 ok", [14931, 228, 104, 325, 224, 14931, 229, 121, 8718]),  # emoji ZWJ sequence: byte tokens
        ("你好，世界", [24553, 34439, 6238, 42848, 45261]),  # CJK
        ("line1\r\nline2", [1282, 18, 190, 187, 1282, 19]),  # \r (190) and \n (187) both kept
    ],
)
def test_unicode_reply_is_trained_token_for_token(tokenizer, text, ids):
    messages = [{"role": "prompter", "text": "Say it."}, {"role": "assistant", "text": text}]
    example = tokenize_conversation(messages, tokenizer)
    prompt = [50279, 27128, 352, 15, 0]  # <|prompter|> Say ␣it . <|endoftext|>
    assert example["input_ids"] == [*prompt, 50280, *ids, 0]
    assert example["label_mask"] == [False] * 5 + [True] * (len(ids) + 2)
    assert_each_message_decodes_to_itself(example, messages, tokenizer)


def test_decomposed_and_composed_text_give_one_mask_and_decode_to_nfc(tokenizer):
    decomposed = [
        {"role": "prompter", "text": "Cafe\u0301?"},
        {"role": "assistant", "text": "Ou\u0300 est le cafe\u0301"},
    ]
    composed = [{"role": "prompter", "text": "Café?"}, {"role": "assistant", "text": "Où est le café"}]
    example = tokenize_conversation(decomposed, tokenizer)
    assert example == tokenize_conversation(composed, tokenizer)
    trained = [i for i, on in zip(example["input_ids"], example["label_mask"]) if on]
    assert tokenizer.decode(trained) == "<|assistant|>Où est le café<|endoftext|>"


def test_a_message_of_12_500_characters_is_tokenized_whole(tokenizer):
    long_reply = "word" + " word" * 2499  # 12 499 characters, one token per word
    messages = [{"role": "prompter", "text": "Repeat a word."}, {"role": "assistant", "text": long_reply}]
    example = tokenize_conversation(messages, tokenizer)
    assert len(long_reply) == 12_499
    # <|prompter|> Re peat ␣a ␣word . <|endoftext|> = 7 tokens, then <|assistant|>, 2500 words, <|endoftext|>
    assert example["input_ids"][:9] == [50279, 1785, 16388, 247, 3159, 15, 0, 50280, 3418]
    assert len(example["input_ids"]) == 7 + 2502 and example["input_ids"][9:-1] == [3159] * 2499
    assert sum(example["label_mask"]) == 2502
    assert_each_message_decodes_to_itself(example, messages, tokenizer)


# --- truncation -------------------------------------------------------------------------------------


def test_truncation_inside_a_reply_keeps_its_head_trained(tokenizer):
    """max_length=11 cuts the first reply after "I am": <|assistant|> I ␣am stay trained, no <|endoftext|>."""
    example = tokenize_conversation(MEMO_HELLO, tokenizer, max_length=11)
    assert tokenizer.convert_ids_to_tokens(example["input_ids"][8:]) == ["<|assistant|>", "I", "Ġam"]
    assert example["label_mask"] == [False] * 8 + [True] * 3
    assert sum(shift_for_next_token(example)["label_masks"]) == 3


def test_truncation_report_counts_cut_replies_and_untrained_examples(tokenizer):
    conversations = [
        {"id": "whole", "messages": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]},
        {"id": "reply-cut", "messages": MEMO_HELLO},  # 28 tokens, cut at 11 inside reply 1
        {"id": "prompt-only", "messages": [{"role": "prompter", "text": "word " * 20}, HELLO[1]]},
    ]
    # 7 tokens (untouched); 28 tokens, cut after "I am"; a 23-token prompt, so its reply is cut off entirely
    report = truncation_report(conversations, tokenizer, max_length=11)
    assert report.examples == 3
    assert report.truncated == ["reply-cut", "prompt-only"]
    assert report.replies_cut == ["reply-cut"]
    assert report.no_trained_target == ["prompt-only"] and report.dropped == []
    assert (report.trained_targets_before, report.trained_targets_after) == (4 + 13 + 6, 4 + 3 + 0)
    assert str(report).startswith("max_length=11: 3 examples, 2 truncated, 1 with a reply cut, 1 with no trained")


def test_tokenize_conversations_warns_once_or_drops_and_counts(tokenizer):
    short = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]  # 7 tokens
    conversations = [{"id": "a", "messages": short}, {"id": "b", "messages": MEMO_HELLO}]
    with pytest.warns(UserWarning, match=r"1 example\(s\) have no trained target .* \(conversation 'b'\)") as record:
        kept, report = tokenize_conversations(conversations, tokenizer, max_length=8)
    assert len(record) == 1 and len(kept) == 2 and report.no_trained_target == ["b"]
    kept, report = tokenize_conversations(conversations, tokenizer, max_length=8, drop_untrained=True)
    assert len(kept) == 1 and report.dropped == ["b"]
    assert kept[0]["label_mask"] == [False] * 3 + [True] * 4  # "a", whole


def test_truncation_report_on_the_course_data(tokenizer, course_conversations):
    """An independent count: an example keeps a trained target iff its first trained token is before max_length."""
    for max_length in (16, 64, 256):
        report = truncation_report(course_conversations, tokenizer, max_length=max_length)
        firsts = {}
        for c in course_conversations:
            mask = tokenize_conversation(c["messages"], tokenizer)["label_mask"]
            firsts[c["id"]] = mask.index(True)
        assert report.no_trained_target == [c["id"] for c in course_conversations if firsts[c["id"]] >= max_length]
        assert report.examples == len(course_conversations)


@pytest.mark.parametrize(
    "conversations, problem",
    [
        ([[{"role": "prompter", "text": "Hi"}]], "conversation 0: expected a dict with a 'messages' list"),
        ([{"text": "Hi"}], "conversation 0: expected a dict with a 'messages' list"),
    ],
    ids=["a-message-list", "no-messages-key"],
)
def test_tokenize_conversations_names_an_item_that_is_not_a_conversation(tokenizer, conversations, problem):
    with pytest.raises(ConversationError, match=problem):
        tokenize_conversations(conversations, tokenizer)


def test_tokenize_conversations_checks_max_length_even_when_nothing_is_cut(tokenizer):
    with pytest.raises(ValueError, match="max_length must be an int >= 1"):
        tokenize_conversations([], tokenizer, max_length=0)
