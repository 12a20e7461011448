"""Solutions to notebook 01_format's exercises."""

from sft_utils.course.exercises import CHAT_01_2, SYSTEM_01_1


def ex_01_1() -> str:
    # By hand: system first, `user` is the prompter, and every message closes with <|endoftext|>.
    return (
        f"<|system|>{SYSTEM_01_1}<|endoftext|>"
        "<|prompter|>Hi!<|endoftext|>"
        "<|assistant|>Hello, how can I help?<|endoftext|>"
    )


def ex_01_2() -> str:
    # The whole conversation, then the assistant's marker: the model writes the reply and its <|endoftext|>.
    markers = {"prompter": "<|prompter|>", "assistant": "<|assistant|>"}
    return "".join(markers[m["role"]] + m["text"] + "<|endoftext|>" for m in CHAT_01_2) + "<|assistant|>"
