"""Step 6 of the memo: cross-entropy over the trained (assistant) tokens only.

Introduced in notebook 06_masked_loss.

    loss = sum over masked positions of -log p(targets[t] | tokens <= t)  /  number of masked positions

As in the memo, the masked rows are selected *before* the softmax: untrained positions never enter the
computation, so whatever they hold (padding targets, -100, NaN logits) cannot leak into the loss or its
gradient. It equals ``F.cross_entropy(logits, labels, ignore_index=-100)`` with -100 where the mask is
False, and the model's own ``model(input_ids, labels=…)`` loss (tests check both to 1e-6).
"""

from __future__ import annotations

import torch
from torch import nn


def per_token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[target] for each row: ``[..., V]`` and ``[...]`` -> float32 ``[...]`` (nats).

    Computed in float32 even for bf16/fp16 logits (a 50k-way softmax loses precision in 16 bits). Raises TypeError
    for arguments that are not tensors, logits that are not floats or targets that are not integer ids;
    ValueError for shapes that do not match (``logits.shape[:-1] != targets.shape``) or a target outside
    ``0..V-1``.
    """
    _check_tensors(logits=logits, targets=targets)
    if logits.dim() < 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"shapes differ: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}; expected [..., V] and [...]"
        )
    _check_targets(targets, logits.shape[-1])
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -log_probs.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


class MaskedCrossEntropyLoss(nn.Module):
    """Memo step 6: mean cross-entropy over masked tokens.

    Args:
        reduction: ``"mean"`` (sum / count, the memo's), ``"sum"`` (for accumulating over micro-batches
            and dividing once by the step's total count) or ``"none"`` (the ``[B, T]`` per-token loss,
            0 where the mask is False).

    ``forward(logits [B, T, V] float, targets [B, T] int, mask [B, T] bool or 0/1) -> float32``
    scalar (nats per trained token; ``[B, T]`` for ``"none"``). With no masked token the mean is 0,
    not NaN: the sum (0) is divided by max(count, 1). Targets at unmasked positions are ignored (any
    value, -100 included).

    Raises:
        TypeError: an argument that is not a tensor; logits that are not floats; targets that are not integers.
        ValueError: shapes that are not ``[B, T, V]``, ``[B, T]``, ``[B, T]``; a mask with values other
            than 0/1; a *masked* target outside ``0..V-1``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``logits`` ``[B, T, V]``, ``targets`` ``[B, T]`` int, ``mask`` ``[B, T]`` -> float32 loss (nats)."""
        mask = _checked_mask(logits, targets, mask)
        trained_targets = targets[mask]
        nll = per_token_nll(logits[mask], trained_targets)  # [N]: only the N trained rows
        if self.reduction == "none":
            return torch.zeros(mask.shape, dtype=nll.dtype, device=nll.device).masked_scatter(mask, nll)
        total = nll.sum()
        if self.reduction == "sum":
            return total
        return total / mask.sum().clamp(min=1)


def _checked_mask(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask`` as bool, after checking the three arguments as :class:`MaskedCrossEntropyLoss` documents."""
    _check_tensors(logits=logits, targets=targets, mask=mask)
    if logits.shape[:-1] != targets.shape or targets.shape != mask.shape:
        raise ValueError(
            f"shapes differ: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, "
            f"mask {tuple(mask.shape)}; expected [B, T, V], [B, T], [B, T]"
        )
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():  # 0.5 or 2 would silently count as True
            raise ValueError("mask must be bool or hold only 0 and 1")
        mask = mask.bool()
    _check_targets(targets[mask], logits.shape[-1], "a masked target")
    return mask


def _check_tensors(**tensors) -> None:
    """TypeError unless each argument is a tensor, and ``logits`` (when given) a float one."""
    for name, value in tensors.items():
        if not torch.is_tensor(value):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    logits = tensors.get("logits")
    if logits is not None and not logits.is_floating_point():
        raise TypeError(f"logits must be a float tensor, got {logits.dtype} (token ids where logits go?)")


def _check_targets(targets: torch.Tensor, vocab_size: int, what: str = "a target") -> None:
    """TypeError unless ``targets`` are integer ids, ValueError when one lies outside ``0..vocab_size-1``."""
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets must be token ids (an integer tensor), got {targets.dtype}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= vocab_size):
        raise ValueError(
            f"{what} is outside 0..{vocab_size - 1} (min {targets.min().item()}, max {targets.max().item()})"
        )
