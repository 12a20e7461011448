"""Talk to your model: its greedy reply token by token, with the probability it gave each token and why it stopped.

Introduced in notebook 07_train_it_yourself (the toy model) and used again in 08_finetune_pythia. The reply is
:func:`sft_utils.train.generate.generate_reply`'s, from the same prompt (``generation_prompt_ids``) and the same
stop tokens (``stop_token_ids``: the end of message or any role marker), cut the same way (``cut_reply``);
transformers' ``generate`` hands each token to a streamer as it is chosen, and a logits processor reads the
probabilities it was chosen from (the softmax of the model's logits: greedy decoding adds no processor of its own).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from ..chat_format import OPEN_ASSISTANT, PROMPTER, ChatFormat, check_chat_format
from ..steps.mask import generation_prompt_ids
from ..steps.project import check_model
from ..steps.tokenize import check_tokenizer
from ..viz.chat import ChatWidget, reply_chips, stop_text
from ..viz.text import token_strings
from .generate import _check_positive, cut_reply, greedy_generate, stop_token_ids

STOP_REASONS = ("end of message", "role marker", "length")


@dataclass
class TokenReply:
    """A greedy reply, token by token.

    ``message``: the prompter's text; ``ids``: the reply's token ids (the stop token left out); ``tokens``: each
    decoded on its own, whitespace visible (:func:`sft_utils.viz.token_strings`); ``probabilities``: the
    probability the model gave each (float, 0 to 1); ``stopped_at``: the token that ended the reply
    (``"<|endoftext|>"``, a role marker such as ``"<|prompter|>"``) or None; ``stop_probability``: its
    probability; ``stop_reason``: ``"end of message"``, ``"role marker"`` or ``"length"`` (``max_new_tokens``
    reached), ``"generating"`` while it streams; ``reply``: the text, decoded without special tokens.
    Printing it gives the tokens and their probabilities; in a notebook it draws as chips.
    """

    message: str
    max_new_tokens: int
    ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    stopped_at: str | None = None
    stop_probability: float | None = None
    stop_reason: str = "generating"
    reply: str = ""

    def __str__(self) -> str:
        pieces = " ".join(f"{t}({p:.2f})" for t, p in zip(self.tokens, self.probabilities, strict=True))
        return f"prompter: {self.message}\nreply: {self.reply!r}\ntokens (probability): {pieces}\n{stop_text(self)}"

    def _repr_html_(self) -> str:
        return reply_chips(self)


class _Recorder:
    """A logits processor (it reads the distribution each token is chosen from) and a streamer (it receives the
    token), in one: transformers calls the first, then the second, once per generated token."""

    def __init__(self, on_token):
        self.on_token, self.probabilities, self.puts = on_token, [], 0

    def __call__(self, input_ids, scores):  # LogitsProcessor
        self.probabilities.append(torch.softmax(scores[0].float(), dim=-1).cpu())
        return scores

    def put(self, value):  # BaseStreamer: the prompt first, then one token per call
        if self.puts and self.on_token is not None:
            token = int(value.reshape(-1)[0])
            self.on_token(token, float(self.probabilities[self.puts - 1][token]))
        self.puts += 1

    def end(self):
        pass


@torch.no_grad()
def reply_tokens(
    model,
    tokenizer,
    message,
    *,
    max_new_tokens: int = 48,
    chat_format: ChatFormat = OPEN_ASSISTANT,
    on_token=None,
) -> TokenReply:
    """The greedy reply of ``model`` to the prompter's ``message``, with each token's probability and the stop reason.

    Args:
        message: the prompter's text (a str), or a conversation's messages ending with the prompter's.
        max_new_tokens: the most tokens generated (the stop token counts as one).
        chat_format: the format the model was trained in; the tokenizer must hold its tokens.
        on_token: None, or a function called with the :class:`TokenReply` so far after each token (streaming).

    Returns:
        A :class:`TokenReply`. Its ``reply`` equals :func:`sft_utils.train.generate_reply`'s for the same inputs.

    Raises:
        TypeError: a ``model`` that is not a transformers causal LM, a ``tokenizer`` that is not a tokenizer
            object, a ``chat_format`` that is not a ChatFormat, an ``on_token`` that is not callable.
        ValueError: ``max_new_tokens`` that is not an int >= 1.
        ConversationError: messages whose last is not the prompter's, an empty message.
    """
    from transformers import LogitsProcessorList

    check_model(model, generate=True)
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    _check_positive(max_new_tokens=max_new_tokens)
    if on_token is not None and not callable(on_token):
        raise TypeError(f"on_token must be a function of the reply so far, got {type(on_token).__name__}")
    messages = [{"role": PROMPTER, "text": message}] if isinstance(message, str) else message
    stops = stop_token_ids(tokenizer, chat_format)
    device = next(model.parameters()).device
    prompt = torch.tensor([generation_prompt_ids(messages, tokenizer, chat_format=chat_format)], device=device)
    text = messages[-1]["text"] if isinstance(message, str) else message[-1].get("text", message[-1].get("content"))
    reply = TokenReply(message=text, max_new_tokens=max_new_tokens)

    def grow(token: int, probability: float):
        if token in stops:  # the stop token ends the reply; what is shown is what comes before it
            reply.stopped_at, reply.stop_probability = stops[token], probability
        elif reply.stopped_at is None:
            reply.ids.append(token)
            reply.tokens += token_strings(tokenizer, [token])
            reply.probabilities.append(probability)
        if on_token is not None:
            on_token(reply)

    recorder = _Recorder(grow)
    was_training = model.training
    model.eval()
    try:
        out = greedy_generate(
            model,
            tokenizer,
            prompt,
            stops,
            max_new_tokens,
            logits_processor=LogitsProcessorList([recorder]),
            streamer=recorder,
        )
    finally:
        model.train(was_training)
    ids, stopped_at = cut_reply(out[0, prompt.shape[1] :].tolist(), stops)
    if ids != reply.ids:  # the streamed tokens are generate's own; a mismatch is a bug, not a model's choice
        raise RuntimeError(f"streamed tokens {reply.ids} differ from generate's {ids}")
    reply.stopped_at = stopped_at
    if stopped_at is None:
        reply.stop_reason = "length"
    else:
        reply.stop_reason = "end of message" if stopped_at == chat_format.end_of_message else "role marker"
    reply.reply = tokenizer.decode(ids, skip_special_tokens=True)
    return reply


def chat(
    model,
    tokenizer,
    message: str | None = None,
    *,
    questions=(),
    max_new_tokens: int = 48,
    chat_format: ChatFormat = OPEN_ASSISTANT,
):
    """Talk to ``model``: with a ``message``, its reply (a :class:`TokenReply`: prints as text with each token's
    probability, draws as chips in a notebook); without, a :class:`sft_utils.viz.chat.ChatWidget` in which you
    type prompter messages (or pick one of ``questions``) and watch the reply arrive token by token.

    Introduced in notebook 07_train_it_yourself. Arguments as :func:`reply_tokens`; raises as it does.
    """
    check_model(model, generate=True)
    check_tokenizer(tokenizer)
    settings = {"max_new_tokens": max_new_tokens, "chat_format": chat_format}
    if message is not None:
        return reply_tokens(model, tokenizer, message, **settings)
    _check_positive(max_new_tokens=max_new_tokens)
    check_chat_format(chat_format)
    respond = functools.partial(reply_tokens, model, tokenizer, **settings)
    return ChatWidget(lambda text, on_token: respond(text, on_token=on_token), questions=questions)
