"""Step 6 of the memo: cross-entropy over the trained (assistant) tokens only.

Introduced in notebook 06_masked_loss.

    loss = sum over masked positions of -log p(targets[t] | tokens <= t)  /  number of masked positions

It equals ``F.cross_entropy(logits, labels, ignore_index=-100)`` with -100 where the mask is False,
and the model's own ``model(input_ids, labels=…)`` loss (tests check both to 1e-6).
"""

from __future__ import annotations

import torch
from torch import nn


def per_token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target] at every position: ``[B, T, V]`` and ``[B, T]`` -> float32 ``[B, T]`` (nats).

    Computed in float32 even for bf16/fp16 logits (a 50k-way softmax loses precision in 16 bits).
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -log_probs.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


class MaskedCrossEntropyLoss(nn.Module):
    """Memo step 6: mean cross-entropy over masked tokens.

    Args:
        reduction: ``"mean"`` (sum / count, the memo's), ``"sum"`` (for accumulating over micro-batches
            and dividing once by the step's total count) or ``"none"`` (the ``[B, T]`` per-token loss,
            0 where the mask is False).

    ``forward(logits [B, T, V] float, targets [B, T] int, mask [B, T] bool) -> scalar float32``
    (nats per trained token). With no masked token the mean is 0, not NaN: the sum (0) is divided by
    max(count, 1). Raises ValueError on mismatched shapes.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if logits.shape[:-1] != targets.shape or targets.shape != mask.shape:
            raise ValueError(f"shapes differ: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, "
                             f"mask {tuple(mask.shape)}; expected [B, T, V], [B, T], [B, T]")
        mask = mask.bool()
        # where(), not multiplication: an untrained position's loss may be inf, and inf * 0 is NaN.
        nll = torch.where(mask, per_token_nll(logits, targets), 0.0)
        if self.reduction == "none":
            return nll
        total = nll.sum()
        if self.reduction == "sum":
            return total
        return total / mask.sum().clamp(min=1)
