"""Exercises of notebook 05_project: the logits' shape, what they cost against the model, select-then-project."""

from __future__ import annotations

import torch

from ...models.pythia import PYTHIA_SIZES, pythia_size
from .core import CORRECT, WRONG, Unreadable, check_function, describe, exercise, ints, match, pythia_14m, tokenizer

BATCH_05_2, SEQ_05_2 = 8, 2048
_COST_SECTION = "reread notebook 05's 'What the logits cost'"


@exercise("05.1", "the shape of pythia-14m's logits for input_ids of shape [4, 37]")
def _check_05_1(answer):
    if torch.is_tensor(answer) or not isinstance(answer, (tuple, list, torch.Size)):
        raise Unreadable(f"expected a shape such as (1, 2, 3), got {describe(answer)}")
    answer = tuple(ints(list(answer), "a shape"))
    config = pythia_14m()
    truth = (4, 37, config.vocab_size)
    mistakes = [
        (
            (4, 37, len(tokenizer())),
            (
                "that last size is len(tokenizer); the head has more rows than the tokenizer has tokens "
                "(notebook 05, 'Where the head lives')."
            ),
        ),
        (
            (4, 37, config.hidden_size),
            "that is the hidden state before the head; the head maps it to one score per token.",
        ),
        ((37, 4, config.vocab_size), "the batch comes first, then the positions."),
        ((4, 36, config.vocab_size), "the model does not shift: one row of logits per input position."),
    ]
    general = "one score per row of the head at every input position: reread 'Hidden states → logits'."
    right = "[batch, seq, vocab_size]: one score per vocabulary entry per position."
    return match(answer, truth, right, mistakes, general)


def _nbytes() -> dict[str, tuple[int, int]]:
    """Each Pythia size -> (bytes of its float32 parameters, bytes of its float32 logits for 8 x 2048 tokens)."""
    from ...scale.memory_estimate import parameter_count
    from ...steps.project import logits_nbytes

    return {
        name: (parameter_count(name) * 4, logits_nbytes(BATCH_05_2, SEQ_05_2, vocab))
        for name, (_, _, _, vocab) in PYTHIA_SIZES.items()
    }


@exercise(
    "05.2",
    "change the model and predict: the smallest Pythia whose float32 parameters take more memory than its float32 "
    "logits for a batch of 8 x 2048 tokens",
)
def _check_05_2(answer):
    if not isinstance(answer, str):
        raise Unreadable(f"expected a Pythia size as a string, such as 'pythia-160m', got {describe(answer)}")
    name = pythia_size(answer.strip()) or pythia_size("pythia-" + answer.strip())
    if name is None:
        raise Unreadable(f"expected a Pythia size such as 'pythia-160m' (see PYTHIA_SIZES); got {answer!r}")
    sizes = _nbytes()
    order = list(sizes)
    truth = next(n for n in order if sizes[n][0] > sizes[n][1])
    if name == truth:
        params, logits = sizes[name]
        return CORRECT, (
            f"{name}: {params / 1e9:.1f} GB of parameters against {logits / 1e9:.1f} GB of logits. Every smaller "
            "Pythia has the same vocabulary, so the same logits: they outweigh the whole model."
        )
    if order.index(name) < order.index(truth):
        return WRONG, (
            f"{name}'s float32 parameters take less memory than those logits. The logits do not shrink with the "
            f"model (the vocabulary is the same): {_COST_SECTION}, then go up in size."
        )
    return WRONG, (
        f"{name}'s parameters do outweigh the logits, but so do a smaller Pythia's. Parameters are float32 too, "
        "4 bytes each, like the logits: compare bytes with bytes."
    )


def _projection_cases():
    generator = torch.Generator().manual_seed(5)
    cases = []
    for batch, length, width, vocab in ((2, 5, 4, 11), (3, 4, 6, 7), (2, 9, 32, 50)):
        hidden = torch.randn(batch, length, width, generator=generator)
        weight = torch.randn(vocab, width, generator=generator)
        label_masks = torch.rand(batch, length, generator=generator) < 0.4
        label_masks[0, 1] = True
        cases.append((hidden, weight, label_masks))
    return cases


@exercise("05.3", "write select-then-project: the logits of the trained rows only, [N, vocab]")
def _check_05_3(answer):
    mistakes = [
        (
            lambda h, w, m: h @ w.t(),
            "that projects every position, [B, T, vocab]: keep only the trained rows, and before the head.",
        ),
        (lambda h, w, m: h[~m] @ w.t(), "those are the untrained rows: keep the ones where label_masks is True."),
        (
            lambda h, w, m: (h @ w.t()) * m.unsqueeze(-1),
            (
                "that projects every position and zeroes the untrained ones: [B, T, vocab] still. The result has one "
                "row per trained position only."
            ),
        ),
    ]
    return check_function(
        answer,
        "trained_logits",
        "answer(hidden, weight, label_masks)",
        _projection_cases(),
        lambda h, w, m: h[m] @ w.t(),
        mistakes,
        (
            "two steps, in this order: keep the N trained rows of the hidden states, then apply the head to them "
            "(reread 'Performance: select the trained rows, then project')."
        ),
        "select, then project: N rows through the head instead of B × T.",
    )
