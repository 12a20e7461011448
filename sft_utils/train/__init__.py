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
toy_model   toy_trained_model                                  a toy-trained model, trained once and cached (04-06, 08)
compare     held_out_losses                                    assistant-only and full-sequence loss side by side
chat        chat, reply_tokens, TokenReply                     talk to your model: reply chips with probabilities
estimate    estimate_run_seconds                               a run's rough wall time
cli         python -m sft_utils.train                          the same train() from the command line

Introduced in notebooks 07_train_it_yourself (the loop in view, the toy world) and 08_finetune_pythia.
"""

from .chat import TokenReply, chat, reply_tokens
from .checkpoint import save_checkpoint
from .compare import held_out_losses
from .config import TrainConfig
from .estimate import estimate_run_seconds
from .evaluate import evaluate
from .generate import generate_replies, generate_reply, reply_metrics
from .loop import micro_batch_indices, train
from .precision import PRECISIONS, autocast, resolve_precision
from .resume import checkpoints, find_checkpoint
from .step import accumulate_gradients, masked_loss_sum, move_batch, train_step
from .toy_model import toy_trained_model

__all__ = [
    "PRECISIONS",
    "TokenReply",
    "TrainConfig",
    "accumulate_gradients",
    "autocast",
    "chat",
    "checkpoints",
    "estimate_run_seconds",
    "evaluate",
    "find_checkpoint",
    "generate_replies",
    "generate_reply",
    "held_out_losses",
    "masked_loss_sum",
    "micro_batch_indices",
    "move_batch",
    "reply_metrics",
    "reply_tokens",
    "resolve_precision",
    "save_checkpoint",
    "toy_trained_model",
    "train",
    "train_step",
]
