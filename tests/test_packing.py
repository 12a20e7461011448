"""Packing (sft_utils.packing): exact rows, masks and seams; the loss check is in test_regressions.py (item 7)."""

import pytest
import torch

from sft_utils import PackedCollator, pack_examples
from sft_utils.packing import block_causal_mask, group_by_length

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
    assert batch["attention_mask"].shape == (2, 1, 6, 6) and batch["attention_mask"].dtype == torch.bool


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
    ],
)
def test_bad_rows_are_refused(rows, message):
    with pytest.raises(ValueError, match=message):
        PackedCollator()(rows)
