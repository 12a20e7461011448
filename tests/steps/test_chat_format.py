"""ChatFormat: Open-Assistant's fields and ids, its checks, and one seam that every step reads."""

import dataclasses

import pytest

import sft_utils
from sft_utils import OPEN_ASSISTANT, tokenize_conversation
from sft_utils.scale.preprocess import examples_from_packed, tokenize_packed

HELLO = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello there"}]


def test_open_assistant_is_the_memos_format(tokenizer):
    assert OPEN_ASSISTANT.added_token_ids(50277) == {
        "<|prefix_begin|>": 50277,
        "<|prefix_end|>": 50278,
        "<|prompter|>": 50279,
        "<|assistant|>": 50280,
        "<|system|>": 50281,
    }
    assert (OPEN_ASSISTANT.end_of_message, OPEN_ASSISTANT.pad_token) == ("<|endoftext|>", "<|padding|>")
    assert OPEN_ASSISTANT.render("assistant", "Yes") == "<|assistant|>Yes<|endoftext|>"
    assert OPEN_ASSISTANT.reply_mask(2) == [True, True, True, True]
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in OPEN_ASSISTANT.added_tokens} == sft_utils.ROLE_TOKEN_IDS
    assert tokenizer.chat_template == OPEN_ASSISTANT.chat_template()


def test_a_chat_format_is_frozen_and_hashable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        OPEN_ASSISTANT.train_end = False
    with pytest.raises(TypeError):
        OPEN_ASSISTANT.role_markers["prompter"] = "<|user|>"
    assert hash(OPEN_ASSISTANT) == hash(dataclasses.replace(OPEN_ASSISTANT))


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            {"role_markers": {"prompter": "<|prompter|>", "assistant": "<|assistant|>"}},
            r"no marker for role\(s\) \['system'\]",
        ),
        ({"added_tokens": ("<|prompter|>", "<|assistant|>")}, r"markers \['<\|system\|>'\] are not in added_tokens"),
        ({"pad_token": "<|endoftext|>"}, "pad_token must differ from end_of_message"),
    ],
)
def test_an_inconsistent_format_is_refused(change, problem):
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(OPEN_ASSISTANT, name="broken", **change)


@pytest.mark.parametrize(
    "train_marker, train_end, reply_mask",
    [
        (True, True, [1, 1, 1, 1]),
        (False, True, [0, 1, 1, 1]),
        (True, False, [1, 1, 1, 0]),
        (False, False, [0, 1, 1, 0]),
    ],
)
def test_what_a_reply_trains_is_the_formats_choice(tokenizer, train_marker, train_end, reply_mask):
    """<|assistant|> Hello there <|endoftext|>: the text is always trained; marker and end as the format says."""
    chat_format = dataclasses.replace(OPEN_ASSISTANT, train_marker=train_marker, train_end=train_end)
    example = tokenize_conversation(HELLO, tokenizer, chat_format=chat_format)
    assert example["input_ids"] == [50279, 12764, 0, 50280, 12092, 627, 0]
    assert example["label_mask"] == [False] * 3 + [bool(b) for b in reply_mask]
    # The data-set route reads the same choice.
    assert examples_from_packed(tokenize_packed([HELLO], tokenizer, chat_format=chat_format)) == [example]


def test_every_step_reads_the_markers_from_the_format(tokenizer):
    """A format whose prompter marker is <|prefix_begin|>: format, tokenize and mask all follow it."""
    markers = dict(OPEN_ASSISTANT.role_markers, prompter="<|prefix_begin|>")
    other = dataclasses.replace(OPEN_ASSISTANT, name="other", role_markers=markers)
    assert sft_utils.format_conversation(HELLO, chat_format=other) == (
        "<|prefix_begin|>Hi<|endoftext|><|assistant|>Hello there<|endoftext|>"
    )
    assert tokenize_conversation(HELLO, tokenizer, chat_format=other)["input_ids"][0] == 50277
    prompt = sft_utils.generation_prompt_ids(HELLO[:1], tokenizer, chat_format=other)
    assert prompt == [50277, 12764, 0, 50280]
