"""A greedy reply from a fine-tuned model, prompted as in training (memo step 1's generation prompt).

Introduced in notebook 08_finetune_pythia (``generate_reply``) and 07_train_it_yourself (``generate_replies``,
``reply_metrics``: batched greedy replies and exact match).
"""

from __future__ import annotations

import torch

from ..chat_format import OPEN_ASSISTANT, ChatFormat
from ..steps.mask import generation_prompt_ids, token_id


@torch.no_grad()
def generate_reply(
    model, tokenizer, messages, *, max_new_tokens: int = 48, chat_format: ChatFormat = OPEN_ASSISTANT
) -> str:
    """Greedy reply of ``model`` to ``messages`` (prompt: :func:`sft_utils.generation_prompt_ids`), stopped
    at the format's end of message (``<|endoftext|>``, id 0) or after ``max_new_tokens`` tokens; decoded
    without special tokens. Raises ConversationError when the last message is not the prompter's."""
    device = next(model.parameters()).device
    prompt = torch.tensor([generation_prompt_ids(messages, tokenizer, chat_format=chat_format)], device=device)
    model.eval()
    out = model.generate(
        input_ids=prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=token_id(tokenizer, chat_format.end_of_message),
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True)


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
    generation starts. Decoding stops at the format's end of message (``<|endoftext|>``, id 0) or after
    ``max_new_tokens`` tokens. transformers' ``generate`` derives the position ids from the attention mask, so
    a padded prompt gives the same reply as the prompt alone.

    Returns one dict per conversation: ``reply`` (decoded up to the end of message, without special tokens),
    ``expected`` (the final message's text), ``stopped`` (the end of message was written) and ``exact``
    (stopped, and ``reply == expected`` character for character).

    Raises:
        TypeError: ``conversations`` that is one conversation (a dict) or a string, or a ``chat_format`` that
            is not a :class:`ChatFormat`.
        ValueError: an empty list; ``max_new_tokens`` or ``batch_size`` that is not an int >= 1.
        ConversationError: an item that is not a ``{"messages": [...]}`` dict, or a conversation that does not
            end with an assistant reply after a prompter turn (named by its ``id``, else by its position).
    """
    from ..steps.format import ConversationError, conversation_entry, conversation_name, normalize_messages

    if isinstance(conversations, (dict, str)) or conversations is None:
        raise TypeError(f"conversations must be a list of conversations, got one {type(conversations).__name__}")
    for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not isinstance(chat_format, ChatFormat):
        raise TypeError(f"chat_format must be a ChatFormat (e.g. sft_utils.OPEN_ASSISTANT), got {chat_format!r}")
    conversations = list(conversations)
    if not conversations:
        raise ValueError("no conversations to reply to")
    prompts, expected = [], []
    for index, conversation in enumerate(conversations):
        name, messages = conversation_entry(conversation, index)
        messages = normalize_messages(messages, conversation_id=name)
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise ConversationError(
                f"{conversation_name(name)}: the last message must be the assistant's reply to compare with"
            )
        prompts.append(generation_prompt_ids(messages[:-1], tokenizer, chat_format=chat_format))
        expected.append(messages[-1]["text"])
    device = next(model.parameters()).device
    end, pad = token_id(tokenizer, chat_format.end_of_message), tokenizer.pad_token_id
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
                eos_token_id=end,
                pad_token_id=pad,
            )
            for row, target in zip(out[:, width:].tolist(), expected[start : start + batch_size], strict=True):
                stopped = end in row
                reply = tokenizer.decode(row[: row.index(end)] if stopped else row, skip_special_tokens=True)
                results.append({"reply": reply, "expected": target, "stopped": stopped})
                results[-1]["exact"] = stopped and reply == target
    finally:
        model.train(was_training)
    return results


def reply_metrics(model, tokenizer, conversations, **kwargs) -> dict[str, float]:
    """``exact_match`` (share of replies equal to the expected one, stopped at end of message) and
    ``stop_rate`` (share that wrote the end of message within ``max_new_tokens``) of
    :func:`generate_replies`, whose keyword arguments it takes."""
    results = generate_replies(model, tokenizer, conversations, **kwargs)
    return {
        "exact_match": sum(r["exact"] for r in results) / len(results),
        "stop_rate": sum(r["stopped"] for r in results) / len(results),
    }
