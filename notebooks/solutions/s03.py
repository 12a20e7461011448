"""Solutions to notebook 03_mask's exercises."""

import sft_utils


def _messages(conversation_id):
    return next(
        c["messages"] for c in sft_utils.load_conversations(sft_utils.course_data_path()) if c["id"] == conversation_id
    )


def ex_03_1() -> list[int]:
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    # Marker, text and closing <|endoftext|> of each message; 1 when the message is the assistant's.
    mask = []
    for m in _messages("memo-hello"):
        text_ids = tokenizer(m["text"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        mask += [int(m["role"] == "assistant")] * (len(text_ids) + 2)
    return mask


def ex_03_2() -> int:
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    return sum(sft_utils.tokenize_conversation(_messages("memo-riddle"), tokenizer)["label_mask"])


def ex_03_3() -> float:
    # Prediction: the system message (its marker, text and <|endoftext|>) is message 0 and never trained, so the
    # trained count stays and the total grows: the share falls. Then check it by running the change.
    from sft_utils.exercises import SYSTEM_03_3

    tokenizer = sft_utils.load_tokenizer(verbose=False)
    example = sft_utils.tokenize_conversation(_messages("memo-riddle"), tokenizer, system=SYSTEM_03_3)
    return sum(example["label_mask"]) / len(example["input_ids"])
