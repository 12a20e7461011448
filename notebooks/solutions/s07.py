"""Solutions to notebook 07_train_it_yourself's exercises."""

from sft_utils.train import masked_loss_sum


def ex_07_1():
    def accumulate(model, micro_batches):
        total = sum(int(b["label_masks"].sum()) for b in micro_batches)  # known before any forward pass
        step_loss = 0.0
        for batch in micro_batches:
            loss_sum, _ = masked_loss_sum(model, batch)
            (loss_sum / total).backward()  # every token weighs 1 / total, whichever micro-batch it is in
            step_loss += loss_sum.item()
        return step_loss / total

    return accumulate


def ex_07_2():
    def prompt_weighted_loss(nll, label_masks, prompt_masks, w):
        total = nll[label_masks].sum() + w * nll[prompt_masks].sum()
        return (total / (label_masks.sum() + w * prompt_masks.sum())).item()

    return prompt_weighted_loss


def ex_07_3() -> float:
    # Each prompt target weighs w = 0.1, each reply target 1. last_word: about 8 reply targets and 20 prompt
    # targets per conversation (27% of the tokens are trained), so 0.1 x 20 / (8 + 0.1 x 20): a fifth.
    from sft_utils.exercises import TASK_07_3, W_07_3

    import sft_utils
    from sft_utils.data.toy import toy_conversations

    tokenizer = sft_utils.load_tokenizer(verbose=False)
    examples = [
        sft_utils.tokenize_conversation(c["messages"], tokenizer) for c in toy_conversations(TASK_07_3, "train", 4000)
    ]
    reply = sum(sum(e["label_mask"][1:]) for e in examples)  # targets: the first token is never one
    prompt = sum(len(e["input_ids"]) - 1 for e in examples) - reply
    return W_07_3 * prompt / (reply + W_07_3 * prompt)
