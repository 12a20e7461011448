"""Solutions to notebook 06b_chat_templates's exercises."""

from sft_utils.exercises import ZEPHYR

import sft_utils


def ex_06b_1():
    zephyr_tokenizer = sft_utils.load_tokenizer(chat_format=ZEPHYR, verbose=False)
    assistant, end = zephyr_tokenizer.convert_tokens_to_ids(["<|assistant|>", "</s>"])
    header = len(zephyr_tokenizer(ZEPHYR.marker("assistant"))["input_ids"])  # <|assistant|> and its newline: 2

    def zephyr_label_mask(input_ids):
        mask, reply = [], False
        for t, token in enumerate(input_ids):
            if token == assistant:  # only an inserted marker has this id: a typed one stays text
                reply, start = True, t + header
            mask.append(int(reply and t >= start))  # the header is the prompt: not trained
            if reply and t >= start and token == end:
                reply = False  # </s> is trained, the newline after it is not
        return mask

    return zephyr_label_mask


def ex_06b_2() -> int:
    # Prediction: ChatML trains 11 tokens of memo-hello; each of its 2 replies adds its header
    # '<|im_start|>assistant\n', 4 tokens (<|im_start|>, "ass", "istant", the newline): 11 + 2 x 4 = 19.
    import dataclasses

    from sft_utils import CHATML

    header_trained = dataclasses.replace(CHATML, train_marker=True, train_header=True)
    tokenizer = sft_utils.load_tokenizer(chat_format=CHATML, verbose=False)
    hello = next(c for c in sft_utils.load_conversations(sft_utils.course_data_path()) if c["id"] == "memo-hello")
    return sum(sft_utils.tokenize_conversation(hello["messages"], tokenizer, chat_format=header_trained)["label_mask"])
