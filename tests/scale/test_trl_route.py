"""What TRL's SFTTrainer trains, read back as label masks, against the course's masks in each chat format.

On every course conversation but format-question (its text types special tokens, which the string routes turn
into ids and sft_utils keeps as text: test_formats.py checks that case), in Open-Assistant, ChatML and Llama 3:

* ``{"messages"}`` rows with ``assistant_only_loss=True`` train exactly ``tokenize_conversation``'s tokens;
* ``{"prompt", "completion"}`` rows with ``completion_only_loss=True`` train the last reply only: as strings whose
  completion starts at the reply's marker, the course's mask of that reply; in the conversational form, what
  follows the generation prompt, which is the reply's text and end, plus ChatML's newline after ``<|im_end|>``,
  plus Llama 3's two header newlines (the prompt alone ends in one token for them, 535, not 187 187);
* both flags together: the reply inside its generation block and after the generation prompt.
"""

import dataclasses

import pytest

pytest.importorskip("trl.trainer.sft_trainer", exc_type=ImportError)

from sft_utils import CHATML, LLAMA3, OPEN_ASSISTANT, ConversationError, tokenize_conversation
from sft_utils.scale.trl_route import chat_rows, prompt_completion_rows, trl_label_masks
from sft_utils.steps.template_mask import without_generation_blocks

FORMATS = [OPEN_ASSISTANT, CHATML, LLAMA3]


@pytest.fixture(scope="module")
def conversations(course_conversations):
    return [c for c in course_conversations if c["id"] != "format-question"]


def course_masks(conversations, tokenizer, chat_format, *, last_reply_only=False) -> list[dict]:
    masks = []
    for c in conversations:
        example = tokenize_conversation(c["messages"], tokenizer, chat_format=chat_format)
        mask, last = example["label_mask"], len(c["messages"]) - 1
        if last_reply_only:
            mask = [m and i == last for m, i in zip(mask, example["message_indices"], strict=True)]
        masks.append({"input_ids": example["input_ids"], "label_mask": mask})
    return masks


@pytest.mark.parametrize("chat_format", FORMATS, ids=lambda f: f.name)
def test_assistant_only_loss_trains_the_course_mask(chat_format, format_tokenizer, conversations):
    tokenizer = format_tokenizer(chat_format)
    theirs = trl_label_masks(chat_rows(conversations), tokenizer, assistant_only_loss=True)
    assert theirs == course_masks(conversations, tokenizer, chat_format)


def test_string_completions_that_start_at_the_marker_train_the_course_mask_of_the_last_reply(tokenizer, conversations):
    rows = prompt_completion_rows(conversations, chat_format=OPEN_ASSISTANT)
    assert rows[0]["completion"].startswith("<|assistant|>") and rows[0]["completion"].endswith("<|endoftext|>")
    theirs = trl_label_masks(rows, tokenizer, completion_only_loss=True)
    assert theirs == course_masks(conversations, tokenizer, OPEN_ASSISTANT, last_reply_only=True)


@pytest.mark.parametrize(
    "chat_format, same_as",
    [
        (OPEN_ASSISTANT, {"train_marker": False}),  # the marker is the generation prompt's last token
        (CHATML, {"train_footer": True}),  # the newline after <|im_end|> ends the completion
    ],
    ids=["open-assistant", "chatml"],
)
def test_chat_completions_train_what_follows_the_generation_prompt(
    chat_format, same_as, format_tokenizer, conversations
):
    tokenizer = format_tokenizer(chat_format)
    theirs = trl_label_masks(prompt_completion_rows(conversations), tokenizer, completion_only_loss=True)
    variant = dataclasses.replace(chat_format, **same_as)
    assert theirs == course_masks(conversations, tokenizer, variant, last_reply_only=True)
    assert theirs != course_masks(conversations, tokenizer, chat_format, last_reply_only=True)


def test_llama3_chat_completions_also_train_the_headers_two_newlines(format_tokenizer, conversations):
    tokenizer = format_tokenizer(LLAMA3)
    theirs = trl_label_masks(prompt_completion_rows(conversations), tokenizer, completion_only_loss=True)
    for got, ours in zip(theirs, course_masks(conversations, tokenizer, LLAMA3, last_reply_only=True), strict=True):
        start = ours["label_mask"].index(True)
        assert got["input_ids"] == ours["input_ids"] and ours["input_ids"][start - 2 : start] == [187, 187]
        assert got["label_mask"] == ours["label_mask"][: start - 2] + [True, True] + ours["label_mask"][start:]


@pytest.mark.parametrize("chat_format", [CHATML, LLAMA3], ids=lambda f: f.name)
def test_both_flags_train_the_course_mask_of_the_last_reply(chat_format, format_tokenizer, conversations):
    tokenizer = format_tokenizer(chat_format)
    rows = prompt_completion_rows(conversations)
    theirs = trl_label_masks(rows, tokenizer, completion_only_loss=True, assistant_only_loss=True)
    assert theirs == course_masks(conversations, tokenizer, chat_format, last_reply_only=True)


def test_trl_refuses_assistant_only_loss_without_generation_blocks(format_tokenizer, conversations):
    untagged = without_generation_blocks(CHATML.chat_template())
    with pytest.raises(ValueError, match=r"The chat template is not training-compatible .* markers\)"):
        trl_label_masks(
            chat_rows(conversations[:1]), format_tokenizer(CHATML), chat_template=untagged, assistant_only_loss=True
        )


def test_rows_name_a_conversation_that_does_not_end_with_a_reply(course_conversations):
    hello = course_conversations[1]
    assert hello["id"] == "memo-hello"
    cut = {"id": "cut", "messages": hello["messages"][:3]}
    with pytest.raises(ConversationError, match="conversation 'cut': the last message must be the assistant's reply"):
        prompt_completion_rows([hello, cut])
    with pytest.raises(TypeError, match="for a single one, pass \\[conversation\\]"):
        chat_rows(hello)
    assert chat_rows([hello])[0]["messages"][:2] == [
        {"role": "user", "content": "Hello, how are you?"},
        {"role": "assistant", "content": "I am fine."},
    ]
