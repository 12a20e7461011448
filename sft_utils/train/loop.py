"""Fine-tuning Pythia for real: accumulation, mixed precision, length-grouped batches, evaluation, checkpoints.

Introduced in notebook 07_train_it_yourself, which writes this loop out in view and checks it against
:func:`train`; notebook 08_finetune_pythia runs it on Pythia. ``python -m sft_utils.train`` runs the same :func:`train` from
the command line, unchanged under ``accelerate launch`` (DDP or FSDP, several GPUs or CPU processes).

The loss of an optimizer step is the memo's, over the whole step::

    sum over all micro-batches (all processes) of the trained tokens' cross-entropy
    ------------------------------------------------------------------------------
    number of trained tokens in all those micro-batches

not a mean of per-micro-batch means, which would weigh a token of a short reply more than one of a long
reply. The token counts are known before any forward pass (``label_masks``), so each micro-batch's
summed loss (:func:`sft_utils.train.step.masked_loss_sum`) is divided by the step's total before its
backward pass. Library pieces: ``accelerate.Accelerator`` (devices, DDP, fp16 grad scaler),
``torch.optim.AdamW``, ``transformers.get_scheduler``, transformers'
``get_length_grouped_indices`` (the ``LengthGroupedSampler`` order), ``save_pretrained``, tqdm.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict

import torch

from ..chat_format import OPEN_ASSISTANT, ChatFormat
from ..scale.truncation import tokenize_conversations
from ..steps.shift import IGNORE_INDEX, AssistantOnlyCollator, CausalLMCollator
from .checkpoint import save_checkpoint
from .config import LR_SCHEDULES, TrainConfig
from .distributed import reduce_sum
from .evaluate import evaluate
from .precision import resolve_precision
from .step import check_prompt_loss_weight, move_batch, train_step

ACCELERATE_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


def micro_batch_indices(lengths: list[int], batch_size: int, *, seed: int):
    """Endless micro-batches of example indices, grouped by length: each epoch shuffles with
    ``seed + epoch`` and sorts within mega-batches of up to 50 micro-batches (transformers'
    ``get_length_grouped_indices``, the ``LengthGroupedSampler`` order), so that a micro-batch holds
    similar lengths and little padding. Yields lists of ``batch_size`` indices (the last of an epoch
    may be shorter)."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    # transformers sizes mega-batches to make 4 of them, which for a small set (the course's 10 conversations
    # in batches of 4) means one batch each and no grouping; 2 mega-batches at least keeps both effects.
    mega_batch_mult = max(1, min(len(lengths) // (2 * batch_size), 50))
    for epoch in itertools.count():
        generator = torch.Generator().manual_seed(seed + epoch)
        order = get_length_grouped_indices(lengths, batch_size, mega_batch_mult, generator=generator)
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]


def shifted_from_labels(batch: dict) -> dict:
    """A ``labels`` batch (``CausalLMCollator``: ``labels = input_ids``, -100 at padding) in the memo's
    shifted form (``input_ids``, ``attention_mask``, ``targets``, ``label_masks``, ``[B, T-1]``), so that
    plain SFT's loss also goes through :func:`masked_loss_sum`, with every real next token trained."""
    labels = batch["labels"][:, 1:]
    return {
        "input_ids": batch["input_ids"][:, :-1],
        "attention_mask": batch["attention_mask"][:, :-1],
        "targets": labels.clamp(min=0),
        "label_masks": labels != IGNORE_INDEX,
    }


def make_collator(loss: str, tokenizer, *, prompt_loss_weight: float = 0.0):
    """Examples -> shifted batch: assistant-only (``"masked"``) or every token (``"plain"``).

    With ``prompt_loss_weight`` w > 0 (masked only) the batch also holds ``prompt_masks`` (bool ``[B, T]``:
    the real targets that ``label_masks`` leaves out, the prompts' tokens and markers) and
    ``prompt_loss_weight``, which :func:`sft_utils.train.step.masked_loss_sum` weighs by w."""
    prompt_loss_weight = check_prompt_loss_weight(prompt_loss_weight)
    if loss == "plain" and prompt_loss_weight:
        raise ValueError("prompt_loss_weight applies to loss='masked'; plain SFT already trains every token")
    if loss == "masked" and not prompt_loss_weight:
        return AssistantOnlyCollator(tokenizer.pad_token_id)
    plain = CausalLMCollator(tokenizer)
    if loss == "plain":
        return lambda examples: shifted_from_labels(plain(examples))
    if loss != "masked":
        raise ValueError(f"loss must be 'masked' or 'plain', got {loss!r}")
    masked = AssistantOnlyCollator(tokenizer.pad_token_id)

    def weighted(examples):
        batch = masked(examples)
        every = shifted_from_labels(plain(examples))["label_masks"]  # the same right padding, so the same shape
        return batch | {"prompt_masks": every & ~batch["label_masks"], "prompt_loss_weight": prompt_loss_weight}

    return weighted


def train(
    config: TrainConfig,
    model,
    tokenizer,
    train_conversations,
    valid_conversations,
    *,
    progress: bool = True,
    chat_format: ChatFormat = OPEN_ASSISTANT,
    eval_metrics=None,
):
    """Fine-tune ``model`` (a ``GPTNeoXForCausalLM``, e.g. from :func:`sft_utils.load_model`) in place.

    Args:
        config: see :class:`TrainConfig`.
        train_conversations, valid_conversations: lists of ``{"messages": [...]}`` (e.g. from
            :func:`sft_utils.data.oasst.load_oasst1_conversations`).
        progress: show a tqdm bar (main process only).
        chat_format: the conversations' format (:mod:`sft_utils.chat_format`); ``tokenizer`` must hold its tokens.
        eval_metrics: None, or a function of the (unwrapped) model returning ``{name: number}``, called at every
            evaluation; each name becomes a list in ``history`` beside ``valid_loss`` (the toy world's
            ``exact_match`` and ``stop_rate``: :func:`sft_utils.train.generate.reply_metrics`).

    Returns:
        ``history``: dict of lists per optimizer step (``step``, ``trained_tokens`` cumulative over all
        processes, ``train_loss`` nats/token, ``lr``, ``tokens_per_s`` real input tokens, ``step_seconds`` wall
        time of the step alone) and per
        evaluation (``eval_step``, ``eval_trained_tokens``, ``valid_loss`` assistant-only, nats/token;
        ``valid_ppl`` = exp of it; step 0 is before training), plus ``padding_share``, ``precision``,
        ``seconds``, ``processes``, ``config``. The model comes back unwrapped, in eval mode.

    Raises ValueError for a bad config value or data without trained tokens.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    config.check()
    probe = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(config.precision, probe)
    # cpu=True without a GPU: accelerate then runs several launched processes as MULTI_CPU (gloo) DDP.
    accelerator = Accelerator(mixed_precision=ACCELERATE_PRECISION[precision], cpu=probe == "cpu")
    set_seed(config.seed)  # the same order and weights in every process
    collate = make_collator(config.loss, tokenizer, prompt_loss_weight=config.prompt_loss_weight)
    # Conversations that truncation leaves without a trained token teach nothing: dropped, with a warning.
    train_examples, _ = tokenize_conversations(
        train_conversations, tokenizer, max_length=config.max_length, drop_untrained=True, chat_format=chat_format
    )
    valid_examples, _ = tokenize_conversations(
        valid_conversations, tokenizer, max_length=config.max_length, drop_untrained=True, chat_format=chat_format
    )
    if not train_examples or not valid_examples:
        raise ValueError(
            f"after truncation to max_length={config.max_length}, {len(train_examples)} of "
            f"{len(train_conversations)} training and {len(valid_examples)} of {len(valid_conversations)} "
            "validation conversations keep a trained token; both need at least one"
        )
    # Validation is always assistant-only, whatever the training loss: the comparison the memo invites.
    valid_collate = AssistantOnlyCollator(tokenizer.pad_token_id)
    lengths = [len(e["input_ids"]) for e in valid_examples]
    order = sorted(range(len(valid_examples)), key=lengths.__getitem__)  # similar lengths together
    valid_batches = [
        valid_collate([valid_examples[i] for i in order[s : s + config.batch_size]])
        for s in range(0, len(order), config.batch_size)
    ]

    lr = config.lr if config.lr is not None else (2e-5 if getattr(model, "sft_pretrained", True) else 1e-3)
    # fused: one kernel for all parameters, about 4x faster than the default on a CPU (same update).
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay, fused=fused)
    scheduler = get_scheduler(LR_SCHEDULES[config.lr_schedule], optimizer, config.warmup_steps, config.steps)
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler is stepped here, once a step

    processes, rank = accelerator.num_processes, accelerator.process_index
    per_step = config.grad_accum * processes
    stream = micro_batch_indices([len(e["input_ids"]) for e in train_examples], config.batch_size, seed=config.seed)
    history = {k: [] for k in ("step", "trained_tokens", "train_loss", "lr", "tokens_per_s", "step_seconds")}
    history.update({k: [] for k in ("eval_step", "eval_trained_tokens", "valid_loss", "valid_ppl")})
    padded = positions = 0  # this process's micro-batches, for the padding share

    def record_eval(step, tokens):
        loss = evaluate(model, valid_batches, accelerator=accelerator, precision=precision)
        history["eval_step"].append(step)
        history["eval_trained_tokens"].append(tokens)
        history["valid_loss"].append(loss)
        history["valid_ppl"].append(math.exp(min(loss, 50.0)))
        if eval_metrics is not None:
            for name, value in eval_metrics(accelerator.unwrap_model(model)).items():
                history.setdefault(name, []).append(value)

    start, tokens = time.perf_counter(), 0
    record_eval(0, 0)
    bar = tqdm(range(1, config.steps + 1), desc=f"{config.loss} SFT", disable=not (progress and rank == 0))
    for step in bar:
        step_start = time.perf_counter()
        indices = [next(stream) for _ in range(per_step)][rank::processes]  # this process's share
        micro_batches = [move_batch(collate([train_examples[i] for i in ix]), accelerator.device) for ix in indices]
        padded += sum(int((b["attention_mask"] == 0).sum()) for b in micro_batches)
        positions += sum(b["attention_mask"].numel() for b in micro_batches)
        loss = train_step(
            model,
            micro_batches,
            optimizer,
            accelerator=accelerator,
            max_grad_norm=config.max_grad_norm,
            precision=precision,
        )
        count = reduce_sum(torch.tensor(sum(int(b["label_masks"].sum()) for b in micro_batches)), accelerator)
        if count and not accelerator.optimizer_step_was_skipped:  # fp16: the scaler skips inf/NaN steps
            scheduler.step()
        real = reduce_sum(torch.tensor(sum(int(b["attention_mask"].sum()) for b in micro_batches)), accelerator)
        tokens += count
        history["step"].append(step)
        history["trained_tokens"].append(tokens)
        history["train_loss"].append(loss)
        history["lr"].append(scheduler.get_last_lr()[0])
        history["step_seconds"].append(time.perf_counter() - step_start)
        history["tokens_per_s"].append(real / history["step_seconds"][-1])
        if step % config.eval_every == 0 or step == config.steps:
            record_eval(step, tokens)
        tokens_per_s, valid = history["tokens_per_s"][-1], history["valid_loss"][-1]
        bar.set_postfix(loss=f"{loss:.3f}", valid=f"{valid:.3f}", tok_s=f"{tokens_per_s:.0f}", refresh=False)
    history.update(
        padding_share=reduce_sum(torch.tensor(padded), accelerator) / reduce_sum(torch.tensor(positions), accelerator),
        precision=precision,
        seconds=time.perf_counter() - start,
        processes=processes,
        config=asdict(config) | {"lr": lr, "chat_format": chat_format.name},
    )
    if config.output_dir:
        save_checkpoint(model, tokenizer, config.output_dir, accelerator, chat_format=chat_format)
    # keep_fp32_wrapper=False: drop the autocast accelerate wrapped around forward; the caller chooses again.
    return accelerator.unwrap_model(model, keep_fp32_wrapper=False).eval(), history
