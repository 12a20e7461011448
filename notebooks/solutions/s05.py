"""Solutions to notebook 05_project's exercises."""

import sft_utils


def ex_05_1() -> tuple[int, int, int]:
    config = sft_utils.pythia_config("pythia-14m")
    return (4, 37, config.vocab_size)  # [batch, seq, vocab_size]; vocab_size 50304 > len(tokenizer)


def ex_05_2() -> str:
    # The logits of 8 x 2048 tokens take 3.3 GB whatever the model (same vocabulary); the parameters grow with it.
    from sft_utils.models.pythia import PYTHIA_SIZES
    from sft_utils.scale.memory_estimate import parameter_count

    for size, (_, _, _, vocab_size) in PYTHIA_SIZES.items():  # from the smallest up
        if parameter_count(size) * 4 > 8 * 2048 * vocab_size * 4:  # float32: 4 bytes a value, on both sides
            return size  # pythia-1b: 4.0 GB of parameters against 3.3 GB of logits


def ex_05_3():
    def trained_logits(hidden, weight, label_masks):
        return hidden[label_masks] @ weight.t()  # select [N, hidden] first, then project: [N, vocab]
        # as right: torch.einsum("nh,vh->nv", hidden[label_masks], weight), or F.linear(hidden[label_masks], weight)

    return trained_logits
