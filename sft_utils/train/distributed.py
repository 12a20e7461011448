"""Sums over processes, and whether the model is sharded: the two facts of ``accelerate`` the loop needs.

Introduced in notebook 08_finetune_pythia (``python -m sft_utils.train`` under ``accelerate launch``).
"""

from __future__ import annotations

import torch


def is_sharded(accelerator) -> bool:
    """True under FSDP, where every forward gathers weights from all processes."""
    return accelerator is not None and accelerator.distributed_type.name == "FSDP"


def reduce_sum(value: torch.Tensor, accelerator) -> float | int:
    """``value`` summed over all processes (itself with one process or no accelerator), as a Python number."""
    if accelerator is not None and accelerator.num_processes > 1:
        value = accelerator.reduce(value.to(accelerator.device), reduction="sum").cpu()
    return value.item()
