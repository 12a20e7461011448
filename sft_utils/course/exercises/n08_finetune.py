"""Exercises of notebook 08_finetune_pythia: accumulation's divisor, LoRA's size, padding by length."""

from __future__ import annotations

from ...steps.mask import tokenize_conversation
from ...steps.shift import AssistantOnlyCollator
from .core import HIDDEN, check_function, conversation, exercise, match, number, tokenizer
from .n03_mask import merged

COUNTS_08_1 = [12, 30, 18, 40]
_ACCUMULATION = "reread notebook 08's 'Several micro-batches per step'"


@exercise("08.1", "accumulating 4 micro-batch losses with reduction='sum': divide their summed gradient by what?")
def _check_08_1(answer):
    answer = number(answer, "the divisor")
    truth = sum(COUNTS_08_1)
    mistakes = [
        (
            len(COUNTS_08_1),
            (
                "that is the number of micro-batches: with summed losses every token still weighs the same, but the "
                "step is many times too large. Divide by what one big batch's mean divides by."
            ),
        ),
        (truth / len(COUNTS_08_1), "the mean count per micro-batch: the step would be four times too large."),
        (1, "without dividing, the step size grows with the number of trained tokens."),
        (max(COUNTS_08_1), "that is the largest micro-batch's count; every micro-batch's targets are in the step."),
    ]
    general = f"the gradient must equal that of one big batch's mean loss: {_ACCUMULATION}."
    right = "the step's total count of trained targets: the same gradient as one big batch."
    return match(answer, truth, right, mistakes, general)


SIZE_08_2, R_08_2 = "pythia-160m", 16


@exercise("08.2", "predict the trainable parameters of LoRA with lora_r=16 on pythia-160m, from pythia-14m's at r = 8")
def _check_08_2(answer):
    from ...models.pythia import PYTHIA_SIZES
    from ...scale.memory_estimate import lora_trainable_parameters, parameter_count

    answer = number(answer, "a count of parameters")
    small = "pythia-14m"
    (hidden, layers, _, _), (small_hidden, small_layers, _, _) = PYTHIA_SIZES[SIZE_08_2], PYTHIA_SIZES[small]
    truth = lora_trainable_parameters(SIZE_08_2, r=R_08_2)
    base = lora_trainable_parameters(small, r=8)
    width, depth, rank = hidden / small_hidden, layers / small_layers, R_08_2 / 8
    mistakes = merged(
        [
            (base, "that is pythia-14m's count at r = 8; both the model and the rank change."),
            (base * rank, "r doubled doubles the adapters, right; the model is larger too: wider and deeper."),
            (base * width * depth, "that is pythia-160m at r = 8; the rank doubles too."),
            (
                base * rank * width,
                "the width and the rank are in; pythia-160m also has more layers, each with adapters.",
            ),
            (base * rank * depth, "the depth and the rank are in; each layer of pythia-160m is also wider."),
            (
                base * rank * width**2 * depth,
                "LoRA's two matrices are thin, rank × width: they grow with the width, not with its square.",
            ),
            (base * rank**2 * width * depth, "the adapters grow linearly with r: A is r × in, B is out × r."),
            (parameter_count(SIZE_08_2), "that is every parameter of pythia-160m; LoRA trains only its adapters."),
        ]
    )

    def equal(a, b):
        return abs(a - b) <= 0.01 * b  # a prediction to 1%

    general = (
        "reread the LoRA paragraph: what shapes do the two adapter matrices of one linear layer have, and how "
        "many such layers does a model hold? Then scale pythia-14m's count."
    )
    right = (
        f"{truth:,}: linear in r, in the width and in the number of layers, so {rank:g} × {width:g} × {depth:g} times "
        "pythia-14m's count. Still "
        f"{truth / parameter_count(SIZE_08_2):.1%} of the model's {parameter_count(SIZE_08_2):,}."
    )
    return match(answer, truth, right, mistakes, general, equal=equal)


@exercise("08.3", "write a padding collator for a tokenizer whose pad id is <|endoftext|>'s, 0")
def _check_08_3(answer):
    tok = tokenizer()
    examples = [tokenize_conversation(list(c), tok) for c in HIDDEN]
    examples.append(tokenize_conversation(list(conversation("memo-hello")), tok))
    cases = [(examples[:2], 0), (examples[1:], 0)]

    def by_id(examples, pad_id):
        batch = AssistantOnlyCollator(pad_id).pad(examples)
        batch["attention_mask"] = (batch["input_ids"] != pad_id).long()
        batch["label_mask"] = batch["label_mask"] & (batch["input_ids"] != pad_id)
        return batch

    mistakes = [
        (
            by_id,
            (
                "padding found by id: every reply's real <|endoftext|> has the pad id too, so it is masked out and "
                "the model never learns to stop. Pad by length."
            ),
        ),
    ]
    return check_function(
        answer,
        "pad_batch",
        "answer(examples, pad_id)",
        cases,
        lambda examples, pad_id: AssistantOnlyCollator(pad_id).pad(examples),
        mistakes,
        "compare your three tensors with the ones notebook 04 pads, row by row; its appendix, fault 1, shows why "
        "the pad id cannot tell padding from a real <|endoftext|>.",
        "padding is found by length, so each reply's closing <|endoftext|> stays trained.",
    )
