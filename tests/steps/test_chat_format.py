"""ChatFormat: Open-Assistant's fields and ids, its checks, and one seam that every step reads."""

import dataclasses

import pytest

import sft_utils
from sft_utils import OPEN_ASSISTANT, ChatFormat, tokenize_conversation
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


CHATML_TEMPLATE = """{%- for m in messages -%}
{%- if m['role'] == 'assistant' -%}{% generation %}<|im_start|>assistant\n{{ m['content'] }}<|im_end|>{% endgeneration %}
{%- else -%}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{%- endif -%}
{%- endfor -%}"""


@pytest.fixture
def chatml(tmp_path):
    """A ChatML-style format defined outside the package: its own end token, added after its markers."""
    template = tmp_path / "chatml.jinja"
    template.write_text(CHATML_TEMPLATE)
    markers = {
        "prompter": "<|im_start|>user\n",
        "assistant": "<|im_start|>assistant\n",
        "system": "<|im_start|>system\n",
    }
    added = (*markers.values(), "<|im_end|>")
    return ChatFormat(
        "chatml-like", markers, "<|im_end|>", added, "<|padding|>", train_marker=False, template=str(template)
    )


def test_a_format_with_its_own_end_token_loads_and_masks(chatml):
    tokenizer = sft_utils.load_tokenizer(chat_format=chatml, verbose=False)
    example = tokenize_conversation(HELLO, tokenizer, chat_format=chatml)
    assert example["input_ids"] == [50277, 12764, 50280, 50278, 12092, 627, 50280]
    assert example["label_mask"] == [False, False, False, False, True, True, True]
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    assert rendered["input_ids"] == example["input_ids"]


def test_an_end_token_that_is_neither_pythias_nor_added_is_refused(chatml):
    lost_end = dataclasses.replace(chatml, added_tokens=chatml.added_tokens[:-1])
    with pytest.raises(ValueError, match=r"'<\|im_end\|>' has id .* expected 0"):
        sft_utils.load_tokenizer(chat_format=lost_end, verbose=False)


@pytest.mark.parametrize(
    "change, error, problem",
    [
        ({"added_tokens": {"<|prompter|>", "<|assistant|>", "<|system|>"}}, TypeError, "list or tuple"),
        ({"role_markers": ["<|prompter|>"]}, TypeError, "role_markers must be a dict"),
        ({"train_marker": "no"}, TypeError, "train_marker must be True or False"),
        ({"end_of_message": 0}, TypeError, "non-empty strings"),
        ({"template": ""}, TypeError, "non-empty strings"),
        ({"role_markers": dict(OPEN_ASSISTANT.role_markers, prompter="<|assistant|>")}, ValueError, "its own marker"),
        ({"added_tokens": OPEN_ASSISTANT.added_tokens * 2}, ValueError, "a token twice"),
    ],
)
def test_fields_of_the_wrong_kind_are_refused(change, error, problem):
    with pytest.raises(error, match=problem):
        dataclasses.replace(OPEN_ASSISTANT, name="broken", **change)


def test_a_missing_template_file_names_the_format():
    with pytest.raises(FileNotFoundError, match="chat format 'nowhere': no template file"):
        dataclasses.replace(OPEN_ASSISTANT, name="nowhere", template="nowhere.jinja").chat_template()
