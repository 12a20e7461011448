"""Solutions to notebook 08_finetune_pythia's exercises."""

from sft_utils.course.exercises import COUNTS_08_1


def ex_08_1() -> int:
    return sum(COUNTS_08_1)  # the step's trained targets: same gradient as one big batch


def ex_08_2() -> int:
    # Each linear layer gets A [r, in] and B [out, r]: r x (in + out) parameters, linear in r and in the width;
    # every layer has the same four. pythia-160m (768 wide, 12 layers) against pythia-14m (128 wide, 6 layers),
    # r = 16 against 8: 98 304 x 6 x 2 x 2.
    from sft_utils.models.pythia import PYTHIA_SIZES

    hidden, layers, _, _ = PYTHIA_SIZES["pythia-160m"]
    in_out = {
        "query_key_value": (hidden, 3 * hidden),
        "dense": (hidden, hidden),
        "dense_h_to_4h": (hidden, 4 * hidden),
        "dense_4h_to_h": (4 * hidden, hidden),
    }
    return layers * sum(16 * (i + o) for i, o in in_out.values())  # 2 359 296


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
