"""Talk to your model: the reply token by token, its probabilities, its stop reason, and the chat widget.

The stop reasons use test_generate's chain model (a pythia-14m whose greedy output after each token of a chain is
the next one); the probabilities are checked against the model's own softmax on a random-weight pythia-14m.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from sft_utils.train import chat, generate_reply, reply_tokens
from sft_utils.viz import ChatWidget, reply_chips

_spec = importlib.util.spec_from_file_location("chat_test_generate", Path(__file__).with_name("test_generate.py"))
_generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_generate)
chain_model, hello_ids, ASSISTANT_ID, STOPS = (
    _generate.chain_model,
    _generate.hello_ids,
    _generate.ASSISTANT_ID,
    _generate.STOPS,
)
QUESTION = "Say hello."  # test_generate's prompt


@pytest.mark.parametrize(
    ("stop", "reason"), [("<|endoftext|>", "end of message"), ("<|prompter|>", "role marker"), (None, "length")]
)
def test_the_stop_reason_and_the_reply_are_generate_replys(tokenizer, stop, reason):
    ids = hello_ids(tokenizer)
    chain = [ASSISTANT_ID, *ids, STOPS[stop], *ids] if stop else [ASSISTANT_ID, *ids, *ids, *ids]
    model = chain_model(chain)
    reply = reply_tokens(model, tokenizer, QUESTION, max_new_tokens=5)
    assert reply.stop_reason == reason
    assert reply.stopped_at == stop
    expected = ids if stop else (ids + ids)[:5]
    assert reply.ids == expected
    assert reply.tokens == ["Hello", "␣there", "!", "Hello", "␣there"][: len(expected)]
    assert reply.reply == generate_reply(model, tokenizer, [{"role": "prompter", "text": QUESTION}], max_new_tokens=5)
    assert (reply.stop_probability is None) == (stop is None)


def test_probabilities_are_the_models_softmax_of_the_chosen_tokens(tokenizer, tiny_model):
    reply = reply_tokens(tiny_model, tokenizer, "Where does Ana live?", max_new_tokens=6)
    assert reply.stop_reason == "length" and len(reply.ids) == 6  # random weights: no stop token
    prompt = tokenizer("<|prompter|>Where does Ana live?<|endoftext|><|assistant|>")["input_ids"]
    with torch.no_grad():
        logits = tiny_model(torch.tensor([prompt + reply.ids])).logits[0]
    probabilities = torch.softmax(logits[len(prompt) - 1 : -1], dim=-1)  # the distribution before each reply token
    chosen = probabilities[torch.arange(6), torch.tensor(reply.ids)]
    torch.testing.assert_close(torch.tensor(reply.probabilities), chosen, rtol=1e-4, atol=1e-7)
    assert torch.equal(probabilities.argmax(dim=-1), torch.tensor(reply.ids))  # greedy: the most likely token
    assert torch.allclose(probabilities.sum(dim=-1), torch.ones(6))


def test_the_stop_tokens_probability_is_the_models(tokenizer):
    ids = hello_ids(tokenizer)
    model = chain_model([ASSISTANT_ID, *ids, 0, *ids])
    reply = reply_tokens(model, tokenizer, QUESTION)
    prompt = tokenizer(f"<|prompter|>{QUESTION}<|endoftext|><|assistant|>")["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0, -1]
    assert reply.stop_probability == pytest.approx(torch.softmax(logits, -1)[0].item(), rel=1e-4)
    assert 0 < reply.stop_probability <= 1


def test_streaming_hands_over_each_token_as_it_comes(tokenizer):
    ids = hello_ids(tokenizer)
    model = chain_model([ASSISTANT_ID, *ids, 0, *ids])
    seen = []
    reply = reply_tokens(model, tokenizer, QUESTION, on_token=lambda r: seen.append((list(r.ids), r.stopped_at)))
    assert seen == [(ids[:1], None), (ids[:2], None), (ids, None), (ids, "<|endoftext|>")]
    assert reply.stop_reason == "end of message"


def test_chat_with_a_message_returns_the_reply_printable_and_drawable(tokenizer):
    ids = hello_ids(tokenizer)
    reply = chat(chain_model([ASSISTANT_ID, *ids, 0]), tokenizer, QUESTION)
    text = str(reply)
    assert "reply: 'Hello there!'" in text and "stopped at the end of message <|endoftext|>" in text
    assert "Hello(" in text and "␣there(" in text
    page = reply._repr_html_()
    assert page.count('class="chip chat-token"') == 3 and page.count('class="chip chat-stop"') == 1
    assert 'data-stop="end of message"' in page and "sft-chat-legend" in page


def test_the_widget_answers_the_first_question_then_what_is_typed(tokenizer, tiny_model):
    widget = chat(tiny_model, tokenizer, questions=["Where does Ana live?", "Where does Ben live?"], max_new_tokens=4)
    assert isinstance(widget, ChatWidget)
    assert widget.reply.message == "Where does Ana live?"
    assert widget.html.value.count('class="chip chat-token"') == 4
    widget.questions.value = "Where does Ben live?"
    assert widget.text.value == "Where does Ben live?"
    widget.text.value = "Hello!"
    widget.send_button.click()
    assert widget.reply.message == "Hello!" and 'data-stop="length"' in widget.html.value
    assert widget.html.value == reply_chips(widget.reply)
    bundle = widget._repr_mimebundle_()
    assert bundle["text/html"] == widget.html.value and "prompter: Hello!" in bundle["text/plain"]
    widget.text.value = "  "
    assert widget.send() is None and "type a message first" in widget.html.value


def test_bad_arguments_are_named(tokenizer, tiny_model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        reply_tokens(tiny_model, tokenizer, "Hi", max_new_tokens=0)
    with pytest.raises(TypeError, match="on_token"):
        reply_tokens(tiny_model, tokenizer, "Hi", on_token="print")
    with pytest.raises(TypeError, match="respond"):
        ChatWidget("not a function")
    with pytest.raises(TypeError, match="questions"):
        ChatWidget(lambda message, on_token: None, questions="Where does Ana live?")
