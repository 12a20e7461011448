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


def ex_04_2() -> int:
    # Prediction: the unshifted mask is one position late at each edge of a reply. It skips the target
    # <|assistant|> (its input, the prompter's <|endoftext|>, is untrained) and trains the target after the
    # reply's <|endoftext|>, the next <|prompter|>. memo-riddle: 3 replies, 2 followed by a prompter: 3 + 2.
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    conversations = {c["id"]: c for c in sft_utils.load_conversations(sft_utils.course_data_path())}
    example = sft_utils.tokenize_conversation(conversations["memo-riddle"]["messages"], tokenizer)
    right, broken = example["label_mask"][1:], example["label_mask"][:-1]  # check it: compare the two masks
    return sum(r != b for r, b in zip(right, broken))
