"""Solutions to notebook 05_project's exercises."""

import sft_utils


def ex_05_1() -> tuple[int, int, int]:
    config = sft_utils.pythia_config("pythia-14m")
    return (4, 37, config.vocab_size)  # [batch, seq, vocab_size]; vocab_size 50304 > len(tokenizer)


def ex_05_2() -> float:
    vocab_size = sft_utils.pythia_config("pythia-14m").vocab_size
    return 8 * 2048 * vocab_size * 4 / 1e9  # float32: 4 bytes a value


def ex_05_3():
    def trained_logits(hidden, weight, label_masks):
        return hidden[label_masks] @ weight.t()  # select [N, hidden] first, then project: [N, vocab]

    return trained_logits
