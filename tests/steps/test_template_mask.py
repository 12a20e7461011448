"""Masks for any chat template, by rendering growing prefixes, against the generation-tagged template."""

import pytest

from sft_utils import CHATML, LLAMA3, OPEN_ASSISTANT, ConversationError
from sft_utils.steps.template_mask import mask_from_template, without_generation_blocks

from .test_chat_template import ecosystem_form, hf_encoding

UNTAGGED = OPEN_ASSISTANT.chat_template().replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")


def _check_every(conversations, tokenizer):
    marker = tokenizer.convert_tokens_to_ids("<|assistant|>")
    for conversation in conversations:
        messages = ecosystem_form(conversation["messages"])
        tagged = hf_encoding(tokenizer, messages)
        with_header = mask_from_template(messages, tokenizer, chat_template=UNTAGGED, include_header=True)
        assert with_header["input_ids"] == tagged["input_ids"], conversation["id"]
        assert with_header["label_mask"] == [bool(m) for m in tagged["assistant_masks"]], conversation["id"]
        reply_only = mask_from_template(messages, tokenizer, chat_template=UNTAGGED)
        expected = [
            bool(m) and i != marker for i, m in zip(tagged["input_ids"], tagged["assistant_masks"], strict=True)
        ]
        assert reply_only["label_mask"] == expected, conversation["id"]


def test_prefix_diffing_equals_the_generation_blocks_on_the_course_conversations(tokenizer, course_conversations):
    assert "generation -%}" not in UNTAGGED  # no {% generation %} block left (its comment still names it)
    _check_every(course_conversations, tokenizer)


def test_prefix_diffing_equals_the_generation_blocks_on_real_conversations(tokenizer, shared_conversations):
    _check_every(shared_conversations, tokenizer)


def test_a_template_that_rewrites_earlier_messages_is_refused(tokenizer):
    counting = "{{ messages | length }} messages\n" + UNTAGGED  # a header that changes with every message
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with pytest.raises(ConversationError, match="conversation 'hi', message 1: the template is not prefix-stable"):
        mask_from_template(messages, tokenizer, chat_template=counting, conversation_id="hi")


@pytest.mark.parametrize("chat_format", [OPEN_ASSISTANT, CHATML, LLAMA3], ids=lambda f: f.name)
def test_without_generation_blocks_renders_the_same_strings(chat_format, format_tokenizer, course_conversations):
    tokenizer = format_tokenizer(chat_format)
    template = chat_format.chat_template()
    stripped = without_generation_blocks(template)
    assert "generation -%}" in template and "generation -%}" not in stripped and "{#" not in stripped
    for conversation in course_conversations:
        messages = ecosystem_form(conversation["messages"])
        for prompt in (False, True):
            assert tokenizer.apply_chat_template(
                messages, tokenize=False, chat_template=stripped, add_generation_prompt=prompt
            ) == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    with pytest.raises(TypeError, match="chat_template must be a str"):
        without_generation_blocks(None)
