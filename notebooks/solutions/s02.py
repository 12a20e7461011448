"""Solutions to notebook 02_tokenize's exercises."""

import sft_utils
from sft_utils.course.exercises import TEXT_02_1


def ex_02_1() -> list[int]:
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    # split_special_tokens=True: the typed "<|assistant|>" stays plain text, not id 50280.
    return tokenizer(TEXT_02_1, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def ex_02_2() -> tuple[int, int]:
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    return tokenizer.eos_token_id, tokenizer.pad_token_id  # (0, 1)


def ex_02_3():
    def encode_messages(messages, tokenizer):
        ids = []
        for message in messages:
            ids.append(tokenizer.convert_tokens_to_ids(f"<|{message['role']}|>"))  # the real marker
            ids += tokenizer(message["text"], split_special_tokens=True)["input_ids"]  # typed markers stay text
            ids.append(tokenizer.eos_token_id)  # <|endoftext|> closes every message
        return ids

    return encode_messages
