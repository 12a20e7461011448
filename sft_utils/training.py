"""A first fine-tuning loop with the masked loss (memo steps 4-6 put to work).

Introduced in notebook 07_finetune_pythia. Deliberately small: one optimizer step per batch, fp32 on
the CPU or bf16 autocast on a GPU that supports it. The loop itself lives in the notebook, in view.
"""

from __future__ import annotations

import torch

from .loss import MaskedCrossEntropyLoss

_sum_loss = MaskedCrossEntropyLoss(reduction="sum")


def move_batch(batch: dict, device) -> dict:
    """Every tensor of a collated batch on ``device``."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def autocast_for(device) -> torch.autocast:
    """bf16 autocast on a GPU that supports it; disabled (fp32) elsewhere."""
    device = torch.device(device)
    enabled = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def masked_loss_sum(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Forward a ``"shifted"`` batch (see ``AssistantOnlyCollator``): (sum of trained-token CE in nats, count).

    Keys: ``input_ids``, ``attention_mask``, ``targets`` int64 ``[B, T]``, ``label_masks`` bool ``[B, T]``.
    """
    with autocast_for(batch["input_ids"].device):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return _sum_loss(logits, batch["targets"], batch["label_masks"]), int(batch["label_masks"].sum())


def train_step(model, batch: dict, optimizer, *, max_grad_norm: float = 1.0) -> float:
    """One optimizer step on the batch's mean trained-token loss; returns that loss (nats per token)."""
    model.train()
    total, count = masked_loss_sum(model, batch)
    loss = total / max(count, 1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model, batches) -> float:
    """Mean CE over all trained tokens of ``batches`` (token-weighted, not a mean of batch means), nats."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        batch_total, batch_count = masked_loss_sum(model, move_batch(batch, model.device))
        total, count = total + batch_total.item(), count + batch_count
    return total / max(count, 1)
