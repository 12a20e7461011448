"""Memo steps 5-6 fused: project only the trained rows, a chunk at a time, never the full logits.

Introduced in notebook 05_project (its last section). Step 6 needs ``log softmax(logits)[target]`` only
where the label mask is True, yet the usual route builds logits for every position, ``[batch, seq, vocab]``
(3.3 GB in float32 for 8 × 2048 × 50 304), and the loss and its gradient make copies of the same size.
Here:

1. **select**: ``hidden[mask]`` keeps the N trained rows (``[N, hidden]``, small);
2. **project in chunks**: rows ``i : i + chunk_rows`` go through the head, ``[chunk_rows, vocab]``; of
   each row we keep two numbers, the log-sum-exp and the target's logit (CE = logsumexp - target logit);
3. **recompute in backward**: the chunk's logits are rebuilt, turned in place into
   ``softmax - one_hot(target)`` (the gradient of CE with respect to the logits), and multiplied into the
   gradients of the hidden rows and of the head weight.

So the largest temporary is one ``[chunk_rows, vocab]`` float32 block, whatever the batch size. The loss
equals :class:`sft_utils.MaskedCrossEntropyLoss` on full logits (1e-6 in float32), and so do the gradients
(tests check both). Under autocast the projection runs in the autocast dtype, as the model's head would,
and the softmax in float32, as :func:`sft_utils.steps.loss.per_token_nll` does.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK_ROWS = 1024  # 1024 × 50 304 float32 = 206 MB per chunk


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype a ``Linear`` would compute in here: the autocast dtype when autocast is on, else the input's."""
    device_type = hidden.device.type
    try:
        enabled, dtype = torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4: one function per device type
        cuda = device_type == "cuda"
        enabled = torch.is_autocast_enabled() if cuda else torch.is_autocast_cpu_enabled()
        dtype = torch.get_autocast_gpu_dtype() if cuda else torch.get_autocast_cpu_dtype()
    return dtype if enabled else hidden.dtype


def _chunk_logits(rows, weight, bias, dtype) -> torch.Tensor:
    """``rows @ weight.T (+ bias)`` in ``dtype``, returned as float32 ``[n, vocab]`` (the softmax needs it)."""
    logits = rows.to(dtype) @ weight.to(dtype).t()
    if bias is not None:
        logits = logits + bias.to(dtype)
    return logits.float()


class SelectedRowsCrossEntropy(torch.autograd.Function):
    """Sum over rows of ``-log softmax(hidden @ weight.T + bias)[target]``, ``chunk_rows`` rows at a time.

    ``apply(hidden [N, H], weight [V, H], bias [V] or None, targets [N] int64, chunk_rows int)`` -> float32
    scalar (nats). Saves only the inputs and one log-sum-exp per row; the backward recomputes each chunk.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_rows):
        dtype = _compute_dtype(hidden)
        with torch.autocast(hidden.device.type, enabled=False):  # we cast ourselves, to `dtype`
            log_z = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, hidden.shape[0], chunk_rows):
                rows, chunk_targets = hidden[start : start + chunk_rows], targets[start : start + chunk_rows]
                logits = _chunk_logits(rows, weight, bias, dtype)
                target_logits = logits.gather(1, chunk_targets.unsqueeze(1)).squeeze(1)
                # logsumexp, in place on the chunk: max, then exp(logits - max) summed.
                row_max = logits.amax(dim=1)
                chunk_log_z = row_max + logits.sub_(row_max.unsqueeze(1)).exp_().sum(dim=1).log()
                log_z[start : start + chunk_rows] = chunk_log_z
                total += (chunk_log_z - target_logits).sum()
                del logits  # free this chunk before the next one is allocated: one block alive at a time
        ctx.save_for_backward(hidden, weight, bias, targets, log_z)
        ctx.chunk_rows, ctx.dtype = chunk_rows, dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        hidden, weight, bias, targets, log_z = ctx.saved_tensors
        needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_hidden = torch.empty_like(hidden) if needs_hidden else None
        # Accumulated over chunks in float32, cast once at the end (as autocast's float32 master weights get).
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if needs_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if needs_bias else None
        with torch.autocast(hidden.device.type, enabled=False):
            weight_c = weight.to(ctx.dtype)
            for start in range(0, hidden.shape[0], ctx.chunk_rows):
                stop = start + ctx.chunk_rows
                rows = hidden[start:stop]
                # d CE / d logits = softmax(logits) - one_hot(target), built in place on the recomputed chunk.
                grad_logits = _chunk_logits(rows, weight, bias, ctx.dtype)
                grad_logits.sub_(log_z[start:stop].unsqueeze(1)).exp_()
                grad_logits[torch.arange(rows.shape[0], device=rows.device), targets[start:stop]] -= 1
                grad_logits.mul_(grad_total)
                grad_logits_c = grad_logits.to(ctx.dtype)
                if needs_hidden:
                    grad_hidden[start:stop] = grad_logits_c @ weight_c
                if needs_weight and ctx.dtype == torch.float32:
                    grad_weight.addmm_(grad_logits_c.t(), rows.float())  # += without a [V, H] temporary
                elif needs_weight:
                    grad_weight += (grad_logits_c.t() @ rows.to(ctx.dtype)).float()
                if needs_bias:
                    grad_bias += grad_logits.sum(dim=0)
                del grad_logits, grad_logits_c  # as in forward: one block alive at a time
        return (
            grad_hidden,
            grad_weight.to(weight.dtype) if needs_weight else None,
            grad_bias.to(bias.dtype) if needs_bias else None,
            None,
            None,
        )


def chunked_masked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[torch.Tensor, int]:
    """Memo steps 5-6 without full logits: (sum of the trained targets' cross-entropy in nats, their count).

    Args:
        hidden: ``[B, T, H]`` float, the final hidden states (after the last layer norm).
        weight: ``[V, H]``, the output head's weight (``sft_utils.output_head(model).weight``).
        targets: ``[B, T]`` int, next-token ids (any value where ``mask`` is False, -100 included).
        mask: ``[B, T]`` bool (or 0/1), True on trained targets.
        bias: ``[V]`` or None (GPT-NeoX's head has none).
        chunk_rows: rows projected at once; peak extra memory is about ``chunk_rows × V × 4`` bytes.

    Returns:
        ``(loss_sum, count)``: a float32 scalar tensor (differentiable with respect to ``hidden``,
        ``weight``, ``bias``) and an int. ``loss_sum / count`` is ``MaskedCrossEntropyLoss()`` of
        ``hidden @ weight.T``; with no trained target the sum is a differentiable 0.

    Raises:
        ValueError: shapes that are not ``[B, T, H]``, ``[V, H]``, ``[B, T]``, ``[B, T]`` (bias ``[V]``); a mask with values
            other than 0/1; a masked target outside ``0..V-1``; ``chunk_rows`` not a positive int.
        TypeError: an argument that is not a tensor (a numpy array, a list); targets not of an integer dtype.
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    given = {"hidden": hidden, "weight": weight, "targets": targets, "mask": mask, "bias": bias}
    for name, value in given.items():
        if not (torch.is_tensor(value) or (name == "bias" and value is None)):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if hidden.dim() != 3 or weight.dim() != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"expected hidden [B, T, H] and weight [V, H], got {tuple(hidden.shape)}, {tuple(weight.shape)}"
        )
    if targets.shape != hidden.shape[:2] or mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"targets {tuple(targets.shape)} and mask {tuple(mask.shape)} must be [B, T] = {tuple(hidden.shape[:2])}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must be [V] = ({weight.shape[0]},), got {tuple(bias.shape)}")
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets must be token ids (an integer tensor), got {targets.dtype}")
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must be bool or hold only 0 and 1")
        mask = mask.bool()
    trained_targets = targets[mask].long()
    if trained_targets.numel() and (trained_targets.min() < 0 or trained_targets.max() >= weight.shape[0]):
        raise ValueError(f"a masked target is outside 0..{weight.shape[0] - 1}")
    rows = hidden[mask]  # [N, H]: step 1, select before projecting
    total = SelectedRowsCrossEntropy.apply(rows, weight, bias, trained_targets, chunk_rows)
    return total, trained_targets.numel()
