"""Solutions to notebook 08_finetune_pythia's exercises."""

import sft_utils
from sft_utils.course.exercises import COUNTS_08_1


def ex_08_1() -> int:
    return sum(COUNTS_08_1)  # the step's trained targets: same gradient as one big batch


def ex_08_2() -> int:
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    return tokenizer.convert_tokens_to_ids("<|assistant|>")  # 50280


def ex_08_3():
    import torch

    def pad_batch(examples, pad_id):
        width = max(len(e["input_ids"]) for e in examples)
        rows = {"input_ids": [], "attention_mask": [], "label_mask": []}
        for e in examples:
            gap = width - len(e["input_ids"])  # padding is found by length, never by id
            rows["input_ids"].append(list(e["input_ids"]) + [pad_id] * gap)
            rows["attention_mask"].append([1] * len(e["input_ids"]) + [0] * gap)
            rows["label_mask"].append([bool(m) for m in e["label_mask"]] + [False] * gap)
        return {k: torch.tensor(v) for k, v in rows.items()}

    return pad_batch
