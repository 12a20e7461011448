"""Everything a fine-tuning run depends on, in one config object beside the loop it configures.

Introduced in notebook 07_train_it_yourself (``TrainConfig.toy``) and used by notebook 08_finetune_pythia;
``python -m sft_utils.train --help`` has the same names.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..scale.memory_estimate import LORA_TARGETS
from .precision import PRECISIONS

# GPT-NeoX's four linear layers per block (attention's fused query/key/value and output projection, the MLP's
# two): the set the memory estimate counts, and what QLoRA (Dettmers et al. 2023) found to match full
# fine-tuning; the output head and the embeddings stay frozen.
LORA_TARGET_MODULES = LORA_TARGETS
REPORT_TO = ("tensorboard",)

# Our names -> transformers' get_scheduler names; every one warms up linearly over warmup_steps first.
LR_SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass
class TrainConfig:
    """Everything a run depends on; ``python -m sft_utils.train --help`` has the same names.

    ``steps`` counts real optimizer updates: under fp16 an update the gradient scaler skips (its gradients
    overflowed) is retried on the same conversations and does not count, nor move the schedule; it is listed in
    the history's ``skipped_steps`` (after 20 skips in a row the run stops with FloatingPointError).
    ``batch_size`` is the micro-batch per process (conversations); one optimizer step sees
    ``batch_size * grad_accum * processes`` conversations. ``lr`` None: 2e-5 for pretrained weights,
    1e-3 for random ones (offline), which need larger steps to move in a few dozen updates.
    ``loss``: ``"masked"`` (assistant tokens only) or ``"plain"`` (every token, labels = inputs).
    ``prompt_loss_weight`` (masked only): the weight of every other real target, between 0 (the memo's
    masked loss) and 1 (plain SFT); the loss is then the weighted sum over the weighted count.
    ``lr_schedule``: after ``warmup_steps`` of linear warm-up (step k of it trains at ``lr * k / warmup_steps``;
    None: a tenth of ``steps``), ``"cosine"`` decays towards 0 at ``steps``, ``"linear"`` too, ``"constant"``
    stays at ``lr`` (transformers' ``get_scheduler``). ``weight_decay`` applies to weight matrices only, not to
    biases or LayerNorm weights (as transformers' ``Trainer``). ``max_grad_norm`` None: no clipping.

    Resuming: every ``save_every`` steps (None: never) a checkpoint ``checkpoint-<step>/`` is written under
    ``output_dir`` (model, optimizer, scheduler, gradient scaler, random states, data position and history),
    of which the last ``save_total_limit`` are kept; ``train(..., resume_from=...)`` continues from one.

    Memory: ``lora_r`` (None: full fine-tuning) trains rank-``lora_r`` adapters (peft's LoRA, scaled by
    ``lora_alpha / lora_r``) on ``lora_target_modules`` and freezes every other weight;
    ``gradient_checkpointing`` recomputes each layer's activations in the backward pass instead of keeping
    them (docs/performance.md, "Memory", has the table). ``report_to="tensorboard"`` logs every step's
    numbers under ``output_dir/runs`` through accelerate's trackers.
    """

    model: str = "EleutherAI/pythia-160m"
    steps: int = 300
    batch_size: int = 8
    grad_accum: int = 1
    lr: float | None = None
    warmup_steps: int | None = None
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    max_length: int = 1024
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 25
    loss: str = "masked"
    prompt_loss_weight: float = 0.0
    output_dir: str | None = "checkpoints/pythia-sft"
    save_every: int | None = None
    save_total_limit: int = 2
    lora_r: int | None = None
    lora_alpha: float = 16.0
    lora_target_modules: tuple[str, ...] = LORA_TARGET_MODULES
    gradient_checkpointing: bool = False
    report_to: str | None = None

    def __post_init__(self):
        if isinstance(self.lora_target_modules, list):  # a list reads as naturally; stored as a tuple
            self.lora_target_modules = tuple(self.lora_target_modules)
        self.check()

    def check(self) -> None:
        """Raise ValueError naming the first bad setting, TypeError for a value of the wrong type (called on
        creation and again by :func:`train`, so a value changed afterwards is caught before any work): counts
        must be whole and positive, ``lr`` positive, ``max_length`` at least 2 (one input and one target), the
        LoRA settings given only with ``lora_r``."""
        positive = {"steps": 1, "batch_size": 1, "grad_accum": 1, "eval_every": 1, "max_length": 2}
        positive |= {"warmup_steps": 0, "save_every": 1, "save_total_limit": 1, "lora_r": 1}
        for name, least in positive.items():
            value = getattr(self, name)
            if value is None and name in ("warmup_steps", "save_every", "lora_r"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        if self.warmup > self.steps:  # the peak learning rate would never be reached
            raise ValueError(f"warmup_steps ({self.warmup_steps}) is longer than the run (steps={self.steps})")
        for name in ("lr", "max_grad_norm", "lora_alpha"):
            value = getattr(self, name)
            if value is not None and not (_number(value) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (_number(self.weight_decay) and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.output_dir is not None and not isinstance(self.output_dir, (str, os.PathLike)):
            raise TypeError(f"output_dir must be a folder path or None, got {type(self.output_dir).__name__}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.loss not in ("masked", "plain"):
            raise ValueError(f"loss must be 'masked' or 'plain', got {self.loss!r}")
        weight = self.prompt_loss_weight
        if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and 0 <= weight <= 1):
            raise ValueError(f"prompt_loss_weight must be a number from 0 to 1, got {weight!r}")
        if weight and self.loss == "plain":
            raise ValueError("prompt_loss_weight applies to loss='masked'; plain SFT already trains every token")
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.save_every is not None and not self.output_dir:
            raise ValueError("save_every needs an output_dir to write its checkpoints in")
        targets = self.lora_target_modules
        if not isinstance(targets, tuple) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"lora_target_modules must be a list of module names, got {targets!r}")
        if self.lora_r is None and (self.lora_alpha != 16.0 or targets != LORA_TARGET_MODULES):
            raise ValueError(
                "lora_alpha and lora_target_modules apply with lora_r (LoRA); without it every weight trains"
            )
        if not isinstance(self.gradient_checkpointing, bool):
            raise TypeError(f"gradient_checkpointing must be True or False, got {self.gradient_checkpointing!r}")
        if self.report_to is not None and self.report_to not in REPORT_TO:
            raise ValueError(f"report_to must be None or one of {', '.join(REPORT_TO)}, got {self.report_to!r}")
        if self.report_to and not self.output_dir:
            raise ValueError("report_to needs an output_dir to write its logs in")

    @property
    def warmup(self) -> int:
        """Warm-up steps: ``warmup_steps``, or a tenth of ``steps`` when it is None."""
        return self.steps // 10 if self.warmup_steps is None else self.warmup_steps

    @classmethod
    def smoke(cls, **overrides) -> TrainConfig:
        """A CPU smoke run that checks everything works in seconds: pythia-14m, 40 steps of 4 conversations, fp32."""
        settings = {"model": "EleutherAI/pythia-14m", "steps": 40, "batch_size": 4}
        return cls(**{**settings, "max_length": 256, "eval_every": 10, "precision": "fp32", **overrides})

    @classmethod
    def toy(cls, **overrides) -> TrainConfig:
        """A toy-world run on a CPU (notebook 07): a random-weight pythia-14m, batches of 16, lr 1e-3 held
        constant after 20 warm-up steps, fp32. The rate stays at its peak because toy tasks are learned in a
        sudden jump after a plateau: a cosine decay that reaches 0 at the step budget stops short of it."""
        settings = {"model": "EleutherAI/pythia-14m", "steps": 400, "batch_size": 16, "lr": 1e-3}
        settings |= {"lr_schedule": "constant", "max_length": 256, "eval_every": 50}
        warmup = min(20, overrides.get("steps", settings["steps"]))  # a short run warms up over all of it
        return cls(**{**settings, "warmup_steps": warmup, "precision": "fp32", "output_dir": None, **overrides})


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # True is an int, not a rate
