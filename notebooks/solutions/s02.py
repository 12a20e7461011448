"""Solutions to notebook 02_tokenize's exercises."""

import sft_utils
from sft_utils.course.exercises import TEXT_02_1


def ex_02_1() -> list[int]:
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    # split_special_tokens=True: the typed "<|assistant|>" stays plain text, not id 50280.
    return tokenizer(TEXT_02_1, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def ex_02_2() -> int:
    # Every message closes with <|endoftext|>. Were it the pad id, "padding is where input_ids == pad_id" would
    # take each message's closing token for padding: one per message, 6 in memo-riddle.
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    riddle = next(c for c in sft_utils.load_conversations(sft_utils.course_data_path()) if c["id"] == "memo-riddle")
    input_ids = sft_utils.tokenize_conversation(riddle["messages"], tokenizer)["input_ids"]
    return input_ids.count(tokenizer.eos_token_id)  # check the prediction: count the ids equal to 0


def ex_02_3():
    def encode_messages(messages, tokenizer):
        ids = []
        for message in messages:
            ids.append(tokenizer.convert_tokens_to_ids(f"<|{message['role']}|>"))  # the real marker
            ids += tokenizer(message["text"], split_special_tokens=True)["input_ids"]  # typed markers stay text
            ids.append(tokenizer.eos_token_id)  # <|endoftext|> closes every message
        return ids

    return encode_messages
