"""Packing (sft_utils.scale.packing): exact rows, masks and seams; the loss check is in test_regressions.py (item 7)."""

import pytest
import torch

from sft_utils import PackedCollator, pack_examples
from sft_utils.scale.packing import block_causal_mask, group_by_length

A = {"input_ids": [10, 11, 12], "label_mask": [False, True, True]}
B = {"input_ids": [20, 21, 22, 23], "label_mask": [False, False, True, True]}


def test_pack_examples_restarts_positions_and_numbers_segments():
    assert pack_examples([A, B]) == {
        "input_ids": [10, 11, 12, 20, 21, 22, 23],
        "label_mask": [False, True, True, False, False, True, True],
        "position_ids": [0, 1, 2, 0, 1, 2, 3],
        "segment_ids": [0, 0, 0, 1, 1, 1, 1],
    }


def test_collator_masks_the_seam_and_pads_a_shorter_row():
    batch = PackedCollator(pad_token_id=1)([[A, B], [B]])
    assert batch["input_ids"].tolist() == [[10, 11, 12, 20, 21, 22], [20, 21, 22, 23, 1, 1]]
    assert batch["targets"].tolist() == [[11, 12, 20, 21, 22, 23], [21, 22, 23, 1, 1, 1]]
    # target 20 (B's first token, predicted from A's last) is never trained, even if B's mask said so
    assert batch["label_masks"].tolist() == [[True, True, False, False, True, True], [False, True, True] + [False] * 3]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 0]]
    assert batch["segment_ids"].tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, -1, -1]]
    assert batch["attention_mask"].shape == (2, 1, 6, 6) and batch["attention_mask"].dtype == torch.float32
    allowed = block_causal_mask(batch["segment_ids"])
    assert (batch["attention_mask"][allowed] == 0).all()
    assert (batch["attention_mask"][~allowed] == torch.finfo(torch.float32).min).all()


def test_a_seam_is_masked_even_when_the_next_segment_starts_trained():
    trained_start = {"input_ids": [30, 31], "label_mask": [True, True]}
    batch = PackedCollator()([[A, trained_start]])
    assert batch["targets"][0].tolist() == [11, 12, 30, 31]
    assert batch["label_masks"][0].tolist() == [True, True, False, True]


def test_block_causal_mask_is_causal_within_segments_only():
    mask = block_causal_mask(torch.tensor([[0, 0, 1, 1, -1]]))[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],  # padding attends to itself: no empty softmax row, no NaN
    ]


def test_group_by_length_is_greedy_in_order():
    assert group_by_length([5, 4, 3, 7], max_length=9) == [[0, 1], [2], [3]]
    assert group_by_length([3, 3, 3], max_length=9) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="example 1 has 10 tokens, more than max_length=9"):
        group_by_length([3, 10], max_length=9)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([], "empty list of rows"),
        ([[]], "empty list of examples"),
        ([[{"input_ids": [1, 2], "label_mask": [1]}]], "example 0"),
        # Before: a KeyError 'input_ids'; an empty [1, 0] batch.
        ([[{"input_ids": [1, 2]}], [{}]], r"row 0, example 0: expected a dict with 'input_ids' and 'label_mask'"),
        ([[{"input_ids": [5], "label_mask": [True]}]], "every row has a single token"),
    ],
)
def test_bad_rows_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        PackedCollator()(rows)


def test_examples_not_wrapped_in_a_row_are_refused():
    """Before: 'string indices must be integers' from inside pack_examples."""
    example = {"input_ids": [5, 6, 7], "label_mask": [0, 1, 1]}
    with pytest.raises(TypeError, match=r"row 0: expected a list of examples, got dict; one row is \[examples\]"):
        PackedCollator()([example])


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_each_segment_sees_only_itself_with_either_attention(tokenizer, course_conversations, attention):
    """The additive 4D mask is read alike by GPT-NeoX's eager and sdpa attention (a bool one is not)."""
    from transformers import GPTNeoXForCausalLM

    from sft_utils import pythia_config, tokenize_conversation

    config = pythia_config("pythia-14m")
    config._attn_implementation = attention
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(config).eval()
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations[1:3]]
    batch = PackedCollator()([examples])
    with torch.no_grad():
        packed = model(batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"])
        second = model(torch.tensor([examples[1]["input_ids"][:-1]]))
    n = len(examples[0]["input_ids"])
    torch.testing.assert_close(packed.logits[0, n:], second.logits[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("full_logits", [False, True], ids=["chunked", "full-logits"])
def test_evaluate_takes_a_packed_batch(tokenizer, tiny_model, course_conversations, full_logits):
    """Both loss paths pass position_ids: evaluating packed rows = evaluating the conversations apart."""
    from sft_utils import AssistantOnlyCollator, tokenize_conversation
    from sft_utils.train import evaluate

    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations[:4]]
    packed = PackedCollator()([examples[:2], examples[2:]])
    apart = [AssistantOnlyCollator()([e]) for e in examples]
    together = evaluate(tiny_model, [packed], full_logits=full_logits)
    assert together == pytest.approx(evaluate(tiny_model, apart, full_logits=full_logits), rel=1e-5)


@pytest.mark.parametrize("full_logits", [False, True], ids=["chunked", "full-logits"])
def test_both_loss_paths_hand_position_ids_to_the_model(tokenizer, tiny_model, course_conversations, full_logits):
    """Rotary positions are relative, so restarting them per segment changes little in GPT-NeoX; this
    checks that the batch's ``position_ids`` reach the model at all (a model with absolute positions needs
    them): all-zero positions must give a different loss."""
    from sft_utils import tokenize_conversation
    from sft_utils.train.step import masked_loss_sum

    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations[:2]]
    packed = PackedCollator()([examples])
    zeroed = {**packed, "position_ids": torch.zeros_like(packed["position_ids"])}
    with torch.no_grad():
        loss, _ = masked_loss_sum(tiny_model, packed, full_logits=full_logits)
        loss_zeroed, _ = masked_loss_sum(tiny_model, zeroed, full_logits=full_logits)
    assert abs(loss.item() - loss_zeroed.item()) > 1e-3
