"""Masks for any chat template, by rendering growing prefixes, against the generation-tagged template."""

import copy
import re
from pathlib import Path

import pytest
import transformers

from sft_utils import CHATML, LLAMA3, OPEN_ASSISTANT, ConversationError
from sft_utils.steps.template_mask import mask_from_template, template_mask_details, without_generation_blocks

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


# --- boundaries, strict templates, errors -------------------------------------------------------------------

REAL = Path(__file__).resolve().parents[1] / "templates" / "real"
# Mistral-like: the header "[/INST]" and the end "</s>" are plain text here, so BPE merges across both boundaries.
MISTRAL_LIKE = (
    "{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]"
    "{% else %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{% endif %}"
)


@pytest.mark.parametrize("opening", ["-", "(", '"', "<"])
def test_a_token_that_straddles_a_reply_boundary_is_trained_as_trl_trains_it(tokenizer, opening):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": f"{opening}Hello."},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": f"{opening}Bye."},
    ]
    details = template_mask_details(messages, tokenizer, chat_template=without_generation_blocks(MISTRAL_LIKE))
    tagged = tokenizer.apply_chat_template(
        messages, chat_template=MISTRAL_LIKE, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    assert details["input_ids"] == tagged["input_ids"]
    assert details["label_mask"] == [bool(m) for m in tagged["assistant_masks"]]
    tokens = tokenizer.convert_ids_to_tokens(details["input_ids"])
    straddling = [t for t, s in zip(tokens, details["straddles"], strict=True) if s]
    # the header's "]" with the reply's first character; the reply's plain-text "</s>" with the next "[INST]"
    assert straddling == ["]" + opening, ">[", "]" + opening]
    first = tokens.index("]" + opening)
    assert details["label_mask"][first - 1 : first + 1] == [False, True]  # "INST" untrained, "]-" trained


STRICT = (  # refuses a prefix that is not a conversation on its own, as Qwen3.5's does
    "{% if messages[-1].role == 'system' %}{{ raise_exception('No user query found in messages.') }}{% endif %}"
    + UNTAGGED
)


def test_a_template_that_refuses_an_intermediate_prefix_still_masks_the_conversation(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    ours = mask_from_template(messages, tokenizer, chat_template=STRICT)
    assert ours == mask_from_template(messages, tokenizer, chat_template=UNTAGGED)
    assert sum(ours["label_mask"]) == len(tokenizer("Hello<|endoftext|>")["input_ids"])


@pytest.mark.parametrize(
    "messages, message",
    [
        (
            [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "A"},
            ],
            (
                r"conversation 'c', message 0: the chat template refuses the conversation from this message on "
                r"\(role 'system'\): TemplateError: System role not supported"
            ),
        ),
        (
            [
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "A"},
            ],
            r"message 1: .*TemplateError: Conversation roles must alternate user/assistant/user/assistant/\.\.\.",
        ),
        ([{"role": "user", "content": "Hi"}], r"conversation 'c': no assistant message, so nothing to train"),
        ([{"role": "tool", "content": "{}"}], r"message 0: role 'tool' is not one a chat template is known to render"),
        ([{"role": "user", "content": " \u200b"}], r"message 0: the user's text is blank"),
    ],
    ids=["template-raises", "roles-alternate", "no-reply", "unknown-role", "blank"],
)
def test_every_failure_is_a_conversation_error_quoting_the_template(tokenizer, messages, message):
    gemma = (REAL / "gemma.jinja").read_text()
    with pytest.raises(ConversationError, match=message):
        mask_from_template(messages, tokenizer, chat_template=gemma, conversation_id="c")


@pytest.mark.skipif(transformers.__version__ < "5", reason="transformers 4.x renders an empty conversation")
def test_a_conversation_that_opens_with_the_reply_is_refused_with_transformers_words(tokenizer):
    messages = [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}]
    with pytest.raises(ConversationError, match=r"message 0: .*opens with the assistant.*empty conversation"):
        mask_from_template(messages, tokenizer, chat_template=UNTAGGED, conversation_id="c")


def test_a_template_error_inside_jinja_becomes_a_conversation_error(tokenizer):
    llava = (REAL / "llava_next.jinja").read_text()  # reads content as a list of parts
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with pytest.raises(
        ConversationError, match=r"message 1: .*\(role 'assistant'\): UndefinedError: 'str object' has no attribute"
    ):
        mask_from_template(messages, tokenizer, chat_template=llava)


def test_prompter_is_read_as_user_and_a_dropped_message_is_refused(tokenizer):
    course = [{"role": "prompter", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    ecosystem = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    llama3 = (REAL / "llama3.jinja").read_text()
    assert mask_from_template(course, tokenizer, chat_template=llama3) == mask_from_template(
        ecosystem, tokenizer, chat_template=llama3
    )
    skips_system = (
        "{% for m in messages %}{% if m.role != 'system' %}" + "{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}"
    )
    with pytest.raises(ConversationError, match=r"message 0: the template does not write this system message's text"):
        mask_from_template(
            [{"role": "system", "content": "Be kind."}, *ecosystem], tokenizer, chat_template=skips_system
        )


@pytest.mark.parametrize("name", ["phi3", "gptoss"])
def test_a_template_that_ends_the_last_message_differently_is_masked_as_its_training_template(tokenizer, name):
    """Phi-3 writes <|endoftext|> after the last message only, GPT-OSS ends it with <|return|> instead of <|end|>."""
    tok = copy.deepcopy(tokenizer)
    original = (REAL / f"{name}.jinja").read_text()
    tok.add_special_tokens({"additional_special_tokens": sorted(set(re.findall(r"<\|[a-z_]+\|>", original)))})
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Bye"},
    ]
    ours = mask_from_template(messages, tok, chat_template=original)
    theirs = tok.apply_chat_template(
        messages,
        chat_template=(REAL / f"{name}_training.jinja").read_text(),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    assert ours["input_ids"] == theirs["input_ids"]
    trained = [t for t, m in zip(tok.convert_ids_to_tokens(ours["input_ids"]), ours["label_mask"], strict=True) if m]
    if name == "phi3":
        assert ours["label_mask"] == [bool(m) for m in theirs["assistant_masks"]]
        assert trained == ["Hello", "<|end|>", "Ċ", "Bye", "<|end|>", "Ċ", "<|endoftext|>"]
    else:  # TRL's training template also trains the role header <|start|>assistant, by design
        assert trained == ["<|channel|>", "final", "<|message|>", "Hello", "<|end|>"] + [
            "<|channel|>",
            "final",
            "<|message|>",
            "Bye",
            "<|return|>",
        ]


def test_a_generation_prompt_inside_the_replys_scaffolding_names_include_header(tokenizer):
    tok = copy.deepcopy(tokenizer)
    original = (REAL / "deepseek_r1_distill.jinja").read_text()
    tok.add_special_tokens({"additional_special_tokens": ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"]})
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with pytest.raises(
        ConversationError, match=r"message 1: .*'<｜Assistant｜><think>\\n'.*include_header=True finds it"
    ):
        mask_from_template(messages, tok, chat_template=original)
    ours = mask_from_template(messages, tok, chat_template=original, include_header=True)
    trained = [t for t, m in zip(tok.convert_ids_to_tokens(ours["input_ids"]), ours["label_mask"], strict=True) if m]
    assert trained == ["<｜Assistant｜>", "Hello", "<｜end▁of▁sentence｜>"]
    thinking = [messages[0], {"role": "assistant", "content": "<think>Greet back.</think>Hello"}]
    with pytest.raises(
        ConversationError, match=r"message 1: the reply's text is not inside the span .*Hello<｜end▁of▁sentence｜>'\)"
    ):
        mask_from_template(thinking, tok, chat_template=original, include_header=True)  # it drops the reasoning
