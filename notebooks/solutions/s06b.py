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
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    return sft_utils.pythia_config("pythia-14m").vocab_size - len(tokenizer)  # 50 304 - 50 282
