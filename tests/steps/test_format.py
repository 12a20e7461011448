import pytest

from sft_utils import ConversationError, format_conversation, normalize_messages

HELLO = [
    {"role": "prompter", "text": "Hello, how are you?"},
    {"role": "assistant", "text": "I am fine."},
]


def test_two_messages_render_with_markers_and_one_eos_each():
    assert format_conversation(HELLO) == (
        "<|prompter|>Hello, how are you?<|endoftext|><|assistant|>I am fine.<|endoftext|>"
    )


def test_system_keyword_comes_first():
    assert format_conversation(HELLO, system="Be brief.") == (
        "<|system|>Be brief.<|endoftext|><|prompter|>Hello, how are you?<|endoftext|>"
        "<|assistant|>I am fine.<|endoftext|>"
    )


def test_system_message_in_list_equals_system_keyword():
    with_message = [{"role": "system", "text": "Be brief."}, *HELLO]
    assert format_conversation(with_message) == format_conversation(HELLO, system="Be brief.")


def test_ecosystem_form_user_content_gives_the_same_string():
    ecosystem = [{"role": "user", "content": "Hello, how are you?"}, {"role": "assistant", "content": "I am fine."}]
    assert format_conversation(ecosystem) == format_conversation(HELLO)


def test_generation_prompt_appends_assistant_marker():
    prompt = format_conversation(HELLO[:1], add_generation_prompt=True)
    assert prompt == "<|prompter|>Hello, how are you?<|endoftext|><|assistant|>"


def test_generation_prompt_after_a_reply_is_an_error():
    with pytest.raises(
        ConversationError, match="add_generation_prompt needs a conversation that ends with the prompter"
    ):
        format_conversation(HELLO, add_generation_prompt=True)


def test_text_is_kept_byte_for_byte():
    text = "  leading and trailing spaces \r\n and a tab\t "
    assert format_conversation([{"role": "prompter", "text": text}]) == f"<|prompter|>{text}<|endoftext|>"


def test_normalize_returns_role_and_text_only():
    out = normalize_messages([{"role": "user", "content": "q", "name": "x"}, {"role": "assistant", "text": "a"}])
    assert out == [{"role": "prompter", "text": "q"}, {"role": "assistant", "text": "a"}]


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([], "conversation 'c7': no messages"),
        ("hello", "messages must be a list of dicts, got str"),
        ([["prompter", "hi"]], "conversation 'c7', message 0: expected a dict"),
        ([{"role": "bot", "text": "hi"}], "message 0: unknown role 'bot'"),
        ([{"role": None, "text": "hi"}], "message 0: unknown role None"),
        ([{"role": "prompter"}], "message 0: has no 'text' (or 'content') key"),
        ([{"role": "prompter", "text": "a", "content": "b"}], "message 0: has both 'text' and 'content'"),
        ([{"role": "prompter", "text": 42}], "message 0: text must be a str, got int"),
        ([{"role": "prompter", "text": " \n\t"}], "message 0: text is empty or whitespace only"),
        ([{"role": "prompter", "text": ""}], "message 0: text is empty or whitespace only"),
        ([HELLO[0], {"role": "system", "text": "s"}], "message 1: system message is not the first message"),
        (
            [HELLO[0], HELLO[0]],
            "message 1: expected role 'assistant' (roles alternate, prompter first), got 'prompter'",
        ),
        ([HELLO[1]], "message 0: expected role 'prompter'"),
        ([{"role": "prompter", "text": "\u200b\u200b "}], "message 0: text is empty or whitespace only"),
        (
            [HELLO[0], {"role": "assistant", "text": "b\ud800c"}],
            "message 1: text is not valid Unicode (surrogates not allowed at character 1)",
        ),
    ],
)
def test_bad_input_raises_naming_conversation_and_message(messages, expected):
    with pytest.raises(ConversationError) as err:
        format_conversation(messages, conversation_id="c7")
    assert expected in str(err.value)
    assert "c7" in str(err.value)


def test_system_keyword_and_system_message_together_is_an_error():
    with pytest.raises(ConversationError, match="given both system= and a system message"):
        format_conversation([{"role": "system", "text": "a"}, *HELLO], system="b")


def test_empty_system_keyword_is_an_error():
    with pytest.raises(ConversationError, match="message system=: text is empty"):
        format_conversation(HELLO, system="  ")
