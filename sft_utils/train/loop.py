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
import os
import re
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from ..chat_format import OPEN_ASSISTANT, ChatFormat
from ..scale.truncation import tokenize_conversations
from ..steps.shift import IGNORE_INDEX, AssistantOnlyCollator, CausalLMCollator
from .checkpoint import save_checkpoint
from .config import LORA_TARGET_MODULES as LORA_TARGETS
from .config import LR_SCHEDULES, TrainConfig
from .distributed import is_sharded, reduce_sum
from .evaluate import evaluate
from .precision import resolve_precision
from .resume import check_output_dir, data_fingerprint, find_checkpoint, read_training_state, save_training_state
from .step import check_prompt_loss_weight, move_batch, train_step

ACCELERATE_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}
# fp16 updates the gradient scaler may skip in a row (each halves its scale) before the run stops: 20 halvings take
# the usual starting scale 2**16 below 1, where gradients that still overflow are not finite at all.
MAX_SKIPS_IN_A_ROW = 20


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


def decay_parameter_names(model) -> set[str]:
    """Names of the trainable parameters that weight decay applies to: every weight but biases and LayerNorm
    weights (transformers' ``Trainer`` rule, through its ``get_parameter_names``): decaying a LayerNorm's gain
    towards 0 or a bias towards 0 is not the regularisation weight decay means."""
    from transformers.trainer_pt_utils import get_parameter_names

    names = get_parameter_names(model, [torch.nn.LayerNorm])  # parameters outside any LayerNorm
    return {n for n in names if "bias" not in n}


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, in two groups: with ``weight_decay`` (weight matrices) and
    without (biases, LayerNorm weights; :func:`decay_parameter_names`). Fused (one kernel for all
    parameters, about 4x faster than the default on a CPU, same update) when they are all float32 on a CPU
    or a GPU."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = decay_parameter_names(model)
    groups = [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for _, p in trainable)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, fused=fused)


def make_scheduler(optimizer, config: TrainConfig):
    """transformers' ``get_scheduler`` for ``config.lr_schedule``, already stepped once: its step 0 is a
    learning rate of 0 under warm-up, so step k of the run trains at the schedule's value at k (the first at
    ``lr / warmup``) and the decay reaches 0 one step after the last."""
    from transformers import get_scheduler

    scheduler = get_scheduler(LR_SCHEDULES[config.lr_schedule], optimizer, config.warmup, config.steps + 1)
    with warnings.catch_warnings():  # PyTorch warns of a scheduler stepped before its optimizer: here on purpose
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        scheduler.step()
    return scheduler


def apply_lora(model, config: TrainConfig):
    """``model`` wrapped by peft's LoRA (``LoraConfig(r=lora_r, lora_alpha, target_modules)``, no dropout,
    no bias): rank-``r`` adapters beside each target linear layer, every other weight frozen. Introduced in
    notebook 08_finetune_pythia.

    Raises ValueError, before the model is changed, for a target that is not a module of the model, not a
    linear layer, or the output head (the chunked loss reads the head's weight directly, so an adapter there
    would never train), and for a rank larger than a target layer's smaller side (a "low-rank" update that is
    not low-rank costs more than the layer it adapts)."""
    from peft import LoraConfig, get_peft_model

    head = model.get_output_embeddings()
    for target in config.lora_target_modules:
        found = [m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] == target]
        if not found:
            raise ValueError(
                f"lora_target_modules: {target!r} is not a module of this model (GPT-NeoX has {LORA_TARGETS})"
            )
        if any(m is head for m in found):
            raise ValueError(
                f"lora_target_modules: {target!r} is the output head, which the loss reads directly: an adapter "
                f"there would never train; LoRA adapts the linear layers inside the blocks ({LORA_TARGETS})"
            )
        if not all(isinstance(m, torch.nn.Linear) for m in found):
            kind = next(type(m).__name__ for m in found if not isinstance(m, torch.nn.Linear))
            raise ValueError(f"lora_target_modules: {target!r} is a {kind}, not a linear layer ({LORA_TARGETS})")
        side = min(min(m.in_features, m.out_features) for m in found)
        if config.lora_r > side:
            raise ValueError(
                f"lora_r={config.lora_r} is larger than the smaller side of {target!r} ({side}): not low-rank"
            )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        target_modules=list(config.lora_target_modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft asks transformers 5 for a renamed attribute: its warning, not ours
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora)


def make_accelerator(precision: str, cpu: bool, config: TrainConfig):
    """An ``accelerate.Accelerator`` for this run. accelerate keeps one process-wide state and refuses a second
    Accelerator with another precision ("AcceleratorState has already been initialized"); a kernel that trains
    twice, say fp32 then bf16, gets a fresh one (the process group of a launched run is kept)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    tracking = {}
    if config.report_to:
        tracking = {"log_with": config.report_to, "project_dir": str(Path(config.output_dir) / "runs")}
    # cpu=True without a GPU: accelerate then runs several launched processes as MULTI_CPU (gloo) DDP.
    accelerator = Accelerator(mixed_precision=ACCELERATE_PRECISION[precision], cpu=cpu, **tracking)
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not is_sharded(accelerator):
        # accelerate enters FSDP for GPU processes only: launched with configs/fsdp.yaml on CPU processes it runs
        # plain DDP (every process holds every weight), and says nothing.
        warnings.warn(
            "accelerate launch asked for FSDP, but accelerate shards only across GPUs: these "
            f"{accelerator.device.type} processes run as {accelerator.distributed_type.name}, "
            "every one holding the whole model",
            stacklevel=3,
        )
    if precision == "fp16" and accelerator.scaler is None:
        # accelerate scales fp16 gradients on GPUs only. torch's CPU GradScaler runs the same path on a CPU (slowly:
        # to rehearse a T4's run): autocast around the forward, the loss scaled, gradients unscaled before clipping.
        handler = accelerator.scaler_handler
        accelerator.scaler = torch.amp.GradScaler(accelerator.device.type, **(handler.to_kwargs() if handler else {}))
        accelerator.native_amp = True
    return accelerator


def loss_scale(accelerator) -> float | None:
    """The fp16 gradient scaler's current scale, or None without one (bf16, fp32)."""
    scaler = getattr(accelerator, "scaler", None)
    return scaler.get_scale() if scaler is not None and scaler.is_enabled() else None


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
    resume_from=None,
    stop_when=None,
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
        resume_from: None, ``"latest"`` (the last checkpoint under ``config.output_dir``) or a
            ``checkpoint-<step>`` folder written by an earlier run with ``save_every``: weights, optimizer,
            scheduler, random states, data position and history are restored and the run continues at the
            next step, as if it had never stopped. ``model`` must be built as for the first run (same name
            and seed); the checkpoint's weights replace its own.
        stop_when: None, or a function of ``history`` called after each evaluation: when it returns True the run
            ends at that step, before ``config.steps`` (notebook 07's steps to 90% held-out exact match).

    Returns:
        ``(model, history)``. ``history``: dict of lists per optimizer step (``step``, ``trained_tokens``
        cumulative over all processes, ``train_loss`` nats/token, ``lr`` the step's learning rate,
        ``tokens_per_s`` real input tokens, ``step_seconds`` wall time of the step alone) and per evaluation
        (``eval_step``, ``eval_trained_tokens``, ``valid_loss`` assistant-only, nats/token; ``valid_ppl`` = exp
        of it; step 0 is before training), ``skipped_steps`` (fp16: the step each update the gradient scaler
        skipped was retried for; ``step_seconds`` includes those attempts), plus ``padding_share``,
        ``precision``, ``seconds``, ``processes``, ``trainable_parameters``, ``resumed_at`` (the step a resumed
        run started after, else None), ``config``; a resumed run's history holds the whole run's records. The
        model comes back unwrapped, in eval mode; with LoRA, the adapters merged into its weights (a plain
        ``GPTNeoXForCausalLM`` again, its parameters' ``requires_grad`` as they were and no hook left from peft:
        another ``train()`` on it works).

    Raises ValueError for a bad config value, data without trained tokens, or a checkpoint whose run had other
    settings; FileNotFoundError when ``resume_from`` finds no checkpoint; FloatingPointError when fp16's gradient
    scaler skips :data:`MAX_SKIPS_IN_A_ROW` updates in a row (:func:`update`).
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    config.check()
    check_output_dir(config.output_dir, resuming=resume_from is not None)  # before any work, not after the run
    probe = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(config.precision, probe)
    accelerator = make_accelerator(precision, probe == "cpu", config)
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
    processes, rank = accelerator.num_processes, accelerator.process_index
    per_step = config.grad_accum * processes
    output_dir = os.fspath(config.output_dir) if config.output_dir is not None else None  # a Path: a str in JSON
    settings = asdict(config) | {"lr": lr, "warmup_steps": config.warmup, "chat_format": chat_format.name}
    settings |= {"output_dir": output_dir, "lora_target_modules": list(config.lora_target_modules)}
    settings |= {"processes": processes, "data": data_fingerprint(train_examples, valid_examples)}
    if resume_from is not None:  # checked before the model is touched: a refused resume leaves it as it was
        checkpoint = find_checkpoint(resume_from, config.output_dir)
        saved = read_training_state(checkpoint, settings)
    # What the run changes on the model and gives back at the end: LoRA freezes weights; gradient checkpointing
    # (transformers) and LoRA (peft) each hook the input embeddings.
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    embedding_hooks = set(model.get_input_embeddings()._forward_hooks)
    if config.gradient_checkpointing:
        set_gradient_checkpointing(model, True)
    if config.lora_r is not None:
        model = apply_lora(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = make_optimizer(model, lr, config.weight_decay)
    scheduler = make_scheduler(optimizer, config)
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler is stepped here, once a step
    accelerator.register_for_checkpointing(scheduler)

    history = {k: [] for k in ("step", "trained_tokens", "train_loss", "lr", "tokens_per_s", "step_seconds")}
    history.update({k: [] for k in ("eval_step", "eval_trained_tokens", "valid_loss", "valid_ppl")})
    history["skipped_steps"] = []  # fp16: the step each update the gradient scaler skipped was retried for
    run = {"step": 0, "trained_tokens": 0, "padded": 0, "positions": 0, "seconds": 0.0}  # padding: this process's
    if resume_from is not None:
        accelerator.load_state(str(checkpoint))  # weights, optimizer, scheduler, scaler, random states
        history, run = saved["history"], saved["run"]
        history.setdefault("skipped_steps", [])  # a checkpoint written before skips were recorded
    resumed_at = run["step"] if resume_from is not None else None
    stream = micro_batch_indices([len(e["input_ids"]) for e in train_examples], config.batch_size, seed=config.seed)
    for _ in range(run["step"] * per_step):  # the data position: the micro-batches the steps so far consumed
        next(stream)
    if config.report_to:
        accelerator.init_trackers("sft", config={k: v for k, v in settings.items() if isinstance(v, (int, float, str))})

    def record_eval(step):
        loss = evaluate(model, valid_batches, accelerator=accelerator, precision=precision)
        history["eval_step"].append(step)
        history["eval_trained_tokens"].append(run["trained_tokens"])
        history["valid_loss"].append(loss)
        history["valid_ppl"].append(math.exp(min(loss, 50.0)))
        metrics = eval_metrics(accelerator.unwrap_model(model)) if eval_metrics is not None else {}
        for name, value in metrics.items():
            history.setdefault(name, []).append(value)
        if config.report_to:
            accelerator.log({"valid_loss": loss, "valid_ppl": history["valid_ppl"][-1], **metrics}, step=step)

    start = time.perf_counter() - run["seconds"]
    if resumed_at is None:
        record_eval(0)
    steps = range(run["step"] + 1, config.steps + 1)
    bar = tqdm(
        steps, desc=f"{config.loss} SFT", disable=not (progress and rank == 0), initial=run["step"], total=config.steps
    )
    for step in bar:
        step_start = time.perf_counter()
        indices = [next(stream) for _ in range(per_step)][rank::processes]  # this process's share
        micro_batches = [move_batch(collate([train_examples[i] for i in ix]), accelerator.device) for ix in indices]
        step_lr = scheduler.get_last_lr()[0]  # the rate this step trains at (read before the scheduler moves on)
        loss = update(model, micro_batches, optimizer, accelerator, config, precision, step, history)
        count = reduce_sum(torch.tensor(sum(int(b["label_masks"].sum()) for b in micro_batches)), accelerator)
        if count:  # a step without trained tokens changed nothing: the schedule waits too
            scheduler.step()
        run["padded"] += sum(int((b["attention_mask"] == 0).sum()) for b in micro_batches)
        run["positions"] += sum(b["attention_mask"].numel() for b in micro_batches)
        real = reduce_sum(torch.tensor(sum(int(b["attention_mask"].sum()) for b in micro_batches)), accelerator)
        run["trained_tokens"] += count
        run["step"] = step
        history["step"].append(step)
        history["trained_tokens"].append(run["trained_tokens"])
        history["train_loss"].append(loss)
        history["lr"].append(step_lr)
        history["step_seconds"].append(time.perf_counter() - step_start)
        history["tokens_per_s"].append(real / history["step_seconds"][-1])
        if config.report_to:
            accelerator.log(
                {k: history[k][-1] for k in ("train_loss", "lr", "tokens_per_s", "trained_tokens")}, step=step
            )
        if step % config.eval_every == 0 or step == config.steps:
            record_eval(step)
        if config.save_every and (step % config.save_every == 0 or step == config.steps):  # the end too
            run["seconds"] = time.perf_counter() - start
            state = {"run": run, "history": history, "settings": settings}
            save_training_state(accelerator, output_dir, step, state, keep=config.save_total_limit)
        tokens_per_s, valid = history["tokens_per_s"][-1], history["valid_loss"][-1]
        bar.set_postfix(loss=f"{loss:.3f}", valid=f"{valid:.3f}", tok_s=f"{tokens_per_s:.0f}", refresh=False)
        if stop_when is not None and history["eval_step"][-1] == step and stop_when(history):
            break
    bar.close()
    positions = reduce_sum(torch.tensor(run["positions"]), accelerator)
    history.update(
        padding_share=reduce_sum(torch.tensor(run["padded"]), accelerator) / max(positions, 1),
        precision=precision,
        seconds=time.perf_counter() - start,
        processes=processes,
        trainable_parameters=trainable,
        resumed_at=resumed_at,
        config=settings,
    )
    if config.report_to:
        accelerator.end_training()
    return finish(model, tokenizer, config, accelerator, chat_format, (requires_grad, embedding_hooks)), history


def update(model, micro_batches, optimizer, accelerator, config: TrainConfig, precision, step, history) -> float:
    """One optimizer update on ``micro_batches`` (:func:`train_step`); returns its loss in nats per trained token.

    Under fp16 the gradient scaler skips an update whose gradients overflowed (inf or NaN) and halves its scale.
    The fused AdamW applies that skip inside its own kernel, so accelerate's ``optimizer_step_was_skipped`` never
    sees it: a skip is read from the scale instead (it falls only on a skip). A skipped update changed no weight
    and no optimizer state; it is recorded in ``history["skipped_steps"]`` and retried on the same micro-batches
    at the same learning rate, so that ``steps`` counts real updates. After :data:`MAX_SKIPS_IN_A_ROW` skips in a
    row (the scale then divided by about a million) the gradients are not finite at any scale: FloatingPointError.
    """
    for _ in range(MAX_SKIPS_IN_A_ROW):
        scale = loss_scale(accelerator)
        loss = train_step(
            model,
            micro_batches,
            optimizer,
            accelerator=accelerator,
            max_grad_norm=config.max_grad_norm,
            precision=precision,
        )
        if not (scale is not None and loss_scale(accelerator) < scale) and not accelerator.optimizer_step_was_skipped:
            return loss
        history["skipped_steps"].append(step)
    raise FloatingPointError(
        f"step {step}: the fp16 gradient scaler skipped {MAX_SKIPS_IN_A_ROW} updates in a row (gradients inf or "
        f"NaN even at a loss scale of {loss_scale(accelerator):g}); the loss or the weights are not finite: try a "
        "lower lr, precision='bf16' on a GPU that has it, or 'fp32'"
    )


def finish(model, tokenizer, config: TrainConfig, accelerator, chat_format: ChatFormat, before: tuple):
    """The trained model unwrapped, LoRA adapters merged, recomputation off, in eval mode; saved to
    ``config.output_dir`` (``save_pretrained``) when there is one. ``before``: (parameter name -> requires_grad,
    the input embeddings' forward-hook ids) as they were before the run, given back: the model is then a plain
    one, ready for another run or for inference."""
    # keep_fp32_wrapper=False: drop the autocast accelerate wrapped around forward; the caller chooses again.
    unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    if config.lora_r is not None:  # the merged weights: from_pretrained reloads them without peft
        model = unwrapped = unwrapped.merge_and_unload()
    requires_grad, embedding_hooks = before
    for name, parameter in unwrapped.named_parameters():  # peft froze every weight but its adapters
        parameter.requires_grad_(requires_grad.get(name, True))
    if not embedding_hooks and (
        getattr(unwrapped, "_require_grads_hooks", None) or hasattr(unwrapped, "_require_grads_hook")
    ):
        unwrapped.disable_input_require_grads()  # its record of the hooks: a list in transformers 5, one in 4.x
    remove_hooks_since(unwrapped.get_input_embeddings(), embedding_hooks)
    if config.gradient_checkpointing:  # before saving, so that the saved config has its cache back
        set_gradient_checkpointing(unwrapped, False)
    if config.output_dir:  # the prepared model itself without LoRA: under FSDP its weights are gathered
        save_checkpoint(model, tokenizer, os.fspath(config.output_dir), accelerator, chat_format=chat_format)
    return unwrapped.eval()


def remove_hooks_since(module, before: set) -> None:
    """Remove the forward hooks registered on ``module`` since its hook ids were ``before``. Gradient checkpointing
    (transformers 5) and peft (with it) each hook the input embeddings so that their output requires grad; the
    second replaces the first's handle in the model, so ``disable_input_require_grads()`` alone leaves one, and a
    model left with it builds a graph in every forward outside ``no_grad``, frozen or not."""
    for key in set(module._forward_hooks) - before:
        for hooks in (module._forward_hooks, module._forward_hooks_with_kwargs, module._forward_hooks_always_called):
            hooks.pop(key, None)


def set_gradient_checkpointing(model, on: bool) -> None:
    """Recompute each layer's activations in the backward pass instead of keeping them (transformers 5 calls
    it activation checkpointing, 4.x gradient checkpointing), non-reentrant so that it works when the inputs
    need no gradient (frozen embeddings under LoRA). The key/value cache is off while it is on: useless in
    training and incompatible with recomputation; generation gets it back."""
    if on:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        disable()
    model.config.use_cache = not on
