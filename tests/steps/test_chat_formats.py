"""ChatML and Llama 3 beside Open-Assistant: their tokens and ids, strings, masks, prompts, checks and errors.

Every conversation of the course and of the shared data, by every route, is in tests/invariants/test_formats.py.
"""

import dataclasses

import pytest
from jinja2.exceptions import TemplateError

import sft_utils
from sft_utils import (
    CHATML,
    LLAMA3,
    OPEN_ASSISTANT,
    ChatFormat,
    ConversationError,
    format_conversation,
    generation_prompt_ids,
    tokenize_conversation,
)
from sft_utils.steps.format import normalize_messages

HELLO = [
    {"role": "system", "text": "Be brief."},
    {"role": "prompter", "text": "Hi"},
    {"role": "assistant", "text": "Hello there"},
]


@pytest.fixture(scope="module")
def chatml_tokenizer():
    return sft_utils.load_tokenizer(chat_format=CHATML, verbose=False)


@pytest.fixture(scope="module")
def llama3_tokenizer():
    return sft_utils.load_tokenizer(chat_format=LLAMA3, verbose=False)


@pytest.fixture(scope="module")
def tokenizers(tokenizer, chatml_tokenizer, llama3_tokenizer):
    return {OPEN_ASSISTANT.name: tokenizer, CHATML.name: chatml_tokenizer, LLAMA3.name: llama3_tokenizer}


# --- tokens and ids ------------------------------------------------------------------------------------


def test_each_format_adds_its_tokens_from_50277_in_order(chatml_tokenizer, llama3_tokenizer):
    assert CHATML.added_token_ids(50277) == {"<|im_start|>": 50277, "<|im_end|>": 50278}
    assert LLAMA3.added_token_ids(50277) == {
        "<|begin_of_text|>": 50277,
        "<|start_header_id|>": 50278,
        "<|end_header_id|>": 50279,
        "<|eot_id|>": 50280,
    }
    for tokenizer, chat_format, size in ((chatml_tokenizer, CHATML, 50279), (llama3_tokenizer, LLAMA3, 50281)):
        vocab = tokenizer.get_vocab()
        assert {t: vocab[t] for t in chat_format.added_tokens} == chat_format.added_token_ids(50277)
        assert len(tokenizer) == size and "<|assistant|>" not in vocab
        assert (tokenizer.pad_token, tokenizer.pad_token_id, tokenizer.eos_token_id) == ("<|padding|>", 1, 0)
        assert tokenizer.chat_template == chat_format.chat_template()


def test_a_header_is_its_marker_then_text_and_tokens():
    assert CHATML.pieces(CHATML.marker("assistant")) == ["<|im_start|>", "assistant\n"]
    assert LLAMA3.pieces(LLAMA3.marker("prompter")) == ["<|start_header_id|>", "user", "<|end_header_id|>", "\n\n"]
    assert [f.marker_token("system") for f in (OPEN_ASSISTANT, CHATML, LLAMA3)] == [
        "<|system|>",
        "<|im_start|>",
        "<|start_header_id|>",
    ]
    assert CHATML.render("assistant", "Yes") == "<|im_start|>assistant\nYes<|im_end|>\n"
    assert LLAMA3.render("assistant", "Yes") == "<|start_header_id|>assistant<|end_header_id|>\n\nYes<|eot_id|>"


# --- strings, ids and masks ------------------------------------------------------------------------------


def test_chatml_string_ids_and_mask(chatml_tokenizer):
    assert format_conversation(HELLO, chat_format=CHATML) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello there<|im_end|>\n"
    )
    example = tokenize_conversation(HELLO, chatml_tokenizer, chat_format=CHATML)
    assert chatml_tokenizer.convert_ids_to_tokens(example["input_ids"]) == [
        *["<|im_start|>", "system", "Ċ", "Be", "Ġbrief", ".", "<|im_end|>", "Ċ"],
        *["<|im_start|>", "user", "Ċ", "Hi", "<|im_end|>", "Ċ"],
        *["<|im_start|>", "ass", "istant", "Ċ", "Hello", "Ġthere", "<|im_end|>", "Ċ"],
    ]
    assert example["input_ids"][-8:] == [50277, 515, 5567, 187, 12092, 627, 50278, 187]
    assert example["message_indices"] == [0] * 8 + [1] * 6 + [2] * 8
    # header untrained; text and <|im_end|> trained; the newline after it not
    assert example["label_mask"] == [False] * 18 + [True, True, True, False]


def test_llama3_string_ids_and_mask(llama3_tokenizer):
    assert format_conversation(HELLO, chat_format=LLAMA3) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello there<|eot_id|>"
    )
    example = tokenize_conversation(HELLO, llama3_tokenizer, chat_format=LLAMA3)
    assert llama3_tokenizer.convert_ids_to_tokens(example["input_ids"]) == [
        "<|begin_of_text|>",
        *["<|start_header_id|>", "system", "<|end_header_id|>", "Ċ", "Ċ", "Be", "Ġbrief", ".", "<|eot_id|>"],
        *["<|start_header_id|>", "user", "<|end_header_id|>", "Ċ", "Ċ", "Hi", "<|eot_id|>"],
        *["<|start_header_id|>", "ass", "istant", "<|end_header_id|>", "Ċ", "Ċ", "Hello", "Ġthere", "<|eot_id|>"],
    ]
    assert example["input_ids"][-9:] == [50278, 515, 5567, 50279, 187, 187, 12092, 627, 50280]
    # <|begin_of_text|> counts as message 0's and is never trained
    assert example["message_indices"] == [0] * 10 + [1] * 7 + [2] * 9
    assert example["label_mask"] == [False] * 23 + [True, True, True]


@pytest.mark.parametrize(
    "change, reply_mask",
    [
        ({}, [0, 0, 0, 0, 1, 1, 1, 0]),
        ({"train_marker": True}, [1, 0, 0, 0, 1, 1, 1, 0]),
        ({"train_marker": True, "train_header": True}, [1, 1, 1, 1, 1, 1, 1, 0]),
        ({"train_end": False, "train_footer": True}, [0, 0, 0, 0, 1, 1, 0, 1]),
    ],
)
def test_what_a_reply_trains_is_the_formats_choice(chatml_tokenizer, change, reply_mask):
    """<|im_start|> assistant\\n Hello there <|im_end|> \\n: marker, rest of header, end and footer as the format says."""
    chat_format = dataclasses.replace(CHATML, **change)
    example = tokenize_conversation(HELLO[1:], chatml_tokenizer, chat_format=chat_format)
    assert example["input_ids"][6:] == [50277, 515, 5567, 187, 12092, 627, 50278, 187]
    assert example["label_mask"] == [False] * 6 + list(map(bool, reply_mask))
    assert chat_format.reply_mask(2, header_length=4, footer_length=1) == list(map(bool, reply_mask))


def test_open_assistants_ids_do_not_change(tokenizer):
    example = tokenize_conversation(HELLO, tokenizer)
    assert example["input_ids"] == [50281, 4678, 4864, 15, 0, 50279, 12764, 0, 50280, 12092, 627, 0]
    assert example["label_mask"] == [False] * 8 + [True] * 4
    assert OPEN_ASSISTANT.reply_mask(2) == OPEN_ASSISTANT.reply_mask(2, 1, 0) == [True] * 4


# --- generation prompts ----------------------------------------------------------------------------------


def test_generation_prompt_ends_with_the_assistant_header(chatml_tokenizer, llama3_tokenizer):
    assert format_conversation(HELLO[:2], add_generation_prompt=True, chat_format=CHATML).endswith(
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    chatml = generation_prompt_ids(HELLO[:2], chatml_tokenizer, chat_format=CHATML)
    assert chatml[-7:] == [12764, 50278, 187, 50277, 515, 5567, 187]  # Hi <|im_end|> \n <|im_start|> assistant \n
    theirs = chatml_tokenizer.apply_chat_template(HELLO[:2], add_generation_prompt=True, return_dict=True)
    assert chatml == theirs["input_ids"]
    llama3 = generation_prompt_ids(HELLO[:2], llama3_tokenizer, chat_format=LLAMA3)
    assert llama3[-8:] == [12764, 50280, 50278, 515, 5567, 50279, 187, 187]  # Hi <|eot_id|> <|start_header_id|> …


def test_llama3_prompt_keeps_the_header_ids_that_training_sees(llama3_tokenizer):
    """ "\\n\\n" before a word is two tokens (187 187) on Pythia's BPE; at the end of a string, one (535)."""
    ours = generation_prompt_ids(HELLO[:2], llama3_tokenizer, chat_format=LLAMA3)
    theirs = llama3_tokenizer.apply_chat_template(HELLO[:2], add_generation_prompt=True, return_dict=True)
    assert ours[-2:] == [187, 187] and theirs["input_ids"][-1] == 535 and ours[:-2] == theirs["input_ids"][:-1]
    trained = tokenize_conversation(HELLO, llama3_tokenizer, chat_format=LLAMA3)["input_ids"]
    assert trained[: len(ours)] == ours


# --- text that starts with whitespace ------------------------------------------------------------------


@pytest.mark.parametrize(
    "chat_format, text, ours, rendered",
    [
        # ChatML: "assistant\n" + "\n\nHi": the rendered string's pre-split joins the header's newline to the text's
        (CHATML, "\n\nHi", [515, 5567, 187, 187, 187, 12764, 50278, 187], [515, 5567, 535, 187, 12764, 50278, 187]),
        # Llama 3: "\n\n" + " Hi": before a space, the header's two newlines are one token in the rendered string
        (LLAMA3, " Hi", [515, 5567, 50279, 187, 187, 17459, 50280], [515, 5567, 50279, 535, 17459, 50280]),
    ],
    ids=["chatml", "llama-3"],
)
def test_a_text_starting_with_whitespace_keeps_the_header_apart(tokenizers, chat_format, text, ours, rendered):
    """sft_utils keeps the header's ids and the text's own; the rendered string's tokenizer looks across them.
    Both decode to the same string; the mask of sft_utils trains the text's own tokens only."""
    tokenizer = tokenizers[chat_format.name]
    messages = [HELLO[1], {"role": "assistant", "text": text}]
    example = tokenize_conversation(messages, tokenizer, chat_format=chat_format)
    hf = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    assert example["input_ids"][-len(ours) :] == ours and hf["input_ids"][-len(rendered) :] == rendered
    assert tokenizer.decode(example["input_ids"]) == tokenizer.decode(hf["input_ids"])
    trained = [t for t, m in zip(example["input_ids"], example["label_mask"]) if m]
    assert tokenizer.decode(trained) == text + chat_format.end_of_message


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chat_format", [OPEN_ASSISTANT, CHATML, LLAMA3], ids=lambda f: f.name)
def test_an_unknown_role_is_refused_naming_the_message(tokenizers, chat_format):
    messages = [HELLO[1], {"role": "tool", "text": "42"}]
    tokenizer = tokenizers[chat_format.name]
    with pytest.raises(ConversationError, match=r"conversation 'c1', message 1: unknown role 'tool'"):
        tokenize_conversation(messages, tokenizer, conversation_id="c1", chat_format=chat_format)
    with pytest.raises(ConversationError, match=r"conversation 'c1', message 1: unknown role 'tool'"):
        format_conversation(messages, conversation_id="c1", chat_format=chat_format)
    with pytest.raises(TemplateError, match="message 1: unknown role tool"):
        tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}])


@pytest.mark.parametrize(
    "chat_format, where, missing",
    [
        (CHATML, "conversation 'c1', message 0", "<|im_start|>"),  # the first header's marker
        (LLAMA3, "conversation 'c1'", "<|begin_of_text|>"),  # the prefix, before any message
    ],
    ids=["chatml", "llama-3"],
)
def test_an_open_assistant_tokenizer_is_refused_naming_the_token_and_the_call(tokenizer, chat_format, where, missing):
    name = "CHATML" if chat_format is CHATML else "LLAMA3"
    expected = (
        f"{where}: tokenizer has no '{missing}' token; load it with "
        f"sft_utils.load_tokenizer(chat_format=sft_utils.{name}) (chat format '{chat_format.name}')"
    )
    with pytest.raises(ValueError) as error:
        tokenize_conversation(HELLO, tokenizer, conversation_id="c1", chat_format=chat_format)
    assert str(error.value) == expected
    with pytest.raises(ValueError) as error:
        generation_prompt_ids(HELLO[:2], tokenizer, conversation_id="c1", chat_format=chat_format)
    assert str(error.value) == expected


def test_a_missing_end_token_is_named():
    """Open-Assistant's headers with ChatML's end: the tokenizer has the headers, not the end."""
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    odd = dataclasses.replace(OPEN_ASSISTANT, name="oa-im-end", end_of_message="<|im_end|>")
    with pytest.raises(ValueError, match=r"conversation 'c1', message 0: tokenizer has no '<\|im_end\|>' token"):
        tokenize_conversation(HELLO, tokenizer, conversation_id="c1", chat_format=odd)


def test_a_missing_token_inside_a_header_is_named():
    """A tokenizer with Llama 3's tokens but <|end_header_id|>: the second special token of every header."""
    partial = dataclasses.replace(
        LLAMA3, name="llama-3-partial", added_tokens=("<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>")
    )
    tokenizer = sft_utils.load_tokenizer(chat_format=partial, verbose=False)
    with pytest.raises(ValueError, match=r"'c1', message 0: tokenizer has no '<\|end_header_id\|>' token.*LLAMA3"):
        tokenize_conversation(HELLO, tokenizer, conversation_id="c1", chat_format=LLAMA3)


def test_a_header_that_would_merge_with_the_text_is_refused(chatml_tokenizer):
    """ "User: " + "Hi" tokenizes as "User", ":", " Hi": no token boundary where the text starts."""
    markers = dict(CHATML.role_markers, prompter="<|im_start|>User: ")
    spaced = dataclasses.replace(CHATML, name="spaced", role_markers=markers)
    with pytest.raises(
        ValueError, match=r"message 1: chat format 'spaced': its prompter header .* would share a token"
    ):
        tokenize_conversation(HELLO, chatml_tokenizer, conversation_id="c1", chat_format=spaced)


@pytest.mark.parametrize("chat_format", [CHATML, LLAMA3], ids=lambda f: f.name)
@pytest.mark.parametrize("role", ["prompter", "assistant"])
def test_a_typed_special_token_is_plain_text(tokenizers, chat_format, role, mask_runs):
    """Every special token of the format typed in a message: the same mask as when spelled apart, and only the
    inserted ones are special ids."""
    tokenizer = tokenizers[chat_format.name]
    typed = " ".join(chat_format.special_tokens)
    where = 1 if role == "prompter" else 2

    def with_text(text):
        return [{**m, "text": text if i == where else m["text"]} for i, m in enumerate(HELLO)]

    example = tokenize_conversation(with_text(f"Is {typed} a word?"), tokenizer, chat_format=chat_format)
    spelled = tokenize_conversation(
        with_text(f"Is {typed.replace('|>', ' |>')} a word?"), tokenizer, chat_format=chat_format
    )
    plain = tokenize_conversation(HELLO, tokenizer, chat_format=chat_format)
    special_ids = set(chat_format.added_token_ids(50277).values()) | {0, 1}
    assert [i for i in example["input_ids"] if i in special_ids] == [i for i in plain["input_ids"] if i in special_ids]
    assert mask_runs(example) == mask_runs(spelled) == mask_runs(plain)
    ids = [t for t, i in zip(example["input_ids"], example["message_indices"]) if i == where]
    message = normalize_messages(with_text(f"Is {typed} a word?"))[where]
    rendered = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    assert rendered == chat_format.render(message["role"], message["text"])


# --- ChatFormat's own checks of the new fields ---------------------------------------------------------


@pytest.mark.parametrize(
    "change, error, problem",
    [
        ({"footer": None}, TypeError, r"footer must be a string \(''"),
        ({"prefix": 1}, TypeError, r"prefix must be a string"),
        ({"train_header": "yes"}, TypeError, "train_header must be True or False"),
        ({"train_footer": 1}, TypeError, "train_footer must be True or False"),
        ({"train_header": True}, ValueError, "train_header needs train_marker"),
        (
            {"role_markers": dict(CHATML.role_markers, prompter="user: <|im_start|>")},
            ValueError,
            r"markers \['user: <\|im_start\|>'\] are not in added_tokens",
        ),
        ({"end_of_message": "<|im_start|>"}, ValueError, r"a header starts with the end of message '<\|im_start\|>'"),
        (
            {"role_markers": dict(CHATML.role_markers, system=CHATML.marker("prompter"))},
            ValueError,
            "every role needs its own marker",
        ),
    ],
)
def test_the_new_fields_are_checked(change, error, problem):
    with pytest.raises(error, match=problem):
        dataclasses.replace(CHATML, name="broken", **change)


def test_the_course_formats_are_distinct_and_hashable():
    assert len({OPEN_ASSISTANT, CHATML, LLAMA3}) == 3
    assert dataclasses.replace(CHATML, template="elsewhere.jinja") == CHATML  # the template file is not compared
    assert (
        isinstance(CHATML, ChatFormat)
        and CHATML.load_hint() == "sft_utils.load_tokenizer(chat_format=sft_utils.CHATML)"
    )
    other = dataclasses.replace(CHATML, name="mine")
    assert other.load_hint() == "sft_utils.load_tokenizer(chat_format=<chat format 'mine'>)"


@pytest.mark.parametrize("chat_format", [CHATML, LLAMA3], ids=lambda f: f.name)
def test_each_template_tags_exactly_the_trained_part(tokenizers, chat_format):
    """The tokens inside {% generation %} decode to the reply's text and end token, nothing of the header."""
    tokenizer = tokenizers[chat_format.name]
    hf = tokenizer.apply_chat_template(HELLO, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(hf["input_ids"], hf["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == "Hello there" + chat_format.end_of_message
