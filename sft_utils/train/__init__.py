"""Fine-tuning with the masked loss: the config, one step, the loop, evaluation, checkpoints, generation.

config      TrainConfig                                        the run's settings, beside the loop
precision   resolve_precision, autocast                        one precision policy for every path
step        masked_loss_sum, train_step, accumulate_gradients  one batch's loss; the one optimizer step
evaluate    evaluate                                           the one evaluator (token-weighted)
loop        train                                              accumulation, schedule, DDP/FSDP, history
checkpoint  save_checkpoint                                    save_pretrained, generation stopping at end of message
generate    generate_reply                                     a greedy reply, stopped at end of message
estimate    estimate_run_seconds                               a run's rough wall time
cli         python -m sft_utils.train                          the same train() from the command line

Introduced in notebook 07_finetune_pythia.
"""

from .checkpoint import save_checkpoint
from .config import TrainConfig
from .estimate import estimate_run_seconds
from .evaluate import evaluate
from .generate import generate_reply
from .loop import micro_batch_indices, train
from .precision import PRECISIONS, autocast, resolve_precision
from .step import accumulate_gradients, masked_loss_sum, move_batch, train_step

__all__ = [
    "PRECISIONS",
    "TrainConfig",
    "accumulate_gradients",
    "autocast",
    "estimate_run_seconds",
    "evaluate",
    "generate_reply",
    "masked_loss_sum",
    "micro_batch_indices",
    "move_batch",
    "resolve_precision",
    "save_checkpoint",
    "train",
    "train_step",
]
