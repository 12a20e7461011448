"""A greedy reply from a fine-tuned model, prompted as in training (memo step 1's generation prompt).

Introduced in notebook 07_finetune_pythia.
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
