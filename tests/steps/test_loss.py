"""Step 6: the memo's masked cross-entropy against independent references."""

import math

import pytest
import torch
import torch.nn.functional as F

from sft_utils import AssistantOnlyCollator, MaskedCrossEntropyLoss, tokenize_conversation
from sft_utils.steps.shift import IGNORE_INDEX


def reference_loss(logits, targets, mask):
    """Plain-Python log-sum-exp, independent of torch's softmax."""
    total, count = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if mask[b, t]:
                row = logits[b, t].tolist()
                top = max(row)
                total += top + math.log(sum(math.exp(x - top) for x in row)) - row[int(targets[b, t])]
                count += 1
    return total / count


@pytest.fixture
def random_batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64).float() * 3
    targets = torch.randint(0, 11, (3, 7), generator=g)
    mask = torch.rand(3, 7, generator=g) < 0.5
    return logits, targets, mask


def test_equals_plain_python_reference(random_batch):
    logits, targets, mask = random_batch
    loss = MaskedCrossEntropyLoss()(logits, targets, mask)
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert loss.item() == pytest.approx(reference_loss(logits, targets, mask), abs=1e-5)


def test_equals_cross_entropy_with_ignore_index(random_batch):
    logits, targets, mask = random_batch
    labels = torch.where(mask, targets, IGNORE_INDEX)
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
    assert MaskedCrossEntropyLoss()(logits, targets, mask).item() == pytest.approx(expected.item(), abs=1e-6)


def test_sum_and_none_reductions(random_batch):
    logits, targets, mask = random_batch
    per_token = MaskedCrossEntropyLoss("none")(logits, targets, mask)
    assert per_token.shape == (3, 7) and (per_token[~mask] == 0).all()
    total = MaskedCrossEntropyLoss("sum")(logits, targets, mask)
    assert total.item() == pytest.approx(per_token.sum().item(), abs=1e-5)
    assert total.item() / mask.sum().item() == pytest.approx(MaskedCrossEntropyLoss()(logits, targets, mask).item())


def test_empty_mask_gives_zero_not_nan_and_zero_gradients(random_batch):
    logits, targets, _ = random_batch
    logits = logits.clone().requires_grad_()
    loss = MaskedCrossEntropyLoss()(logits, targets, torch.zeros_like(targets, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("bad", [-float("inf"), float("inf"), float("nan")])
def test_non_finite_logits_at_untrained_positions_reach_neither_loss_nor_gradient(random_batch, bad):
    logits, targets, mask = random_batch
    b, t = (~mask).nonzero()[0].tolist()
    logits = logits.clone()
    logits[b, t, :] = bad
    logits.requires_grad_()
    loss = MaskedCrossEntropyLoss()(logits, targets, mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(reference_loss(random_batch[0], targets, mask), abs=1e-5)


def test_untrained_targets_may_be_minus_100(random_batch):
    logits, targets, mask = random_batch
    loss = MaskedCrossEntropyLoss()(logits, torch.where(mask, targets, IGNORE_INDEX), mask)
    assert loss.item() == pytest.approx(reference_loss(logits, targets, mask), abs=1e-5)


def test_a_trained_target_outside_the_vocabulary_is_an_error(random_batch):
    logits, targets, mask = random_batch
    with pytest.raises(ValueError, match="masked target is outside 0..10"):
        MaskedCrossEntropyLoss()(logits, torch.where(mask, 11, targets), mask)


def test_none_reduction_places_losses_at_their_positions(random_batch):
    logits, targets, mask = random_batch
    per_token = MaskedCrossEntropyLoss("none")(logits, targets, mask)
    b, t = mask.nonzero()[0].tolist()
    assert per_token[b, t].item() == pytest.approx(
        reference_loss(logits[b : b + 1, t : t + 1], targets[b : b + 1, t : t + 1], mask[b : b + 1, t : t + 1]),
        abs=1e-5,
    )


def test_lists_are_refused(random_batch):
    logits, targets, mask = random_batch
    with pytest.raises(TypeError, match="mask must be a torch.Tensor, got list"):
        MaskedCrossEntropyLoss()(logits, targets, mask.tolist())


def test_bf16_logits_are_scored_in_float32(random_batch):
    logits, targets, mask = random_batch
    loss = MaskedCrossEntropyLoss()(logits.bfloat16(), targets, mask)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference_loss(logits.bfloat16().float(), targets, mask), abs=1e-5)


def test_shape_mismatch_is_an_error(random_batch):
    logits, targets, mask = random_batch
    with pytest.raises(ValueError, match="shapes differ"):
        MaskedCrossEntropyLoss()(logits, targets[:, :-1], mask[:, :-1])
    with pytest.raises(ValueError, match="reduction must be"):
        MaskedCrossEntropyLoss("avg")


def test_equals_gpt_neox_labels_loss_on_the_same_batch(tokenizer, tiny_model, course_conversations):
    """Both conventions of step 4 through the real model: the memo's loss == model(labels=...).loss."""
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations[:4]]
    shifted = AssistantOnlyCollator(tokenizer.pad_token_id)(examples)
    hf = AssistantOnlyCollator(tokenizer.pad_token_id, convention="labels")(examples)
    with torch.no_grad():
        logits = tiny_model(input_ids=shifted["input_ids"], attention_mask=shifted["attention_mask"]).logits
        ours = MaskedCrossEntropyLoss()(logits, shifted["targets"], shifted["label_masks"])
        theirs = tiny_model(**hf).loss
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert 9.0 < ours.item() < 12.0  # random weights: about ln(50304) = 10.8 nats


def test_mask_values_other_than_0_and_1_are_refused(random_batch):
    logits, targets, mask = random_batch
    assert MaskedCrossEntropyLoss()(logits, targets, mask.long()).item() == pytest.approx(
        MaskedCrossEntropyLoss()(logits, targets, mask).item()
    )
    with pytest.raises(ValueError, match="mask must be bool or hold only 0 and 1"):
        MaskedCrossEntropyLoss()(logits, targets, mask.float() * 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_targets_must_be_integer_ids(random_batch, dtype):
    logits, targets, mask = random_batch
    with pytest.raises(TypeError, match="targets must be token ids"):
        MaskedCrossEntropyLoss()(logits, targets.to(dtype), mask)
