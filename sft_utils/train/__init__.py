"""Fine-tuning with the masked loss: the config, one step, the loop, evaluation, checkpoints, generation.

config      TrainConfig                                        the run's settings, beside the loop
precision   resolve_precision, autocast                        one precision policy for every path
step        masked_loss_sum, train_step, accumulate_gradients  one batch's loss; the one optimizer step
evaluate    evaluate                                           the one evaluator (token-weighted)
loop        train                                              accumulation, schedule, LoRA, DDP/FSDP, history
resume      checkpoints, find_checkpoint                       checkpoint-<step> folders a run resumes from
checkpoint  save_checkpoint                                    save_pretrained, generation stopping at end of message
generate    generate_reply, generate_replies, reply_metrics    greedy replies, stopped at end of message or a role
                                                               marker; exact match
toy_run     toy_run, toy_record                                a toy-world run; one cell of notebook 07's experiment
estimate    estimate_run_seconds                               a run's rough wall time
cli         python -m sft_utils.train                          the same train() from the command line

Introduced in notebooks 07_train_it_yourself (the loop in view, the toy world) and 08_finetune_pythia.
"""

from .checkpoint import save_checkpoint
from .config import TrainConfig
from .estimate import estimate_run_seconds
from .evaluate import evaluate
from .generate import generate_replies, generate_reply, reply_metrics
from .loop import micro_batch_indices, train
from .precision import PRECISIONS, autocast, resolve_precision
from .resume import checkpoints, find_checkpoint
from .step import accumulate_gradients, masked_loss_sum, move_batch, train_step

__all__ = [
    "PRECISIONS",
    "TrainConfig",
    "accumulate_gradients",
    "autocast",
    "checkpoints",
    "estimate_run_seconds",
    "evaluate",
    "find_checkpoint",
    "generate_replies",
    "generate_reply",
    "masked_loss_sum",
    "micro_batch_indices",
    "move_batch",
    "reply_metrics",
    "resolve_precision",
    "save_checkpoint",
    "train",
    "train_step",
]
