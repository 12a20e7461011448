"""A first fine-tuning loop with the masked loss (memo steps 4-6 put to work).

Introduced in notebook 07_finetune_pythia, which builds the step in view and checks it against
:func:`train_step`. Deliberately small: one optimizer step per batch, fp32 on the CPU or bf16 autocast
on a GPU that supports it. ``sft_utils.trainer`` builds the full loop (accumulation, precision, evaluation,
checkpoints) on :func:`masked_loss_sum`, the one place where the masked loss of a batch is computed.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch

from .chunked_loss import DEFAULT_CHUNK_ROWS, chunked_masked_cross_entropy
from .loss import MaskedCrossEntropyLoss
from .modeling import output_head

_sum_loss = MaskedCrossEntropyLoss(reduction="sum")


def move_batch(batch: dict, device) -> dict:
    """Every tensor of a collated batch on ``device``."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
_precision: contextvars.ContextVar[str | None] = contextvars.ContextVar("sft_precision", default=None)


@contextlib.contextmanager
def use_precision(precision: str):
    """Within this block, :func:`autocast_for` (and so every forward of :func:`masked_loss_sum`) uses
    ``precision``: ``"bf16"`` or ``"fp16"`` autocast, or ``"fp32"`` (autocast off). Set by
    ``sft_utils.trainer`` from its ``--precision``. Raises ValueError for another name."""
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST_DTYPES)}, got {precision!r}")
    token = _precision.set(precision)
    try:
        yield
    finally:
        _precision.reset(token)


def autocast_for(device) -> torch.autocast:
    """The autocast of :func:`use_precision` when inside one; otherwise bf16 autocast on a GPU that
    supports it, disabled (fp32) elsewhere."""
    device = torch.device(device)
    precision = _precision.get()
    if precision is not None:
        dtype = AUTOCAST_DTYPES[precision]
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    enabled = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


SHIFTED_KEYS = ("input_ids", "attention_mask", "targets", "label_masks")


def _check_shifted_batch(batch) -> None:
    if not isinstance(batch, dict) or any(k not in batch for k in SHIFTED_KEYS):
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"expected a batch from AssistantOnlyCollator(convention='shifted') with keys "
            f"{', '.join(SHIFTED_KEYS)}; got {got}"
        )


def forward_logits(model, batch: dict) -> torch.Tensor:
    """Logits ``[B, T, vocab_size]`` of a ``"shifted"`` batch (see ``AssistantOnlyCollator``), under
    :func:`autocast_for` its device. Keys used: ``input_ids``, ``attention_mask`` int64 ``[B, T]``, and
    ``position_ids`` when present (a packed batch from :class:`sft_utils.packing.PackedCollator`, whose
    ``attention_mask`` is an additive float ``[B, 1, T, T]``). Raises ValueError for anything but a shifted batch."""
    _check_shifted_batch(batch)
    with autocast_for(batch["input_ids"].device):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **_positions(batch)).logits


def _positions(batch: dict) -> dict:
    # A packed batch restarts positions in each conversation; a plain one lets the model count from 0.
    return {"position_ids": batch["position_ids"]} if "position_ids" in batch else {}


#: The loss path of :func:`masked_loss_sum` when not given: False = chunked (never builds full logits).
FULL_LOGITS = False


def masked_loss_sum(
    model, batch: dict, *, full_logits: bool | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[torch.Tensor, int]:
    """(sum of the trained targets' cross-entropy in nats, their count) for a ``"shifted"`` batch:
    ``input_ids``, ``attention_mask``, ``targets`` int64 ``[B, T]``, ``label_masks`` bool ``[B, T]``.

    By default the loss is computed without the ``[B, T, vocab]`` logits: the base model gives the
    hidden states, and :func:`sft_utils.chunked_loss.chunked_masked_cross_entropy` projects only the
    trained rows, ``chunk_rows`` at a time (notebook 05). ``full_logits=True`` (or the module switch
    ``FULL_LOGITS = True``) takes the reference path: ``model(…).logits`` then
    :class:`sft_utils.MaskedCrossEntropyLoss`. Both give the same sum and gradients (tests, 1e-6 in
    float32), under the same :func:`autocast_for`. The chunked path reads the head's weight outside the
    forward, which FSDP's sharded weights do not allow: ``sft_utils.trainer`` takes the full-logits path under
    FSDP. Raises ValueError for anything but a shifted batch.
    """
    _check_shifted_batch(batch)
    targets, mask = batch["targets"], batch["label_masks"]
    if FULL_LOGITS if full_logits is None else full_logits:
        return _sum_loss(forward_logits(model, batch), targets, mask), int(mask.sum())
    with autocast_for(batch["input_ids"].device):
        # Through the model's own forward, so that a DDP wrapper sees it, asking for the hidden states and for
        # the logits of one position only (logits_to_keep=1): the [B, T, vocab] logits are never built. The
        # last hidden state is the final layer norm's output, the head's input (transformers 4.57 and 5.x).
        hidden = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
            logits_to_keep=1,
            use_cache=False,
            **_positions(batch),
        ).hidden_states[-1]
        head = output_head(getattr(model, "module", model))  # DDP keeps the model in .module
        return chunked_masked_cross_entropy(hidden, head.weight, targets, mask, bias=head.bias, chunk_rows=chunk_rows)


def train_step(model, batch: dict, optimizer, *, max_grad_norm: float = 1.0, full_logits: bool | None = None) -> float:
    """One optimizer step on the batch's mean trained-token loss (memo step 6); returns that loss in nats
    per trained token. Gradients are clipped to a global norm of ``max_grad_norm``. The loss comes from
    :func:`masked_loss_sum` (chunked by default; ``full_logits=True`` is the memo's path, the one notebook
    07 builds in view: the two agree to float32 rounding, which AdamW's first step can magnify on
    near-zero gradients).

    A batch without trained targets returns 0.0 and changes nothing (AdamW would still move the weights
    through its momentum and weight decay). Raises ValueError for anything but a shifted batch.
    """
    _check_shifted_batch(batch)
    if not batch["label_masks"].any():
        return 0.0
    model.train()
    loss_sum, count = masked_loss_sum(model, batch, full_logits=full_logits)
    loss = loss_sum / count
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def loss_totals(model, batches, *, full_logits: bool | None = None) -> tuple[float, int]:
    """(summed cross-entropy of the trained targets in nats, their count) over ``batches`` of shifted
    batches, each moved to the model's device; the model's train/eval mode is left as it is. The one loop
    behind :func:`evaluate` and ``sft_utils.trainer.evaluate_assistant_loss``. Raises ValueError for a batch
    that is not shifted."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches:
        _check_shifted_batch(batch)
        batch_total, batch_count = masked_loss_sum(model, move_batch(batch, device), full_logits=full_logits)
        total, count = total + batch_total.item(), count + batch_count
    return total, count


def evaluate(model, batches) -> float:
    """Mean CE over all trained tokens of ``batches`` (token-weighted, not a mean of batch means), nats.

    ``batches``: a list (or loader) of shifted batches. Raises ValueError when they hold no trained
    token (0 would read as a perfect score) or are not shifted batches; TypeError for a single dict.
    """
    if isinstance(batches, dict):
        raise TypeError("batches must be a list (or loader) of batches, not one batch: wrap it in a list")
    model.eval()
    total, count = loss_totals(model, batches)
    if count == 0:
        raise ValueError("no trained token in the evaluation batches: the loss is undefined")
    return total / count
