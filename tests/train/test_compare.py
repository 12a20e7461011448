"""held_out_losses: the assistant-only and full-sequence losses, each equal to an independent computation."""

import pytest
import torch

from sft_utils import AssistantOnlyCollator, CausalLMCollator, MaskedCrossEntropyLoss, tokenize_conversation
from sft_utils.data.toy import toy_conversations
from sft_utils.train import held_out_losses


def test_both_losses_equal_the_models_own_over_all_tokens(tokenizer, tiny_model):
    conversations = toy_conversations("last_word", "held-out", 3)
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in conversations]
    losses = held_out_losses(tiny_model, tokenizer, conversations, batch_size=2)  # two batches: token-weighted
    masked = AssistantOnlyCollator(tokenizer.pad_token_id)(examples)
    with torch.no_grad():
        logits = tiny_model(input_ids=masked["input_ids"], attention_mask=masked["attention_mask"]).logits
        assistant_only = MaskedCrossEntropyLoss()(logits, masked["targets"], masked["label_masks"])
        full_sequence = tiny_model(**CausalLMCollator(tokenizer)(examples)).loss  # labels = input_ids, -100 on padding
    assert set(losses) == {"assistant-only", "full sequence"}
    assert losses["assistant-only"] == pytest.approx(assistant_only.item(), rel=1e-5)
    assert losses["full sequence"] == pytest.approx(full_sequence.item(), rel=1e-5)


def test_no_trained_token_left_is_refused(tokenizer, tiny_model):
    with pytest.warns(UserWarning, match="dropped 2 of 2"), pytest.raises(ValueError, match="nothing to score"):
        held_out_losses(tiny_model, tokenizer, toy_conversations("last_word", "held-out", 2), max_length=4)
