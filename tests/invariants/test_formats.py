"""Open-Assistant, ChatML and Llama 3: the same ids and masks by every route, on every conversation we have.

For each format and each conversation (course and shared), ``tokenize_conversation(…, chat_format=F)`` is
compared with three routes of the ecosystem, all fed the ``{"role": "user"/"assistant"/"system", "content"}``
form and the tokenizer of ``load_tokenizer(chat_format=F)``:

* ``apply_chat_template(…, return_assistant_tokens_mask=True)``: the format's template, its
  ``{% generation %}`` blocks giving the mask;
* ``mask_from_template`` on the same template with those blocks removed (the prefix-diffing route), the header
  included as the format trains it, the footer left out as the format leaves it;
* TRL's ``SFTTrainer`` preprocessing and collator with ``assistant_only_loss=True``, labels against
  ``AssistantOnlyCollator(convention="labels")``.

The package's own data-set route (``tokenize_packed``, ``preprocess_dataset``) is checked against it too.

Known difference, checked rather than skipped: the routes that render a string and tokenize it turn a special
token typed in a message (``<|endoftext|>`` in the course's ``format-question``) into its id; sft_utils keeps it
as text. On those conversations the three ecosystem routes are checked against each other instead.
"""

import warnings

import pytest

import sft_utils
from sft_utils import (
    CHATML,
    LLAMA3,
    OPEN_ASSISTANT,
    AssistantOnlyCollator,
    format_conversation,
    generation_prompt_ids,
    tokenize_conversation,
)
from sft_utils.chat_format import ZEPHYR
from sft_utils.scale.preprocess import examples_from_packed, preprocess_dataset, tokenize_packed
from sft_utils.scale.trl_route import chat_rows, trl_trainer
from sft_utils.scale.truncation import truncation_report
from sft_utils.steps.mask import header_ids
from sft_utils.steps.template_mask import mask_from_template, without_generation_blocks

FORMATS = [OPEN_ASSISTANT, CHATML, LLAMA3, ZEPHYR]  # Zephyr: notebook 06b's exercise, not a course format


@pytest.fixture(scope="module")
def tokenizers(tokenizer):
    """One tokenizer per format (its own tokens and chat template); Open-Assistant's is the session's."""
    loaded = {F.name: sft_utils.load_tokenizer(chat_format=F, verbose=False) for F in (CHATML, LLAMA3, ZEPHYR)}
    return {OPEN_ASSISTANT.name: tokenizer, **loaded}


def ecosystem_form(messages):
    return [{"role": "user" if m["role"] == "prompter" else m["role"], "content": m["text"]} for m in messages]


def typed_special_tokens(tokenizer, conversation) -> list[str]:
    """The tokenizer's special tokens that a message of ``conversation`` holds as text."""
    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    return [t for t in specials if any(t in m["text"] for m in conversation["messages"])]


def untagged(chat_format) -> str:
    """The format's template without its ``{% generation %}`` blocks (their contents kept)."""
    template = chat_format.chat_template()
    stripped = without_generation_blocks(template)
    assert "{%- generation -%}" in template and "generation -%}" not in stripped
    return stripped


def check_routes(chat_format, tokenizer, conversations) -> list:
    """Assert the template and prefix-diffing routes equal tokenize_conversation (or, on conversations with a
    typed special token, each other); return the ids of those conversations."""
    template = untagged(chat_format)
    footer = "" if chat_format.train_footer else chat_format.footer
    typed = []
    for conversation in conversations:
        name, messages = conversation["id"], conversation["messages"]
        ours = tokenize_conversation(messages, tokenizer, chat_format=chat_format)
        form = ecosystem_form(messages)
        assert tokenizer.apply_chat_template(form, tokenize=False) == format_conversation(
            messages, chat_format=chat_format
        )
        hf = tokenizer.apply_chat_template(form, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        hf = {"input_ids": hf["input_ids"], "label_mask": [bool(m) for m in hf["assistant_masks"]]}
        diffed = mask_from_template(
            form, tokenizer, chat_template=template, include_header=chat_format.train_marker, footer=footer
        )
        assert diffed == hf, (chat_format.name, name)
        if typed_special_tokens(tokenizer, conversation):
            typed.append(name)
            rendered = tokenizer(format_conversation(messages, chat_format=chat_format))["input_ids"]
            assert hf["input_ids"] == rendered != ours["input_ids"], (chat_format.name, name)
            continue
        assert hf == {"input_ids": ours["input_ids"], "label_mask": ours["label_mask"]}, (chat_format.name, name)
    return typed


@pytest.mark.parametrize("chat_format", FORMATS, ids=lambda f: f.name)
def test_every_course_conversation_gives_the_same_ids_and_mask_by_every_template_route(
    chat_format, tokenizers, course_conversations
):
    typed = check_routes(chat_format, tokenizers[chat_format.name], course_conversations)
    assert typed == ["format-question"]


@pytest.mark.parametrize("chat_format", FORMATS, ids=lambda f: f.name)
def test_every_shared_conversation_gives_the_same_ids_and_mask_by_every_template_route(
    chat_format, tokenizers, shared_conversations
):
    assert len(shared_conversations) == 100
    assert check_routes(chat_format, tokenizers[chat_format.name], shared_conversations) == []


@pytest.mark.parametrize("chat_format", FORMATS, ids=lambda f: f.name)
def test_generation_prompts_end_with_the_assistant_header(chat_format, tokenizers, course_conversations):
    """Before every reply of every course conversation: the conversation so far, then the assistant's header.

    Llama 3's header ends in two newlines: in front of a reply's text Pythia's BPE makes them 187 187 (what
    training sees), but at the end of ``apply_chat_template(…, add_generation_prompt=True)``'s string one 535."""
    tokenizer = tokenizers[chat_format.name]
    header = header_ids(tokenizer, chat_format, "assistant")
    checked = [c for c in course_conversations if not typed_special_tokens(tokenizer, c)]
    prompts = 0
    for conversation in checked:
        messages = conversation["messages"]
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            ours = generation_prompt_ids(messages[:k], tokenizer, chat_format=chat_format)
            theirs = tokenizer.apply_chat_template(
                ecosystem_form(messages[:k]), tokenize=True, add_generation_prompt=True, return_dict=True
            )["input_ids"]
            reply = tokenize_conversation(messages[: k + 1], tokenizer, chat_format=chat_format)["input_ids"]
            assert ours == reply[: len(ours)] and ours[-len(header) :] == header, (conversation["id"], k)
            if chat_format is LLAMA3:
                assert (ours[-2:], theirs[-1:], ours[:-2]) == ([187, 187], [535], theirs[:-1]), conversation["id"]
            else:
                assert ours == theirs, (chat_format.name, conversation["id"], k)
            prompts += 1
    assert prompts == sum(m["role"] == "assistant" for c in checked for m in c["messages"]) > 0


# --- TRL ---------------------------------------------------------------------------------------------


def trl_examples(tokenizer, conversations) -> list[dict]:
    """TRL's ``SFTTrainer`` preprocessing (``assistant_only_loss=True``) of each conversation, collated one by
    one by TRL's own collator: ``input_ids`` and ``labels``, tensors ``[1, T]``."""
    pytest.importorskip("trl.trainer.sft_trainer", exc_type=ImportError)
    trainer = trl_trainer(chat_rows(conversations), tokenizer, assistant_only_loss=True)
    assert len(trainer.train_dataset) == len(conversations)
    return [trainer.data_collator([row]) for row in trainer.train_dataset]


def check_trl(chat_format, tokenizer, conversations) -> list:
    """TRL's labels equal AssistantOnlyCollator's on tokenize_conversation's examples (or, with a typed special
    token, on the template's); returns the conversations of the second kind."""
    collate = AssistantOnlyCollator(tokenizer.pad_token_id, convention="labels")
    typed = []
    for conversation, theirs in zip(conversations, trl_examples(tokenizer, conversations), strict=True):
        example = tokenize_conversation(conversation["messages"], tokenizer, chat_format=chat_format)
        if typed_special_tokens(tokenizer, conversation):
            typed.append(conversation["id"])
            hf = tokenizer.apply_chat_template(
                ecosystem_form(conversation["messages"]),
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
            example = {"input_ids": hf["input_ids"], "label_mask": [bool(m) for m in hf["assistant_masks"]]}
        ours = collate([example])
        assert theirs["input_ids"].tolist() == ours["input_ids"].tolist(), (chat_format.name, conversation["id"])
        assert theirs["labels"].tolist() == ours["labels"].tolist(), (chat_format.name, conversation["id"])
    return typed


@pytest.mark.parametrize("chat_format", FORMATS, ids=lambda f: f.name)
def test_trl_trains_the_same_tokens_on_every_course_conversation(chat_format, tokenizers, course_conversations):
    assert check_trl(chat_format, tokenizers[chat_format.name], course_conversations) == ["format-question"]


@pytest.mark.parametrize("chat_format", FORMATS, ids=lambda f: f.name)
def test_trl_trains_the_same_tokens_on_every_shared_conversation(chat_format, tokenizers, shared_conversations):
    assert check_trl(chat_format, tokenizers[chat_format.name], shared_conversations) == []


# --- the data-set route ------------------------------------------------------------------------------


@pytest.mark.parametrize("max_length", [None, 40], ids=["whole", "cut-at-40"])
@pytest.mark.parametrize("chat_format", FORMATS, ids=lambda f: f.name)
def test_the_batched_route_equals_tokenize_conversation(
    chat_format, max_length, tokenizers, course_conversations, shared_conversations
):
    """tokenize_packed (numpy assembly of the same pieces) gives tokenize_conversation's examples, cut or not."""
    tokenizer = tokenizers[chat_format.name]
    conversations = course_conversations + shared_conversations
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # conversations left untrained by the cut: tested elsewhere
        packed = tokenize_packed(
            [c["messages"] for c in conversations],
            tokenizer,
            max_length=max_length,
            conversation_ids=[c["id"] for c in conversations],
            chat_format=chat_format,
        )
        expected = [
            tokenize_conversation(c["messages"], tokenizer, max_length=max_length, chat_format=chat_format)
            for c in conversations
        ]
    assert examples_from_packed(packed) == expected


def test_the_dataset_route_equals_tokenize_conversation(tokenizers, course_conversations):
    rows = preprocess_dataset(course_conversations, tokenizers[CHATML.name], chat_format=CHATML, desc=None)
    for row, conversation in zip(rows, course_conversations, strict=True):
        expected = tokenize_conversation(conversation["messages"], tokenizers[CHATML.name], chat_format=CHATML)
        assert {k: row[k] for k in expected} == expected, conversation["id"]


def test_the_batched_route_names_a_missing_token_and_the_call(tokenizer, course_conversations):
    with pytest.raises(ValueError) as error:
        tokenize_packed([course_conversations[0]["messages"]], tokenizer, chat_format=LLAMA3)
    assert str(error.value) == (
        "tokenize_packed: tokenizer has no '<|start_header_id|>' token; load it with "
        "sft_utils.load_tokenizer(chat_format=sft_utils.LLAMA3) (chat format 'llama-3')"
    )


@pytest.mark.parametrize("cut, replies_cut", [(1, []), (2, ["hello"])], ids=["footer-only", "end-and-footer"])
def test_a_cut_that_takes_only_chatmls_footer_leaves_the_reply_whole(tokenizers, cut, replies_cut):
    """<|im_end|> then the newline: cutting the newline alone cuts nothing the reply trains; the end too, the reply."""
    messages = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello there"}]
    tokenizer = tokenizers[CHATML.name]
    length = len(tokenize_conversation(messages, tokenizer, chat_format=CHATML)["input_ids"])
    conversations = [{"id": "hello", "messages": messages}]
    report = truncation_report(conversations, tokenizer, max_length=length - cut, chat_format=CHATML)
    assert (report.truncated, report.replies_cut) == (["hello"], replies_cut)
    assert report.trained_targets_before - report.trained_targets_after == cut - 1  # <|im_end|> when it goes
