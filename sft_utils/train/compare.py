"""Two held-out losses of one model: each favours the model trained on it.

Introduced in notebook 06_masked_loss and used by 08_finetune_pythia's plain-versus-masked comparison. Masked SFT
minimises the **assistant-only** loss (the reply's tokens), plain SFT the **full-sequence** loss (every token,
the prompt's too); scored on one of them alone, each model wins on its own objective. Shown side by side, with
the replies, the comparison says what it measures.
"""

from __future__ import annotations

from ..chat_format import OPEN_ASSISTANT, ChatFormat
from ..scale.truncation import tokenize_conversations
from .evaluate import evaluate
from .loop import make_collator

METRICS = {"assistant-only": "masked", "full sequence": "plain"}  # metric -> the loss whose batches score it


def held_out_losses(
    model,
    tokenizer,
    conversations,
    *,
    batch_size: int = 16,
    max_length: int = 1024,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> dict[str, float]:
    """``{"assistant-only": …, "full sequence": …}``: the mean cross-entropy of ``model`` over the reply tokens
    (the label mask: what masked SFT trains), and over every real next token (``labels = input_ids``: what plain
    SFT trains), in nats per token, on ``conversations`` (truncated to ``max_length``; batches of ``batch_size``,
    token-weighted as :func:`sft_utils.train.evaluate`).

    Raises ValueError when no conversation keeps a trained token, and as :func:`sft_utils.tokenize_conversations`
    for bad conversations.
    """
    examples, _ = tokenize_conversations(
        conversations, tokenizer, max_length=max_length, drop_untrained=True, chat_format=chat_format
    )
    if not examples:
        raise ValueError("no conversation keeps a trained token: nothing to score")
    losses = {}
    for metric, loss in METRICS.items():
        collate = make_collator(loss, tokenizer)
        batches = [collate(examples[s : s + batch_size]) for s in range(0, len(examples), batch_size)]
        losses[metric] = evaluate(model, batches)
    return losses
