"""The one evaluator: assistant-only loss over every trained token of a set of batches.

Introduced in notebook 07_train_it_yourself; the loop of :func:`sft_utils.train.train` validates with it.
"""

from __future__ import annotations

import torch

from .distributed import is_sharded, reduce_sum
from .step import check_shifted_batch, masked_loss_sum, move_batch


@torch.no_grad()
def evaluate(model, batches, *, accelerator=None, precision: str = "auto", full_logits: bool = False) -> float:
    """Mean cross-entropy over all trained targets of ``batches``, in nats per token.

    Token-weighted (all sums over all counts), not a mean of batch means. ``batches``: a list (or loader) of
    shifted batches (``AssistantOnlyCollator``), each moved to the model's device. The model's train/eval
    mode is restored afterwards. With an ``accelerate.Accelerator`` of several DDP processes each evaluates
    every N-th batch and the sums are added up; under FSDP every process evaluates all batches (each forward
    needs all processes) on the full-logits path. ``precision`` as in :func:`sft_utils.train.precision.autocast`.

    Raises:
        TypeError: one batch (a dict) instead of a list of batches.
        ValueError: no batches, a batch that is not shifted, or no trained token at all (0 would read as a perfect
            score).
    """
    if isinstance(batches, dict):
        raise TypeError("batches must be a list (or loader) of batches, not one batch: wrap it in a list")
    batches = list(batches)
    if not batches:
        raise ValueError("no batches to evaluate")
    rank, processes = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    if is_sharded(accelerator):
        rank, processes, full_logits = 0, 1, True
    elif accelerator is not None:  # DDP: each process holds the whole model and runs its share
        model = accelerator.unwrap_model(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for batch in batches[rank::processes]:
            check_shifted_batch(batch)
            loss_sum, n = masked_loss_sum(
                model, move_batch(batch, device), precision=precision, full_logits=full_logits
            )
            total, count = total + loss_sum.item(), count + n
    finally:
        model.train(was_training)
    if processes > 1:
        total = reduce_sum(torch.tensor(total, dtype=torch.float64), accelerator)
        count = reduce_sum(torch.tensor(count), accelerator)
    if count == 0:
        raise ValueError("no trained token in the evaluation batches: the loss is undefined")
    return float(total) / count
