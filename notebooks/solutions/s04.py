"""Solutions to notebook 04_shift's exercises."""

import sft_utils


def _hello():
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    conversations = {c["id"]: c for c in sft_utils.load_conversations(sft_utils.course_data_path())}
    return sft_utils.tokenize_conversation(conversations["memo-hello"]["messages"], tokenizer)


def ex_04_1() -> list[int]:
    return _hello()["input_ids"][1:]  # the next token at every position


def ex_04_3() -> list[int]:
    example = _hello()
    # Not shifted: model(labels=...) shifts inside its loss. -100 = ignore_index.
    return [i if on else -100 for i, on in zip(example["input_ids"], example["label_mask"])]


def ex_04_2():
    def shift(example):
        return {
            "input_ids": example["input_ids"][:-1],  # every token but the last is an input
            "targets": example["input_ids"][1:],  # each input's target is the next token
            "label_masks": example["label_mask"][1:],  # the mask moves with the targets
        }

    return shift
