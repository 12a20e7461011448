"""Everything a fine-tuning run depends on, in one config object beside the loop it configures.

Introduced in notebook 07_train_it_yourself (``TrainConfig.toy``) and used by notebook 08_finetune_pythia;
``python -m sft_utils.train --help`` has the same names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .precision import PRECISIONS

# Our names -> transformers' get_scheduler names; every one warms up linearly over warmup_steps first.
LR_SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass
class TrainConfig:
    """Everything a run depends on; ``python -m sft_utils.train --help`` has the same names.

    ``batch_size`` is the micro-batch per process (conversations); one optimizer step sees
    ``batch_size * grad_accum * processes`` conversations. ``lr`` None: 2e-5 for pretrained weights,
    1e-3 for random ones (offline), which need larger steps to move in a few dozen updates.
    ``loss``: ``"masked"`` (assistant tokens only) or ``"plain"`` (every token, labels = inputs).
    ``prompt_loss_weight`` (masked only): the weight of every other real target, between 0 (the memo's
    masked loss) and 1 (plain SFT); the loss is then the weighted sum over the weighted count.
    ``lr_schedule``: after ``warmup_steps`` of linear warm-up, ``"cosine"`` decays to 0 at ``steps``,
    ``"linear"`` too, ``"constant"`` stays at ``lr`` (transformers' ``get_scheduler``).
    """

    model: str = "EleutherAI/pythia-160m"
    steps: int = 300
    batch_size: int = 8
    grad_accum: int = 1
    lr: float | None = None
    warmup_steps: int = 30
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 25
    loss: str = "masked"
    prompt_loss_weight: float = 0.0
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
        weight = self.prompt_loss_weight
        if isinstance(weight, bool) or not (isinstance(weight, (int, float)) and 0 <= weight <= 1):
            raise ValueError(f"prompt_loss_weight must be a number from 0 to 1, got {weight!r}")
        if weight and self.loss == "plain":
            raise ValueError("prompt_loss_weight applies to loss='masked'; plain SFT already trains every token")
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")

    @classmethod
    def smoke(cls, **overrides) -> TrainConfig:
        """A CPU smoke run that checks everything works in seconds: pythia-14m, 40 steps of 4 conversations, fp32."""
        settings = {"model": "EleutherAI/pythia-14m", "steps": 40, "batch_size": 4, "warmup_steps": 4}
        return cls(**{**settings, "max_length": 256, "eval_every": 10, "precision": "fp32", **overrides})

    @classmethod
    def toy(cls, **overrides) -> TrainConfig:
        """A toy-world run on a CPU (notebook 07): a random-weight pythia-14m, batches of 16, lr 1e-3 held
        constant after 20 warm-up steps, fp32. The rate stays at its peak because toy tasks are learned in a
        sudden jump after a plateau: a cosine decay that reaches 0 at the step budget stops short of it."""
        settings = {"model": "EleutherAI/pythia-14m", "steps": 400, "batch_size": 16, "lr": 1e-3}
        settings |= {"warmup_steps": 20, "lr_schedule": "constant", "max_length": 256, "eval_every": 50}
        return cls(**{**settings, "precision": "fp32", "output_dir": None, **overrides})
