"""Solutions to notebook 06_masked_loss's exercises."""

import math

import torch

import sft_utils
import sft_utils.course.exercises


def ex_06_1() -> float:
    batch = sft_utils.exercises.inputs("06.1")
    log_probs = torch.log_softmax(batch["logits"], dim=-1)
    nll = -log_probs.gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1)  # [B, T]
    mask = batch["label_masks"]
    return (nll[mask].sum() / mask.sum()).item()  # trained targets only, divided by their count


def ex_06_2() -> float:
    vocab_size = sft_utils.pythia_config("pythia-14m").vocab_size
    loss = math.log(vocab_size)  # uniform: -log(1 / V) nats at every position
    return math.exp(loss)  # = V


def ex_06_3() -> float:
    # Trained on every token, the loss is a mean over all targets: the reply's at -ln 0.9 nats each, every other
    # target at a uniform guess's ln(vocab_size). memo-hello once shifted: 27 targets, 13 of them the replies'.
    from sft_utils.exercises import P_REPLY_06_3

    tokenizer = sft_utils.load_tokenizer(verbose=False)
    hello = next(c for c in sft_utils.load_conversations(sft_utils.course_data_path()) if c["id"] == "memo-hello")
    shifted = sft_utils.shift_for_next_token(sft_utils.tokenize_conversation(hello["messages"], tokenizer))
    reply = sum(shifted["label_masks"])
    other = len(shifted["targets"]) - reply
    uniform = math.log(sft_utils.pythia_config("pythia-14m").vocab_size)
    return (reply * -math.log(P_REPLY_06_3) + other * uniform) / (reply + other)  # about 5.7 nats
