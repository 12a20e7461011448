"""Generation stops at the end of message or at any role marker of the format, and the reply is cut before it.

The model is pythia-14m's architecture with every layer silenced (attention and MLP outputs zero), so its last
hidden state is the final layer norm of the current token's embedding, and its output head is set so that after
each token of a chosen chain the greedy next token is the following one: the model writes exactly that chain.
"""

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from sft_utils import pythia_config
from sft_utils.data.toy import toy_conversations
from sft_utils.train.generate import generate_replies, generate_reply

PROMPT = [{"role": "prompter", "text": "Say hello."}]
ASSISTANT_ID = 50280  # the prompt's last token: generation starts after it
STOPS = {"<|endoftext|>": 0, "<|prompter|>": 50279, "<|assistant|>": 50280, "<|system|>": 50281}


def chain_model(chain: list[int]) -> GPTNeoXForCausalLM:
    """A model whose greedy output after ``chain[i]`` is ``chain[i + 1]`` (the last token is followed by the first
    one after it, so a chain may loop)."""
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(pythia_config("EleutherAI/pythia-14m")).eval()
    with torch.no_grad():
        for layer in model.gpt_neox.layers:
            for linear in (layer.attention.dense, layer.mlp.dense_4h_to_h):
                linear.weight.zero_()
                linear.bias.zero_()
        hidden = model.gpt_neox.final_layer_norm(model.gpt_neox.embed_in(torch.tensor(chain[:-1])))
        head = model.get_output_embeddings().weight
        head.zero_()
        for state, successor in zip(hidden, chain[1:]):
            head[successor] += 10 * state / state.norm()  # after this token, `successor` scores about 10 x its norm
    return model


def hello_ids(tokenizer) -> list[int]:
    return tokenizer("Hello there!", add_special_tokens=False)["input_ids"]


def conversation(reply: str) -> dict:
    return {"id": "hello", "messages": [*PROMPT, {"role": "assistant", "text": reply}]}


def test_the_chain_model_writes_its_chain(tokenizer):
    """The rig itself: transformers' own greedy generate, stopping at nothing, writes the chain."""
    ids = hello_ids(tokenizer)
    assert tokenizer.convert_ids_to_tokens(ids) == ["Hello", "Ġthere", "!"]
    model = chain_model([ASSISTANT_ID, *ids, 50279, ids[0]])
    prompt = torch.tensor([[50279, 12764, 0, ASSISTANT_ID]])
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=5, do_sample=False)
    assert out[0, 4:].tolist() == [*ids, 50279, ids[0]]


@pytest.mark.parametrize("stop", list(STOPS))
def test_a_reply_stops_at_the_end_of_message_or_any_role_marker(tokenizer, stop):
    model = chain_model([ASSISTANT_ID, *hello_ids(tokenizer), STOPS[stop], *hello_ids(tokenizer)])
    assert generate_reply(model, tokenizer, PROMPT, max_new_tokens=10) == "Hello there!"
    (result,) = generate_replies(model, tokenizer, [conversation("Hello there!")], max_new_tokens=10)
    clean = stop == "<|endoftext|>"
    assert result == {
        "reply": "Hello there!",
        "expected": "Hello there!",
        "stopped_at": stop,
        "stopped": clean,  # a reply cut at a role marker did not end its message
        "exact": clean,
    }


def test_text_after_a_made_up_turn_is_not_glued_onto_the_reply(tokenizer):
    """The model writes "Hello there", opens a prompter turn, writes "!" and ends it: the reply is "Hello there"
    (decoding without special tokens would otherwise drop the marker and give "Hello there!")."""
    hello, there, bang = hello_ids(tokenizer)
    model = chain_model([ASSISTANT_ID, hello, there, 50279, bang, 0])
    assert generate_reply(model, tokenizer, PROMPT, max_new_tokens=10) == "Hello there"
    (result,) = generate_replies(model, tokenizer, [conversation("Hello there")], max_new_tokens=10)
    assert (result["reply"], result["stopped_at"], result["stopped"], result["exact"]) == (
        "Hello there",
        "<|prompter|>",
        False,
        False,
    )


def test_without_a_stop_token_the_reply_runs_to_max_new_tokens(tokenizer):
    ids = hello_ids(tokenizer)
    model = chain_model([ASSISTANT_ID, *ids, ids[0]])  # Hello there! Hello there! … never a stop token
    assert generate_reply(model, tokenizer, PROMPT, max_new_tokens=7) == "Hello there!Hello there!Hello"
    (result,) = generate_replies(model, tokenizer, [conversation("Hello there!")], max_new_tokens=7)
    assert (result["reply"], result["stopped_at"], result["stopped"]) == ("Hello there!Hello there!Hello", None, False)


def test_padded_batch_replies_equal_one_by_one_when_rows_stop_at_a_marker(tiny_model, tokenizer):
    """A random model with +0.5 on the <|prompter|> logit: some rows write the marker after a few tokens, others
    run to max_new_tokens. Batched and left-padded, each row is cut where it is cut alone."""
    head = tiny_model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[STOPS["<|prompter|>"]] = 0.5
    tiny_model.set_output_embeddings(biased)
    try:
        conversations = toy_conversations("last_word", "held-out", 3) + toy_conversations("remember", "held-out", 2)
        together = generate_replies(tiny_model, tokenizer, conversations, max_new_tokens=6)
        alone = [generate_replies(tiny_model, tokenizer, [c], max_new_tokens=6)[0] for c in conversations]
    finally:
        tiny_model.set_output_embeddings(head)
    stopped_at = [r["stopped_at"] for r in alone]
    assert "<|prompter|>" in stopped_at and None in stopped_at  # the rows do stop differently
    assert len({r["reply"] for r in alone if r["stopped_at"]}) > 1  # and at different steps
    assert together == alone


def test_stop_tokens_are_the_end_and_the_tokens_that_open_a_header(tokenizer, format_tokenizer):
    """ChatML's and Llama 3's headers are several tokens, all opened by one marker token: that token stops a reply."""
    from sft_utils import CHATML, LLAMA3
    from sft_utils.train.generate import stop_token_ids

    assert stop_token_ids(tokenizer) == {
        0: "<|endoftext|>",
        50279: "<|prompter|>",
        50280: "<|assistant|>",
        50281: "<|system|>",
    }
    assert stop_token_ids(format_tokenizer(CHATML), CHATML) == {50278: "<|im_end|>", 50277: "<|im_start|>"}
    assert stop_token_ids(format_tokenizer(LLAMA3), LLAMA3) == {50280: "<|eot_id|>", 50278: "<|start_header_id|>"}
