"""Fine-tuning Pythia for real: accumulation, mixed precision, length-grouped batches, evaluation, checkpoints.

Introduced in notebook 07_finetune_pythia; ``python -m sft_utils.train`` runs the same :func:`train` from
the command line, unchanged under ``accelerate launch`` (DDP or FSDP, several GPUs or CPU processes).

The loss of an optimizer step is the memo's, over the whole step::

    sum over all micro-batches (all processes) of the trained tokens' cross-entropy
    ------------------------------------------------------------------------------
    number of trained tokens in all those micro-batches

not a mean of per-micro-batch means, which would weigh a token of a short reply more than one of a long
reply. The token counts are known before any forward pass (``label_masks``), so each micro-batch's
summed loss (:func:`sft_utils.training.masked_loss_sum`) is divided by the step's total before its
backward pass. Library pieces: ``accelerate.Accelerator`` (devices, DDP, fp16 grad scaler),
``torch.optim.AdamW``, ``transformers.get_cosine_schedule_with_warmup``, transformers'
``get_length_grouped_indices`` (the ``LengthGroupedSampler`` order), ``save_pretrained``, tqdm.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import warnings
from dataclasses import asdict, dataclass

import torch

from .masking import generation_prompt_ids
from .shifting import IGNORE_INDEX, AssistantOnlyCollator, CausalLMCollator
from .training import loss_totals, masked_loss_sum, move_batch, use_precision
from .truncation import tokenize_conversations

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ACCELERATE_PRECISION = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


@dataclass
class TrainConfig:
    """Everything a run depends on; ``python -m sft_utils.train --help`` has the same names.

    ``batch_size`` is the micro-batch per process (conversations); one optimizer step sees
    ``batch_size * grad_accum * processes`` conversations. ``lr`` None: 2e-5 for pretrained weights,
    1e-3 for random ones (offline), which need larger steps to move in a few dozen updates.
    ``loss``: ``"masked"`` (assistant tokens only) or ``"plain"`` (every token, labels = inputs).
    """

    model: str = "EleutherAI/pythia-160m"
    steps: int = 300
    batch_size: int = 8
    grad_accum: int = 1
    lr: float | None = None
    warmup_steps: int = 30
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 25
    loss: str = "masked"
    output_dir: str | None = "checkpoints/pythia-sft"

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ValueError naming the first bad setting (called on creation and again by :func:`train`,
        so a value changed afterwards is caught before any work): counts must be whole and positive,
        ``lr`` positive, ``max_length`` at least 2 (one input and one target)."""
        positive = {"steps": 1, "batch_size": 1, "grad_accum": 1, "eval_every": 1, "max_length": 2, "warmup_steps": 0}
        for name, least in positive.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        for name in ("lr", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.loss not in ("masked", "plain"):
            raise ValueError(f"loss must be 'masked' or 'plain', got {self.loss!r}")

    @classmethod
    def smoke(cls, **overrides) -> TrainConfig:
        """The CPU smoke run of CI: pythia-14m, 40 steps of 4 conversations, fp32."""
        settings = {"model": "EleutherAI/pythia-14m", "steps": 40, "batch_size": 4, "warmup_steps": 4}
        return cls(**{**settings, "max_length": 256, "eval_every": 10, "precision": "fp32", **overrides})


def resolve_precision(precision: str, device) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"`` for ``precision`` on ``device``.

    ``"auto"``: bf16 on a GPU with native bf16 (Ampere and later), fp16 with a gradient scaler on older
    GPUs (a T4, V100), fp32 on a CPU. Raises ValueError for an unknown name, and for fp16 on a CPU
    (no gradient scaler there).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if _native_bf16() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 needs a CUDA GPU (its gradient scaler); use fp32 or bf16 on a CPU")
    return precision


def _native_bf16() -> bool:
    try:  # torch >= 2.4 also reports bf16 *emulated* on older GPUs (a T4) unless told not to
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        return torch.cuda.is_bf16_supported()


def tokenize_all(conversations: list[dict], tokenizer, max_length: int) -> list[dict]:
    """:func:`sft_utils.tokenize_conversation` of each conversation, truncated to ``max_length`` tokens;
    conversations whose truncation leaves no trained token are dropped (they would teach nothing), and a
    ``UserWarning`` names how many and which (:func:`sft_utils.truncation.tokenize_conversations`)."""
    examples, report = tokenize_conversations(conversations, tokenizer, max_length=max_length, drop_untrained=True)
    if report.dropped:
        names = ", ".join(map(str, report.dropped[:3])) + (", …" if len(report.dropped) > 3 else "")
        warnings.warn(
            f"dropped {len(report.dropped)} of {report.examples} conversation(s) left with no trained token "
            f"by truncation to max_length={max_length} ({names})",
            stacklevel=2,
        )
    return examples


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


def make_collator(loss: str, tokenizer):
    """Examples -> shifted batch: assistant-only (``"masked"``) or every token (``"plain"``)."""
    if loss == "masked":
        return AssistantOnlyCollator(tokenizer.pad_token_id)
    if loss == "plain":
        plain = CausalLMCollator(tokenizer)
        return lambda examples: shifted_from_labels(plain(examples))
    raise ValueError(f"loss must be 'masked' or 'plain', got {loss!r}")


def accumulate_gradients(model, micro_batches: list[dict], accelerator=None) -> tuple[float, int]:
    """Backward of one optimizer step's loss: the trained tokens' summed cross-entropy over all
    ``micro_batches`` of all processes, divided by their total count. Returns (that loss in nats per
    trained token, the count); (0.0, 0) and no backward when no process has a trained token.

    The count is summed over processes first (``accelerator.reduce``). DDP *averages* gradients over
    its N processes, so each process's part is multiplied by N: the gradient then equals a single
    process's on the same global batch. Gradients are synchronised on the last micro-batch only.
    """
    processes = accelerator.num_processes if accelerator is not None else 1
    local = sum(int(b["label_masks"].sum()) for b in micro_batches)
    count = _reduce_sum(torch.tensor(local, dtype=torch.long), accelerator)
    if count == 0:
        return 0.0, 0
    total = torch.zeros((), dtype=torch.float32)
    for i, batch in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or accelerator is None else accelerator.no_sync(model)
        with sync:
            loss_sum, _ = masked_loss_sum(model, batch, full_logits=_sharded(accelerator) or None)
            scaled = loss_sum * (processes / count)
            accelerator.backward(scaled) if accelerator is not None else scaled.backward()
        total += loss_sum.detach().float().cpu()
    return _reduce_sum(total, accelerator) / count, count


def _sharded(accelerator) -> bool:
    return accelerator is not None and accelerator.distributed_type.name == "FSDP"


def _reduce_sum(value: torch.Tensor, accelerator):
    if accelerator is not None and accelerator.num_processes > 1:
        value = accelerator.reduce(value.to(accelerator.device), reduction="sum").cpu()
    return value.item()


@torch.no_grad()
def evaluate_assistant_loss(model, batches: list[dict], accelerator=None) -> float:
    """Assistant-only loss over all trained tokens of ``batches`` (token-weighted), nats per token.
    With several DDP processes each evaluates every N-th batch and the sums are added up; under FSDP every
    process evaluates all batches (each forward needs all processes).
    Raises ValueError when the batches hold no trained token."""
    rank, processes = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    if _sharded(accelerator):  # FSDP: every forward gathers weights from all processes, so all run all batches
        rank, processes = 0, 1
    elif accelerator is not None:  # DDP: each process holds the whole model and runs its share
        model = accelerator.unwrap_model(model)
    was_training = model.training
    model.eval()
    total, count = loss_totals(model, batches[rank::processes], full_logits=_sharded(accelerator) or None)
    model.train(was_training)
    if processes > 1:
        total = _reduce_sum(torch.tensor(total, dtype=torch.float64), accelerator)
        count = _reduce_sum(torch.tensor(count), accelerator)
    if count == 0:
        raise ValueError("no trained token in the validation batches: the loss is undefined")
    return float(total) / count


def train(config: TrainConfig, model, tokenizer, train_conversations, valid_conversations, *, progress=True):
    """Fine-tune ``model`` (a ``GPTNeoXForCausalLM``, e.g. from :func:`sft_utils.load_model`) in place.

    Args:
        config: see :class:`TrainConfig`.
        train_conversations, valid_conversations: lists of ``{"messages": [...]}`` (e.g. from
            :func:`sft_utils.oasst.load_oasst1_conversations`).
        progress: show a tqdm bar (main process only).

    Returns:
        ``history``: dict of lists per optimizer step (``step``, ``trained_tokens`` cumulative over all
        processes, ``train_loss`` nats/token, ``lr``, ``tokens_per_s`` real input tokens) and per
        evaluation (``eval_step``, ``eval_trained_tokens``, ``valid_loss`` assistant-only, nats/token;
        ``valid_ppl`` = exp of it; step 0 is before training), plus ``padding_share``, ``precision``,
        ``seconds``, ``processes``, ``config``. The model comes back unwrapped, in eval mode.

    Raises ValueError for a bad config value or data without trained tokens.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    config.check()
    probe = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(config.precision, probe)
    # cpu=True without a GPU: accelerate then runs several launched processes as MULTI_CPU (gloo) DDP.
    accelerator = Accelerator(mixed_precision=ACCELERATE_PRECISION[precision], cpu=probe == "cpu")
    set_seed(config.seed)  # the same order and weights in every process
    collate = make_collator(config.loss, tokenizer)
    train_examples = tokenize_all(train_conversations, tokenizer, config.max_length)
    valid_examples = tokenize_all(valid_conversations, tokenizer, config.max_length)
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler is stepped here, once a step

    processes, rank = accelerator.num_processes, accelerator.process_index
    per_step = config.grad_accum * processes
    stream = micro_batch_indices([len(e["input_ids"]) for e in train_examples], config.batch_size, seed=config.seed)
    history = {k: [] for k in ("step", "trained_tokens", "train_loss", "lr", "tokens_per_s")}
    history.update({k: [] for k in ("eval_step", "eval_trained_tokens", "valid_loss", "valid_ppl")})
    padded = positions = 0  # this process's micro-batches, for the padding share

    def record_eval(step, tokens):
        loss = evaluate_assistant_loss(model, valid_batches, accelerator)
        history["eval_step"].append(step)
        history["eval_trained_tokens"].append(tokens)
        history["valid_loss"].append(loss)
        history["valid_ppl"].append(math.exp(min(loss, 50.0)))

    start, tokens = time.perf_counter(), 0
    with use_precision(precision):
        record_eval(0, 0)
        bar = tqdm(range(1, config.steps + 1), desc=f"{config.loss} SFT", disable=not (progress and rank == 0))
        for step in bar:
            step_start = time.perf_counter()
            indices = [next(stream) for _ in range(per_step)][rank::processes]  # this process's share
            micro_batches = [move_batch(collate([train_examples[i] for i in ix]), accelerator.device) for ix in indices]
            padded += sum(int((b["attention_mask"] == 0).sum()) for b in micro_batches)
            positions += sum(b["attention_mask"].numel() for b in micro_batches)
            model.train()
            loss, count = accumulate_gradients(model, micro_batches, accelerator)
            if count:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                if not accelerator.optimizer_step_was_skipped:  # fp16: the scaler skips inf/NaN steps
                    scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            real = _reduce_sum(torch.tensor(sum(int(b["attention_mask"].sum()) for b in micro_batches)), accelerator)
            tokens += count
            history["step"].append(step)
            history["trained_tokens"].append(tokens)
            history["train_loss"].append(loss)
            history["lr"].append(scheduler.get_last_lr()[0])
            history["tokens_per_s"].append(real / (time.perf_counter() - step_start))
            if step % config.eval_every == 0 or step == config.steps:
                record_eval(step, tokens)
            tokens_per_s, valid = history["tokens_per_s"][-1], history["valid_loss"][-1]
            bar.set_postfix(loss=f"{loss:.3f}", valid=f"{valid:.3f}", tok_s=f"{tokens_per_s:.0f}", refresh=False)
    history.update(
        padding_share=_reduce_sum(torch.tensor(padded), accelerator)
        / _reduce_sum(torch.tensor(positions), accelerator),
        precision=precision,
        seconds=time.perf_counter() - start,
        processes=processes,
        config=asdict(config) | {"lr": lr},
    )
    if config.output_dir:
        save_checkpoint(model, tokenizer, config.output_dir, accelerator)
    # keep_fp32_wrapper=False: drop the autocast accelerate wrapped around forward; the caller chooses again.
    return accelerator.unwrap_model(model, keep_fp32_wrapper=False).eval(), history


def save_checkpoint(model, tokenizer, output_dir, accelerator=None) -> None:
    """``save_pretrained`` of model (safetensors) and tokenizer into ``output_dir``, by the main process
    only (every process must call it: under FSDP the full weights are gathered first). Sets
    ``eos_token_id`` = 0 (``<|endoftext|>``) so that generation from the reloaded folder stops there."""
    state_dict = None
    if accelerator is not None:
        accelerator.wait_for_everyone()
        state_dict = accelerator.get_state_dict(model)  # FSDP: gathers the full weights (all processes call it)
        model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        if not accelerator.is_main_process:
            return
    model.config.eos_token_id = model.generation_config.eos_token_id = 0
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir, state_dict=state_dict)
    tokenizer.save_pretrained(output_dir)


@torch.no_grad()
def generate_reply(model, tokenizer, messages, *, max_new_tokens: int = 48) -> str:
    """Greedy reply of ``model`` to ``messages`` (prompt: :func:`sft_utils.generation_prompt_ids`), stopped
    at ``<|endoftext|>`` (id 0) or after ``max_new_tokens``; decoded without special tokens."""
    device = next(model.parameters()).device
    prompt = torch.tensor([generation_prompt_ids(messages, tokenizer)], device=device)
    model.eval()
    out = model.generate(
        input_ids=prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True)


# Dense bf16 peak (TFLOP/s) of common GPUs, from their makers' data sheets; fp16 for the T4.
PEAK_TFLOPS = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "L4": 121, "A10": 125, "T4": 65, "V100": 125}


def estimate_run_seconds(n_params: int, tokens: int, device, *, mfu: float = 0.3) -> float | None:
    """Rough wall time of training on ``tokens`` tokens: 6 · params · tokens FLOPs (forward + backward)
    at ``mfu`` of the GPU's peak (:data:`PEAK_TFLOPS`, matched by name). None for an unknown GPU;
    on a CPU, 20 GFLOP/s per core, an order of magnitude only."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((tflops * 1e12 for key, tflops in PEAK_TFLOPS.items() if key in name), None)
        return None if peak is None else 6 * n_params * tokens / (peak * mfu)
    import os

    return 6 * n_params * tokens / (20e9 * (os.cpu_count() or 1))
