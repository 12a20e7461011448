"""Exercises of notebook 06_masked_loss: the loss by hand, a uniform model's perplexity, and a broken mask."""

from __future__ import annotations

import math

import torch

from ...steps.loss import MaskedCrossEntropyLoss, per_token_nll
from ...steps.mask import tokenize_conversation
from ...steps.shift import shift_for_next_token
from .core import conversation, exercise, given_inputs, match, number, pythia_14m, tokenizer
from .n03_mask import merged

_STAGES = "reread 'Building the loss in view', stage by stage"
_PERPLEXITY = "reread the paragraph on perplexity"


@given_inputs("06.1")
def _inputs_06_1() -> dict:
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 7, 11, generator=generator) * 2
    targets = torch.randint(2, 11, (2, 7), generator=generator)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]])
    label_masks = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    targets[attention_mask == 0] = 1  # padded targets hold the pad id
    return {"logits": logits, "targets": targets, "label_masks": label_masks, "attention_mask": attention_mask}


def _close(rtol: float):
    return lambda a, b: math.isclose(a, b, rel_tol=rtol, abs_tol=1e-6)


@exercise("06.1", "the assistant-only loss of the batch sft_utils.exercises.inputs('06.1'), in nats")
def _check_06_1(answer):
    answer = number(answer, "a loss in nats")
    batch = _inputs_06_1()
    logits, targets, mask = batch["logits"], batch["targets"], batch["label_masks"]
    attention = batch["attention_mask"].bool()
    truth = MaskedCrossEntropyLoss()(logits, targets, mask).item()
    nll = per_token_nll(logits, targets)
    per_example = [nll[b][mask[b]].mean() for b in range(len(mask))]
    shifted = torch.roll(mask, 1, dims=1)
    shifted[:, 0] = False
    mistakes = [
        (nll.mean().item(), "a mean over every position, padding and prompt included: keep the trained targets only."),
        (
            nll[attention].mean().item(),
            "a mean over all real tokens is plain SFT: the prompt's targets must not count.",
        ),
        (nll[mask].sum().item(), "that is a sum over the trained targets; the loss is their mean."),
        (nll[mask].sum().item() / mask.numel(), "divided by every position: padding and prompt dilute the loss."),
        (torch.stack(per_example).mean().item(), "a mean of per-example means weights short replies more."),
        (nll[shifted].mean().item(), "the mask is shifted by one: label_masks[t] already belongs to targets[t]."),
        (nll[~mask & attention].mean().item(), "that is the prompt's loss: keep the positions where the mask is True."),
        (-nll[mask].mean().item(), "the sign: a loss in nats is positive, the surprise of each trained target."),
    ]
    general = f"{_STAGES}, on this small batch."
    return match(
        answer, truth, "the mean of the trained targets' cross-entropy.", mistakes, general, equal=_close(1e-4)
    )


@exercise("06.2", "the perplexity of a model that gives every token of pythia-14m's vocabulary the same probability")
def _check_06_2(answer):
    answer = number(answer, "a perplexity")
    vocab_size = pythia_14m().vocab_size
    loss = math.log(vocab_size)
    mistakes = [
        (loss, f"that is the loss in nats; a perplexity is a number of equally likely choices: {_PERPLEXITY}."),
        (math.log2(vocab_size), "that is the loss in bits; a perplexity is a number of choices, not a loss."),
        (
            len(tokenizer()),
            "that is len(tokenizer); the logits have one column per row of the head, a few more (notebook 05).",
        ),
        (1 / vocab_size, "that is each token's probability; how many equally likely choices does it stand for?"),
    ]
    general = f"{_PERPLEXITY}: what it reads as, for a guess spread evenly over every column of the logits."
    right = "as unsure as a uniform pick among all vocab_size columns: the perplexity is their number."
    return match(answer, float(vocab_size), right, mistakes, general, equal=_close(1e-6))


P_REPLY_06_3 = 0.9  # the probability the model of exercise 06.3 gives each reply target


def _perfect_on_replies(example: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``[1, T-1, vocab_size]`` of a model that gives each reply target P_REPLY_06_3 and is uniform on every
    other target, with the example's shifted targets and label masks."""
    shifted = shift_for_next_token(example)
    targets = torch.tensor([shifted["targets"]])
    label_masks = torch.tensor([shifted["label_masks"]])
    vocab_size = pythia_14m().vocab_size
    logits = torch.zeros(1, targets.shape[1], vocab_size, dtype=torch.float64)
    sure = math.log(P_REPLY_06_3 * (vocab_size - 1) / (1 - P_REPLY_06_3))  # softmax gives the target P_REPLY_06_3
    logits[0, label_masks[0], targets[0, label_masks[0]]] = sure
    return logits, targets, label_masks


@exercise(
    "06.3",
    "break the mask on purpose (train every token) and predict the loss on memo-hello of a model sure of the "
    "replies and uniform on the rest",
)
def _check_06_3(answer):
    answer = number(answer, "a loss in nats per target")
    example = tokenize_conversation(list(conversation("memo-hello")), tokenizer())
    logits, targets, label_masks = _perfect_on_replies(example)
    plain = torch.nn.functional.cross_entropy(logits[0], targets[0]).item()  # every target: the mask broken
    masked = MaskedCrossEntropyLoss()(logits, targets, label_masks).item()
    uniform = math.log(pythia_14m().vocab_size)
    reply, other = int(label_masks.sum()), targets.numel() - int(label_masks.sum())
    tokens_reply = sum(example["label_mask"])
    tokens_other = len(example["input_ids"]) - tokens_reply
    mistakes = merged(
        [
            (masked, "that is the assistant-only loss; training every token brings the other targets into the mean."),
            (
                (tokens_reply * masked + tokens_other * uniform) / (tokens_reply + tokens_other),
                "counted tokens, not targets: the first token is never predicted (notebook 04).",
            ),
            ((masked + uniform) / 2, "a mean over targets, not over the two groups: each group weighs its count."),
            (uniform, "that is the loss of the untrained targets alone; the replies' targets are in the mean too."),
            (reply * masked + other * uniform, "that is a sum over targets; the loss is a mean per target."),
        ]
    )
    general = (
        "every target now counts: the replies' at their loss, the others at a uniform guess's (notebook 06's "
        "perplexity paragraph). How many of each does memo-hello have once shifted?"
    )
    right = (
        f"{plain:.2f} nats, against {masked:.2f} for the assistant-only loss of the same model: trained on every "
        "token, a model that answers perfectly still shows a high loss, made of the questions it cannot guess."
    )
    return match(answer, plain, right, mistakes, general, equal=_close(5e-3))
