"""The shipped Jinja chat template against sft_utils, on every conversation we have.

Conventions, aligned explicitly below:

* ``assistant_masks`` of ``apply_chat_template(…, return_assistant_tokens_mask=True)`` marks the tokens
  produced inside ``{% generation %}``, one value per *input* token, unshifted. Our template puts the
  whole assistant message in the block (``<|assistant|>`` marker, text, closing ``<|endoftext|>``), so it
  equals ``tokenize_conversation``'s ``label_mask`` token for token; the memo's shifted
  ``label_masks`` is ``assistant_masks[1:]``. (Many templates keep the role header outside the block and
  so do not train it; this course trains the marker, predicted from the prompter's ``<|endoftext|>``.)
* Known difference: ``apply_chat_template`` renders a string and tokenizes it, so a marker that a user
  typed literally (``"What does <|assistant|> mean?"``) becomes a role id there, while sft_utils keeps
  it as text. Such conversations are listed and checked to differ exactly so, not skipped.
"""

import pytest
from jinja2.exceptions import TemplateError

from sft_utils import (
    OPEN_ASSISTANT,
    format_conversation,
    generation_prompt_ids,
    shift_for_next_token,
    tokenize_conversation,
)
from sft_utils.steps.tokenize import ROLE_TOKENS

TYPED_MARKERS = (*ROLE_TOKENS, "<|endoftext|>", "<|padding|>")


def has_typed_marker(conversation) -> bool:
    return any(marker in m["text"] for m in conversation["messages"] for marker in TYPED_MARKERS)


def ecosystem_form(messages):
    return [{"role": "user" if m["role"] == "prompter" else m["role"], "content": m["text"]} for m in messages]


def hf_encoding(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)


def check_against_sft_utils(tokenizer, conversations) -> list[str]:
    """Same ids and mask on each conversation; returns the ids of those with typed markers (checked apart)."""
    with_markers = []
    for conversation in conversations:
        messages = conversation["messages"]
        ours = tokenize_conversation(messages, tokenizer)
        for form in (messages, ecosystem_form(messages)):
            assert tokenizer.apply_chat_template(form, tokenize=False) == format_conversation(messages)
            hf = hf_encoding(tokenizer, form)
            if has_typed_marker(conversation):
                # the known difference: HF's ids are those of the formatted string, markers turned into ids
                assert hf["input_ids"] == tokenizer(format_conversation(messages))["input_ids"] != ours["input_ids"]
                continue
            assert hf["input_ids"] == ours["input_ids"], conversation["id"]
            assert hf["assistant_masks"] == [int(on) for on in ours["label_mask"]], conversation["id"]
            assert shift_for_next_token(ours)["label_masks"] == [bool(on) for on in hf["assistant_masks"][1:]]
        if has_typed_marker(conversation):
            with_markers.append(conversation["id"])
    return with_markers


def test_load_tokenizer_installs_the_template(tokenizer):
    assert tokenizer.chat_template == OPEN_ASSISTANT.chat_template()
    assert "{%- generation -%}" in tokenizer.chat_template


def test_course_conversations_give_the_same_ids_and_mask(tokenizer, course_conversations):
    assert check_against_sft_utils(tokenizer, course_conversations) == ["format-question"]


def test_shared_conversations_give_the_same_ids_and_mask(tokenizer, shared_conversations):
    assert len(shared_conversations) == 100
    assert check_against_sft_utils(tokenizer, shared_conversations) == []


def test_typed_marker_becomes_a_role_id_only_in_the_template_path(tokenizer):
    messages = [{"role": "user", "content": "Is <|assistant|> a word?"}, {"role": "assistant", "content": "No."}]
    hf = hf_encoding(tokenizer, messages)
    ours = tokenize_conversation(messages, tokenizer)
    assert hf["input_ids"].count(50280) == 2 and ours["input_ids"].count(50280) == 1
    # and the template's mask does not train it: it lies outside any {% generation %} block
    assert hf["assistant_masks"][hf["input_ids"].index(50280)] == 0


def test_generation_prompt_matches(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    assert (
        ids["input_ids"]
        == generation_prompt_ids(messages, tokenizer)
        == [50281, 4678, 4864, 15, 0, 50279, 12764, 0, 50280]
    )


def test_unknown_role_is_an_error_in_the_template_too(tokenizer):
    with pytest.raises(TemplateError, match="message 1: unknown role tool"):
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}], tokenize=False
        )


def test_template_is_package_data():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "templates/*.jinja" in pyproject["tool"]["setuptools"]["package-data"]["sft_utils"]
