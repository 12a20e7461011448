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
