"""Solutions to notebook 06_masked_loss's exercises."""

import math

import torch

import sft_utils
import sft_utils.course.exercises


def ex_06_1() -> float:
    batch = sft_utils.exercises.inputs("06.1")
    log_probs = torch.log_softmax(batch["logits"], dim=-1)
    nll = -log_probs.gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1)  # [B, T]
    mask = batch["label_masks"]
    return (nll[mask].sum() / mask.sum()).item()  # trained targets only, divided by their count


def ex_06_2() -> float:
    vocab_size = sft_utils.pythia_config("pythia-14m").vocab_size
    loss = math.log(vocab_size)  # uniform: -log(1 / V) nats at every position
    return math.exp(loss)  # = V


def ex_06_3():
    import torch

    def masked_cross_entropy(logits, targets, label_masks):
        nll = -torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (nll[label_masks].sum() / label_masks.sum()).item()  # one sum, one count

    return masked_cross_entropy
