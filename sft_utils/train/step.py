"""One optimizer step with the masked loss (memo steps 4-6 put to work), and the loss of one batch.

Introduced in notebook 08_finetune_pythia, which builds the step in view and checks it against
:func:`train_step`. :func:`masked_loss_sum` is the one place where the masked loss of a batch is computed: the
step, the loop (:mod:`sft_utils.train.loop`) and evaluation (:mod:`sft_utils.train.evaluate`) all call it.
"""

from __future__ import annotations

import contextlib

import torch

from ..scale.chunked_loss import DEFAULT_CHUNK_ROWS, chunked_masked_cross_entropy
from ..steps.loss import MaskedCrossEntropyLoss
from ..steps.project import output_head
from .distributed import is_sharded, reduce_sum
from .precision import autocast, resolve_precision

_sum_loss = MaskedCrossEntropyLoss(reduction="sum")
SHIFTED_KEYS = ("input_ids", "attention_mask", "targets", "label_masks")


def move_batch(batch: dict, device) -> dict:
    """Every tensor of a collated batch on ``device``."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def check_shifted_batch(batch) -> None:
    """Raise ValueError unless ``batch`` is a dict of tensors with the keys of
    ``AssistantOnlyCollator(convention='shifted')``."""
    if not isinstance(batch, dict) or any(k not in batch for k in SHIFTED_KEYS):
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"expected a batch from AssistantOnlyCollator(convention='shifted') with keys "
            f"{', '.join(SHIFTED_KEYS)}; got {got}"
        )
    lists = [k for k in SHIFTED_KEYS if not torch.is_tensor(batch[k])]
    if lists:
        raise ValueError(
            f"{', '.join(lists)} are not tensors: collate examples into a batch first (AssistantOnlyCollator)"
        )


def _inputs(batch: dict) -> dict:
    # A packed batch (PackedCollator) restarts positions in each conversation; a plain one counts from 0.
    keys = ("input_ids", "attention_mask", "position_ids")
    return {k: batch[k] for k in keys if k in batch}


def forward_logits(model, batch: dict, *, precision: str = "auto") -> torch.Tensor:
    """Logits ``[B, T, vocab_size]`` of a shifted batch under :func:`sft_utils.train.precision.autocast`.

    Keys used: ``input_ids``, ``attention_mask`` int64 ``[B, T]``, and ``position_ids`` when present (a packed
    batch, whose ``attention_mask`` is an additive float ``[B, 1, T, T]``). Raises ValueError for anything but
    a shifted batch, or a bad ``precision``.
    """
    check_shifted_batch(batch)
    with autocast(precision, batch["input_ids"].device):
        return model(**_inputs(batch)).logits


def masked_loss_sum(
    model, batch: dict, *, precision: str = "auto", full_logits: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[torch.Tensor, int]:
    """(sum of the trained targets' cross-entropy in nats, float32 scalar tensor; their count) for a shifted
    batch: ``input_ids``, ``attention_mask``, ``targets`` int64 ``[B, T]``, ``label_masks`` bool ``[B, T]``.

    ``full_logits=False`` (default) never builds the ``[B, T, vocab]`` logits: the model returns its last
    hidden states and :func:`sft_utils.scale.chunked_loss.chunked_masked_cross_entropy` projects only the
    trained rows, ``chunk_rows`` at a time (notebook 05). ``full_logits=True`` is the memo's path:
    ``model(…).logits`` then :class:`sft_utils.MaskedCrossEntropyLoss`. Both give the same sum and gradients
    (1e-6 in float32). The chunked path reads the head's weight outside the forward, which FSDP's sharded
    weights do not allow: the loop takes the full-logits path under FSDP.

    A prompt-weighted batch (:func:`sft_utils.train.loop.make_collator` with ``prompt_loss_weight`` w) also holds
    ``prompt_masks``: their targets' cross-entropy is added with weight w, and the count is then
    :func:`loss_count`'s weighted float.

    Raises ValueError for anything but a shifted batch, or a bad ``precision``.
    """
    check_shifted_batch(batch)
    targets = batch["targets"]
    masks = _loss_masks(batch)  # [(label_masks, 1)], plus (prompt_masks, w) for a prompt-weighted batch
    if full_logits:
        logits = forward_logits(model, batch, precision=precision)
        return sum(w * _sum_loss(logits, targets, m) for m, w in masks), _count(masks)
    with autocast(precision, batch["input_ids"].device):
        # Through the model's own forward, so that a DDP wrapper sees it, asking for the hidden states and for
        # the logits of one position only (logits_to_keep=1): the [B, T, vocab] logits are never built. The
        # last hidden state is the final layer norm's output, the head's input (transformers 4.57 and 5.x).
        hidden = model(**_inputs(batch), output_hidden_states=True, logits_to_keep=1, use_cache=False).hidden_states[-1]
        head = output_head(getattr(model, "module", model))  # DDP keeps the model in .module
        sums = [
            w * chunked_masked_cross_entropy(hidden, head.weight, targets, m, bias=head.bias, chunk_rows=chunk_rows)[0]
            for m, w in masks
        ]
        return sum(sums), _count(masks)


def check_prompt_loss_weight(weight) -> float:
    """``weight`` as a float; ValueError unless it is a number from 0 to 1 (NaN and bools refused)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ValueError(f"prompt_loss_weight must be a number from 0 to 1, got {weight!r}")
    return float(weight)


def _loss_masks(batch: dict) -> list[tuple[torch.Tensor, float]]:
    """(mask, weight) pairs of a shifted batch: the trained targets at weight 1, and for a prompt-weighted batch
    (``make_collator(prompt_loss_weight=w)``) the other real targets at weight w. Raises ValueError for a weight
    outside 0..1, a weight without ``prompt_masks``, or prompt masks that overlap the label masks."""
    weight, prompt = check_prompt_loss_weight(batch.get("prompt_loss_weight", 0.0)), batch.get("prompt_masks")
    if weight and prompt is None:
        raise ValueError("a batch with prompt_loss_weight needs prompt_masks (make_collator(prompt_loss_weight=w))")
    if prompt is not None and bool((prompt.bool() & batch["label_masks"].bool()).any()):
        raise ValueError("prompt_masks overlap label_masks: a target would be counted twice")
    return [(batch["label_masks"], 1.0)] + ([(prompt, weight)] if weight else [])


def loss_count(batch: dict) -> int | float:
    """The masked loss's denominator for one batch: its trained targets (an int), plus w times its prompt
    targets for a prompt-weighted batch (a float)."""
    return _count(_loss_masks(batch))


def _count(masks) -> int | float:
    return int(masks[0][0].sum()) if len(masks) == 1 else sum(w * int(m.sum()) for m, w in masks)


def accumulate_gradients(
    model, micro_batches: list[dict], accelerator=None, *, precision: str = "auto", full_logits: bool = False
) -> tuple[float, int]:
    """Backward of one optimizer step's loss: the trained tokens' summed cross-entropy over all
    ``micro_batches`` of all processes, divided by their total count. Returns (that loss in nats per
    trained token, the count); (0.0, 0) and no backward when no process has a trained token.

    The count is summed over processes first (``accelerator.reduce``). DDP *averages* gradients over
    its N processes, so each process's part is multiplied by N: the gradient then equals a single
    process's on the same global batch. Gradients are synchronised on the last micro-batch only. The forward
    runs in ``precision`` (a resolved name from :func:`sft_utils.resolve_precision`, or ``"auto"``).
    """
    processes = accelerator.num_processes if accelerator is not None else 1
    local = sum(loss_count(b) for b in micro_batches)
    count = reduce_sum(
        torch.tensor(local, dtype=torch.float64 if isinstance(local, float) else torch.long), accelerator
    )
    if count == 0:
        return 0.0, 0
    total = torch.zeros((), dtype=torch.float32)
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or accelerator is None else accelerator.no_sync(model)
        with sync:
            loss_sum, _ = masked_loss_sum(
                model, batch, precision=precision, full_logits=full_logits or is_sharded(accelerator)
            )
            scaled = loss_sum * (processes / count)
            accelerator.backward(scaled) if accelerator is not None else scaled.backward()
        total += loss_sum.detach().float().cpu()
    return reduce_sum(total, accelerator) / count, count


def train_step(
    model,
    batch,
    optimizer,
    *,
    accelerator=None,
    max_grad_norm: float | None = 1.0,
    precision: str = "auto",
    full_logits: bool = False,
) -> float:
    """One optimizer step on the mean trained-token loss (memo step 6); returns that loss in nats per trained
    token. The step of notebook 07's loop built in view, and of :func:`sft_utils.train.train`.

    Args:
        batch: one shifted batch (``AssistantOnlyCollator``), or a list of them: the micro-batches of one step
            (gradient accumulation, weighted by trained tokens: :func:`accumulate_gradients`).
        accelerator: an ``accelerate.Accelerator`` that prepared ``model`` and ``optimizer`` (DDP, FSDP, the
            fp16 gradient scaler), or None for plain PyTorch.
        max_grad_norm: gradients are clipped to this global norm; None: not clipped.
        precision: through :func:`sft_utils.resolve_precision`; without an accelerator there is no gradient
            scaler, so "auto" is bf16 on a GPU with native bf16, else fp32.
        full_logits: the memo's path (``model(…).logits``); the default, chunked path agrees with it to float32
            rounding (which AdamW's first step can magnify on near-zero gradients).

    A step without trained targets returns 0.0 and changes no weight (AdamW would still move them through its
    momentum and weight decay). Raises ValueError for anything but shifted batches, a ``max_grad_norm`` that is
    not positive, or ``precision="fp16"`` without an accelerator.
    """
    if max_grad_norm is not None and not (  # 0 never learns, < 0 climbs the loss
        isinstance(max_grad_norm, (int, float)) and not isinstance(max_grad_norm, bool) and max_grad_norm > 0
    ):
        raise ValueError(f"max_grad_norm must be a positive number or None, got {max_grad_norm!r}")
    micro_batches = [batch] if isinstance(batch, dict) else list(batch)
    if not micro_batches:
        raise ValueError("train_step needs a batch (or a non-empty list of micro-batches)")
    for micro_batch in micro_batches:
        check_shifted_batch(micro_batch)
    precision = resolve_precision(precision, micro_batches[0]["input_ids"].device, scaler=accelerator is not None)
    optimizer.zero_grad(set_to_none=True)
    model.train()
    loss, count = accumulate_gradients(model, micro_batches, accelerator, precision=precision, full_logits=full_logits)
    if count:
        if max_grad_norm is not None:
            clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
            clip(model.parameters(), max_grad_norm)
        optimizer.step()
    return loss
