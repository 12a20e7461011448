"""Notebook 08_finetune_pythia's settings, and what each of its cells holds on the GPU at its peak.

The notebook builds its run with :func:`notebook_config` and its LoRA run with :func:`lora_config`, so that the
estimate below (and the check that GPU mode fits a Colab T4 with room to spare) reads the settings the notebook
really uses. :func:`notebook_memory` adds up, cell by cell, what is resident on the device: models' weights,
a training step's gradients, AdamW state and activations (:func:`sft_utils.scale.memory_estimate.
estimate_training_memory`), a forward pass's logits (:func:`~sft_utils.scale.memory_estimate.forward_memory`).
Left out, as in the estimator: the CUDA context (0.3-0.5 GB), the allocator's cache and fragmentation.
"""

from __future__ import annotations

from ..scale.memory_estimate import (
    CellMemory,
    estimate_training_memory,
    forward_memory,
    weights_bytes,
)
from ..train.config import TrainConfig

GPU_MODEL = "EleutherAI/pythia-160m"  # GPU mode's model: full fine-tuning fits a T4 in mixed precision
T4_MEMORY = 15e9  # bytes a Colab T4 offers (15 GB, of which the CUDA context takes a few hundred MB)
T4_BUDGET = 12e9  # what every cell's estimated peak stays under: room for the context and fragmentation
# The LoRA demonstration: rank-8 adapters on every linear layer, layers recomputed in backward.
LORA_SETTINGS = {"lora_r": 8, "gradient_checkpointing": True}
# Each estimated cell of notebook_memory and the id of the notebook cell it describes (benchmarks/gpu_check.py
# measures each cell's peak and sets it beside the estimate).
CELL_IDS = {
    "model": "c05",
    "one step, in view": "c09",
    "micro-batches (no gradients)": "train-accum",
    "train()": "c11",
    "plain SFT, one model at a time": "train-plain",
    "replies before and after": "c15",
    "reloaded checkpoint": "train-reload",
    "resuming (toy run)": "resume-folder",
    "LoRA run": "lora-run",
    "per-token loss viewer": "loss-chips",
}


def notebook_config(smoke: bool, output_dir: str | None) -> TrainConfig:
    """Notebook 08's run: ``TrainConfig.smoke`` on a CPU (pythia-14m, 40 steps of 4 × 256 tokens, fp32), else
    GPU mode, ``TrainConfig``'s defaults for :data:`GPU_MODEL` (300 steps of 8 × 1024 tokens, precision
    "auto": bf16 where the GPU has it natively, fp16 with a gradient scaler on a T4)."""
    if smoke:
        return TrainConfig.smoke(output_dir=output_dir)
    return TrainConfig(model=GPU_MODEL, output_dir=output_dir)


def lora_config(config: TrainConfig, lr: float) -> TrainConfig:
    """The notebook's LoRA run: ``config`` with :data:`LORA_SETTINGS`, learning rate ``lr``, and nothing saved."""
    return TrainConfig(**{**config.__dict__, **LORA_SETTINGS, "lr": lr, "output_dir": None})


def _train_memory(config: TrainConfig, precision: str, size: str | None = None) -> int:
    lora = config.lora_r is not None
    return estimate_training_memory(
        size or config.model,
        config.max_length,
        config.batch_size,
        method="lora" if lora else "full",
        lora_r=config.lora_r or 8,
        gradient_checkpointing=config.gradient_checkpointing,
        precision=precision,
    ).total


def notebook_memory(config: TrainConfig, *, loop_precision: str, step_precision: str) -> list[CellMemory]:
    """Each memory-heavy cell of notebook 08 with ``config`` (from :func:`notebook_config`): what it holds on the
    device at its peak, in bytes, by the course's estimator; the worst case, every conversation ``max_length``
    tokens long and every target trained.

    ``loop_precision``: what :func:`sft_utils.train.train` runs in (``resolve_precision(config.precision,
    device)``: fp16 on a T4, bf16 on Ampere and later, fp32 on a CPU); ``step_precision``: the step in view,
    which has no gradient scaler (``resolve_precision(..., scaler=False)``: fp32 on a T4).

    The cells' rules, which the notebook keeps: the copy of the initial weights lives on the CPU; the step in
    view trains one copy at a time (its result goes to the CPU before the next), with the chunked loss; a cell
    that trains another model has moved every other one off the GPU, and a cell frees its copies
    (``del``, ``gc.collect()``, ``torch.cuda.empty_cache()``) before the next.
    """
    size, length = config.model, config.max_length
    weights = weights_bytes(size)
    toy = TrainConfig.toy()
    step = _train_memory(config, step_precision)
    loop = _train_memory(config, loop_precision)
    lora = _train_memory(lora_config(config, 1e-4), loop_precision)
    toy_step = _train_memory(toy, toy.precision, toy.model)
    micro = forward_memory(size, length, 2, precision=step_precision, full_logits=False)
    one = forward_memory(size, length, 1, precision=step_precision)  # one conversation, full logits
    model = ("model weights", weights)
    return [
        CellMemory("model", (model,)),
        CellMemory("one step, in view", (model, ("a copy's training step", step))),
        CellMemory("micro-batches (no gradients)", (model, ("forward, chunked loss", micro))),
        CellMemory("train()", (("training step", loop),)),
        CellMemory("plain SFT, one model at a time", (("training step", loop),)),
        CellMemory("replies before and after", (model, ("forward", one))),
        CellMemory("reloaded checkpoint", (("two models' weights", 2 * weights), ("two forwards", 2 * one))),
        CellMemory("resuming (toy run)", (model, ("toy training step", toy_step))),
        CellMemory("LoRA run", (model, ("LoRA training step", lora))),
        CellMemory("per-token loss viewer", (model, ("forward", one))),
    ]
