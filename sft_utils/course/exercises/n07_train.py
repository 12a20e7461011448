"""Exercises of notebook 07_train_it_yourself: accumulation, the prompt-weighted loss, and what w weighs."""

from __future__ import annotations

import copy
import functools
import math

import torch

from ...steps.mask import tokenize_conversation
from .core import CORRECT, WRONG, Unreadable, call, describe, exercise, match, number, tokenizer

_LOOP = "reread notebook 07's 'The loop, in view', point (3)"
_WEIGHT = "reread the definition of w in 'The memo's question, by experiment'"


@functools.cache
def _accumulation_setup():
    """A 1-layer model of pythia-14m's width and two micro-batches of very different trained counts (hidden
    from the learner), and the gradient of each micro-batch's summed loss."""
    from transformers import GPTNeoXForCausalLM

    from ...data.toy import toy_conversations
    from ...models.pythia import pythia_config
    from ...steps.shift import AssistantOnlyCollator
    from ...train.step import masked_loss_sum

    config = pythia_config("pythia-14m")
    config.num_hidden_layers = 1
    torch.manual_seed(7)
    model = GPTNeoXForCausalLM(config).eval()
    tok, collate = tokenizer(), AssistantOnlyCollator(1)
    short = toy_conversations("facts", "held-out", 1, seed=5)
    long = toy_conversations("last_word", "held-out", 3, seed=5) + toy_conversations("reverse", "held-out", 3, seed=5)
    micro = [collate([tokenize_conversation(c["messages"], tok) for c in group]) for group in (short, long)]
    sums, counts, grads = [], [], []
    for batch in micro:
        model.zero_grad(set_to_none=True)
        loss_sum, count = masked_loss_sum(model, batch)
        loss_sum.backward()
        sums.append(loss_sum.item())
        counts.append(count)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    return model, micro, sums, counts, grads


@exercise("07.1", "write the backward pass of one step over several micro-batches, weighting every token equally")
def _check_07_1(answer):
    if not callable(answer):
        raise Unreadable(f"expected your function (answer = accumulate), got {describe(answer)}")
    model, micro, sums, counts, grads = _accumulation_setup()
    model = copy.deepcopy(model)
    # Fresh tensors each time: an answer that edits a batch in place must not change the next check.
    loss = call(answer, "answer(model, micro_batches)", model, [{k: v.clone() for k, v in b.items()} for b in micro])
    if any(p.grad is None for p in model.parameters()):
        return WRONG, "no gradient reached the weights: each micro-batch's part of the loss needs its backward pass."
    got = torch.cat([p.grad.flatten() for p in model.parameters()])
    total, k = sum(counts), len(counts)
    # Every way of combining the micro-batches is a weighted sum of their summed-loss gradients.
    candidates = [
        ([1 / total] * k, None),
        (
            [1 / (k * n) for n in counts],
            (
                "that averages the micro-batch means: a token of the short micro-batch weighs more than a token "
                "of the long one. A token's weight must not depend on which micro-batch holds it."
            ),
        ),
        ([1 / n for n in counts], "each micro-batch's mean, added up: too large, and short micro-batches weigh more."),
        ([1.0] * k, "the summed loss is never divided: the step would grow with the number of trained tokens."),
        ([1 / k] * k, "divided by the number of micro-batches: the step still grows with the trained tokens."),
    ]
    for weights, hint in candidates:
        expected = sum(w * g for w, g in zip(weights, grads, strict=True))
        # Compared as whole vectors: float32 rounding is relative to the gradient's size, not to each entry's.
        if torch.linalg.vector_norm(got - expected) <= 1e-4 * torch.linalg.vector_norm(expected):
            if hint is not None:
                return WRONG, hint
            loss = number(loss, "the step's loss")
            if not math.isclose(loss, sum(sums) / total, rel_tol=1e-4):
                return WRONG, "the gradients are right; return the step's loss too, in nats per trained token."
            return CORRECT, "every trained token weighs the same: the gradient of one big batch."
    return WRONG, f"every trained token of the step must weigh the same, whichever micro-batch holds it: {_LOOP}."


def _weighted_inputs():
    """Per-target losses and two disjoint masks (reply targets, prompt targets), hidden from the learner."""
    generator = torch.Generator().manual_seed(11)
    nll = torch.rand(3, 12, generator=generator) * 8
    label_masks = torch.zeros(3, 12, dtype=torch.bool)
    label_masks[0, 8:] = label_masks[1, 3:5] = label_masks[2, 10:] = True
    prompt_masks = ~label_masks
    prompt_masks[2, :2] = False  # two untrained padding targets: in neither mask
    return nll, label_masks, prompt_masks


@exercise("07.2", "write the prompt-weighted loss: w times each prompt target, over the weighted count")
def _check_07_2(answer):
    if not callable(answer):
        raise Unreadable(f"expected your function (answer = prompt_weighted_loss), got {describe(answer)}")
    nll, reply, prompt = _weighted_inputs()
    s_reply, s_prompt, n_reply, n_prompt = nll[reply].sum(), nll[prompt].sum(), reply.sum(), prompt.sum()
    weights = (0.0, 0.1, 0.5, 1.0)
    signature = "answer(nll, label_masks, prompt_masks, w)"
    got = [number(call(answer, signature, nll.clone(), reply.clone(), prompt.clone(), w), "a loss") for w in weights]
    formulas = {
        "right": lambda w: (s_reply + w * s_prompt) / (n_reply + w * n_prompt),
        "the sum weighs each prompt target by w, but the count does not: count them the same way.": lambda w: (
            (s_reply + w * s_prompt) / (n_reply + n_prompt)
        ),
        "the weight belongs to the prompt's targets; the reply's always count fully.": lambda w: (
            (w * s_reply + s_prompt) / (w * n_reply + n_prompt)
        ),
        "that is the masked loss whatever w is; w must bring the prompt's targets in.": lambda w: s_reply / n_reply,
        "that is plain SFT's mean whatever w is; w = 0 must give the masked loss.": lambda w: (
            (s_reply + s_prompt) / (n_reply + n_prompt)
        ),
        "the count leaves the prompt's targets out: with w > 0 they are part of the mean.": lambda w: (
            (s_reply + w * s_prompt) / n_reply
        ),
    }
    for message, formula in formulas.items():
        if all(math.isclose(g, float(formula(w)), rel_tol=1e-5) for g, w in zip(got, weights, strict=True)):
            if message == "right":
                return CORRECT, "w = 0 gives the masked loss, w = 1 plain SFT's mean, and every w in between."
            return WRONG, message
    return WRONG, f"check your function at w = 0 (the masked loss) and w = 1 (plain SFT's mean): {_WEIGHT}."


W_07_3, TASK_07_3 = 0.1, "last_word"


@functools.cache
def _target_counts(task: str) -> tuple[int, int, int]:
    """(reply targets, prompt targets, conversations) of the task's training set as notebook 07 builds it."""
    from ...data.toy import toy_conversations
    from ...train.toy_run import TRAIN_CONVERSATIONS

    examples = [
        tokenize_conversation(c["messages"], tokenizer()) for c in toy_conversations(task, "train", TRAIN_CONVERSATIONS)
    ]
    reply = sum(sum(e["label_mask"][1:]) for e in examples)
    targets = sum(len(e["input_ids"]) - 1 for e in examples)
    return reply, targets - reply, len(examples)


@exercise("07.3", "predict the share of the prompt-weighted loss's weight that w = 0.1 gives the prompt of last_word")
def _check_07_3(answer):
    answer = number(answer, "a share (0.25 or 25 for a quarter)")
    answer = answer / 100 if 1 < answer <= 100 else answer
    reply, prompt, _ = _target_counts(TASK_07_3)
    truth = W_07_3 * prompt / (reply + W_07_3 * prompt)
    mistakes = [
        (W_07_3, "that is w itself; the prompt has far more targets than the reply, and each weighs w."),
        (
            prompt / (reply + prompt),
            "that is the prompt's share in plain SFT, w = 1; with w = 0.1 each prompt target weighs less.",
        ),
        (1 - truth, "that is the reply's share; the question asks for the prompt's."),
        (
            W_07_3 * prompt / reply,
            "that compares the prompt's weight with the reply's; the share is of the total weight.",
        ),
    ]

    def equal(a, b):
        return abs(a - b) <= 0.015  # a prediction from the share of tokens printed above is close enough

    right = (
        f"{truth:.1%} of the weight ({prompt:,} prompt targets × {W_07_3} against {reply:,} reply targets). A small w "
        "still hands a large share of every step to a prompt made of random words, which no model can learn: "
        "compare with what the experiment measures for prompt-loss weights."
    )
    general = f"{_WEIGHT}: each prompt target weighs w, each reply target 1. How many of each does last_word have?"
    return match(answer, truth, right, mistakes, general, equal=equal)
