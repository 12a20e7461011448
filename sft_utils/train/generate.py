"""A greedy reply from a fine-tuned model, prompted as in training (memo step 1's generation prompt).

Introduced in notebook 08_finetune_pythia (``generate_reply``) and 07_train_it_yourself (``generate_replies``,
``reply_metrics``: batched greedy replies and exact match).

A reply ends at the format's end of message (``<|endoftext|>``) or at any role marker of the format
(``<|prompter|>``, ``<|assistant|>``, ``<|system|>``): a model that starts the next turn without closing its own
has made that turn up, and since role tokens are dropped when decoding, the made-up turn would otherwise be glued
onto the reply. transformers' ``generate`` takes the list of these ids as ``eos_token_id`` and stops at any of
them; the reply is cut before it.
"""

from __future__ import annotations

import torch

from ..chat_format import ASSISTANT, OPEN_ASSISTANT, ChatFormat, check_chat_format
from ..steps.format import (
    ConversationError,
    check_conversations,
    conversation_entry,
    conversation_name,
    normalize_messages,
)
from ..steps.mask import generation_prompt_ids, token_id
from ..steps.project import check_model
from ..steps.tokenize import check_tokenizer


def stop_token_ids(tokenizer, chat_format: ChatFormat = OPEN_ASSISTANT) -> dict[int, str]:
    """Id -> token of every token that ends a reply: the format's end of message first, then the marker token that
    opens each role's header (``{0: "<|endoftext|>", 50279: "<|prompter|>", 50280: "<|assistant|>", 50281:
    "<|system|>"}`` for Pythia in Open-Assistant's format; ``{50278: "<|im_end|>", 50277: "<|im_start|>"}`` in
    ChatML, whose headers all open with one token). Raises ValueError when the tokenizer lacks one (load it with
    ``sft_utils.load_tokenizer(chat_format=…)``)."""
    markers = dict.fromkeys(map(chat_format.marker_token, chat_format.role_markers))  # ChatML's: one, shared
    tokens = [chat_format.end_of_message, *markers]
    return {token_id(tokenizer, token): token for token in tokens}


def cut_reply(ids: list[int], stops: dict[int, str]) -> tuple[list[int], str | None]:
    """(the generated ``ids`` up to the first stop token, that token or None when there is none)."""
    for position, token in enumerate(ids):
        if token in stops:
            return ids[:position], stops[token]
    return ids, None


def _check_positive(**settings) -> None:
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


@torch.no_grad()
def generate_reply(
    model, tokenizer, messages, *, max_new_tokens: int = 48, chat_format: ChatFormat = OPEN_ASSISTANT
) -> str:
    """Greedy reply of ``model`` to ``messages`` (prompt: :func:`sft_utils.generation_prompt_ids`), decoded without
    special tokens.

    Generation stops at the format's end of message (``<|endoftext|>``, id 0), at any of its role markers
    (``<|prompter|>``, ``<|assistant|>``, ``<|system|>``: the model began a turn that is not its own), or after
    ``max_new_tokens`` tokens; the reply is what comes before the stop token.

    Raises:
        ConversationError: the last message is not the prompter's, or messages that ``normalize_messages`` refuses
            (a ConversationTypeError, also a TypeError, for messages of the wrong kind).
        TypeError: a ``model`` that is not a transformers causal LM, a ``tokenizer`` that is not a tokenizer object
            (a name: load it first), a ``chat_format`` that is not a ChatFormat.
        ValueError: ``max_new_tokens`` that is not an int >= 1.
    """
    check_model(model, generate=True)
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    _check_positive(max_new_tokens=max_new_tokens)
    stops = stop_token_ids(tokenizer, chat_format)
    device = next(model.parameters()).device
    prompt = torch.tensor([generation_prompt_ids(messages, tokenizer, chat_format=chat_format)], device=device)
    model.eval()
    out = greedy_generate(model, tokenizer, prompt, stops, max_new_tokens)
    reply, _ = cut_reply(out[0, prompt.shape[1] :].tolist(), stops)
    return tokenizer.decode(reply, skip_special_tokens=True)


def greedy_generate(model, tokenizer, prompt, stops, max_new_tokens: int, **generate_kwargs):
    """transformers' greedy ``generate`` on one prompt ``[1, T]`` (int64), stopping at any id in ``stops``: the
    output ``[1, T + n]``, prompt included. Extra keywords (a streamer, logits processors) go to ``generate``."""
    return model.generate(
        input_ids=prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=list(stops),
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(stops)),
        **generate_kwargs,
    )


@torch.no_grad()
def generate_replies(
    model,
    tokenizer,
    conversations,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 64,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> list[dict]:
    """Greedy replies to the last prompter turn of each conversation, batched: what the model says in place
    of the conversation's final assistant message.

    Each prompt is :func:`sft_utils.generation_prompt_ids` of the messages before the final reply (earlier
    replies are kept as written), left-padded with ``tokenizer.pad_token_id`` so that every prompt ends where
    generation starts. Decoding stops at the format's end of message (``<|endoftext|>``, id 0), at any of its role
    markers (the model began a turn that is not its own), or after ``max_new_tokens`` tokens. transformers'
    ``generate`` derives the position ids from the attention mask, so a padded prompt gives the same reply as the
    prompt alone.

    Returns one dict per conversation: ``reply`` (decoded up to the stop token, without special tokens),
    ``expected`` (the final message's text), ``stopped_at`` (the token that stopped it, e.g. ``"<|endoftext|>"`` or
    ``"<|prompter|>"``; None when it ran to ``max_new_tokens``), ``stopped`` (the end of message was written: a
    reply cut at a role marker did not stop cleanly, so it is not stopped) and ``exact`` (stopped, and
    ``reply == expected`` character for character).

    Raises:
        TypeError: ``conversations`` that is one conversation (a dict, or the list of its messages), a string or
            None; a ``model`` that is not a transformers causal LM; a ``tokenizer`` that is not a tokenizer object;
            a ``chat_format`` that is not a :class:`ChatFormat`.
        ValueError: an empty list; ``max_new_tokens`` or ``batch_size`` that is not an int >= 1; a tokenizer
            without a pad token (prompts are padded).
        ConversationError: an item that is not a ``{"messages": [...]}`` dict, or a conversation that does not
            end with an assistant reply after a prompter turn (named by its ``id``, else by its position).
    """
    conversations = check_conversations(conversations)
    _check_positive(max_new_tokens=max_new_tokens, batch_size=batch_size)
    check_chat_format(chat_format)
    check_model(model, generate=True)
    check_tokenizer(tokenizer, pad=True)
    if not conversations:
        raise ValueError("no conversations to reply to")
    prompts, expected = [], []
    for index, conversation in enumerate(conversations):
        name, messages = conversation_entry(conversation, index)
        messages = normalize_messages(messages, conversation_id=name)
        if len(messages) < 2 or messages[-1]["role"] != ASSISTANT:
            raise ConversationError(
                f"{conversation_name(name)}: the last message must be the assistant's reply to compare with"
            )
        prompts.append(generation_prompt_ids(messages[:-1], tokenizer, chat_format=chat_format))
        expected.append(messages[-1]["text"])
    stops = stop_token_ids(tokenizer, chat_format)
    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            width = max(map(len, chunk))
            input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=device)
            attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=list(stops),
                pad_token_id=pad,
            )
            for row, target in zip(out[:, width:].tolist(), expected[start : start + batch_size], strict=True):
                ids, stopped_at = cut_reply(row, stops)
                reply = tokenizer.decode(ids, skip_special_tokens=True)
                stopped = stopped_at == chat_format.end_of_message
                results.append(
                    {
                        "reply": reply,
                        "expected": target,
                        "stopped_at": stopped_at,
                        "stopped": stopped,
                        "exact": stopped and reply == target,
                    }
                )
    finally:
        model.train(was_training)
    return results


def reply_metrics(model, tokenizer, conversations, **kwargs) -> dict[str, float]:
    """``exact_match`` (share of replies equal to the expected one, stopped at end of message) and
    ``stop_rate`` (share that wrote the end of message within ``max_new_tokens``; a reply cut at a role marker
    does not count) of :func:`generate_replies`, whose keyword arguments it takes and whose errors it raises."""
    results = generate_replies(model, tokenizer, conversations, **kwargs)
    return {
        "exact_match": sum(r["exact"] for r in results) / len(results),
        "stop_rate": sum(r["stopped"] for r in results) / len(results),
    }
