"""Step 4: shifting, and batching by length."""

import pytest
import torch

from sft_utils import AssistantOnlyCollator, CausalLMCollator, shift_for_next_token, tokenize_conversation
from sft_utils.steps.shift import labels_from_label_mask

SHORT = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]
LONG = [
    {"role": "prompter", "text": "Tell me a long story about a cat."},
    {"role": "assistant", "text": "Once upon a time a cat sat on a warm mat and slept all day long."},
]


def test_shift_on_lists_is_exact():
    example = {"input_ids": [10, 11, 12, 13], "attention_mask": [1, 1, 1, 1], "label_mask": [False, False, True, True]}
    assert shift_for_next_token(example) == {
        "input_ids": [10, 11, 12],
        "targets": [11, 12, 13],
        "label_masks": [False, True, True],
        "attention_mask": [1, 1, 1],
    }


def test_shift_on_a_batch_shifts_the_last_axis():
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    mask = torch.tensor([[False, True, True], [False, False, True]])
    out = shift_for_next_token({"input_ids": ids, "label_mask": mask})
    assert out["input_ids"].tolist() == [[1, 2], [4, 5]]
    assert out["targets"].tolist() == [[2, 3], [5, 6]]
    assert out["label_masks"].tolist() == [[True, True], [False, True]]


@pytest.mark.parametrize(
    "example, message",
    [
        ({"input_ids": [5], "label_mask": [True]}, "at least 2 tokens"),
        ({"input_ids": [5, 6]}, "example has no label_mask"),
        ({"input_ids": [5, 6], "label_mask": [True]}, "must have one shape"),
        ({"input_ids": [5, 6], "label_mask": [True, True], "attention_mask": [1]}, "must have one shape"),
        ({"input_ids": [[1, 2, 3], [4, 5, 6]], "label_mask": [[0, 1, 1], [0, 0, 1]]}, "nested lists"),
    ],
)
def test_shift_rejects_bad_examples(example, message):
    with pytest.raises(ValueError, match=message):
        shift_for_next_token(example)


def test_shift_refuses_lists_mixed_with_tensors():
    with pytest.raises(TypeError, match="mix of tensors and lists"):
        shift_for_next_token({"input_ids": torch.tensor([1, 2, 3]), "label_mask": [0, 1, 1]})


def test_first_reply_token_is_predicted_from_the_assistant_marker(tokenizer):
    example = tokenize_conversation(SHORT, tokenizer)
    shifted = shift_for_next_token(example)
    t = shifted["input_ids"].index(50280)
    assert shifted["targets"][t] == tokenizer("Hello")["input_ids"][0] and shifted["label_masks"][t]
    # and the marker itself is a trained target, predicted from the prompter's <|endoftext|>
    assert shifted["targets"][t - 1] == 50280 and shifted["input_ids"][t - 1] == 0 and shifted["label_masks"][t - 1]


def test_collator_pads_by_length_and_trains_the_short_replys_endoftext(tokenizer):
    short, long = (tokenize_conversation(m, tokenizer) for m in (SHORT, LONG))
    batch = AssistantOnlyCollator(tokenizer.pad_token_id)([short, long])
    n, L = len(short["input_ids"]), len(long["input_ids"])
    assert batch["input_ids"].shape == batch["targets"].shape == batch["label_masks"].shape == (2, L - 1)
    assert batch["input_ids"].dtype == batch["targets"].dtype == torch.long and batch["label_masks"].dtype == torch.bool
    # inputs 0..n-1 are real (the last one, <|endoftext|>, has a padding target); the rest is padding
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (L - 1 - n)
    assert batch["input_ids"][0, n:].tolist() == [1] * (L - 1 - n)  # <|padding|>
    # the short reply's closing <|endoftext|> (its last target) is trained; the padding after it is not
    assert batch["targets"][0, n - 2].item() == 0 and batch["label_masks"][0, n - 2]
    assert not batch["label_masks"][0, n - 1 :].any()
    expected = shift_for_next_token(short)
    assert batch["label_masks"][0, : n - 1].tolist() == expected["label_masks"]
    assert batch["targets"][0, : n - 1].tolist() == expected["targets"]


def test_collator_pads_with_endoftext_id_still_by_length(tokenizer):
    """Even a pad id equal to <|endoftext|> must not hide the real end of a reply."""
    short, long = (tokenize_conversation(m, tokenizer) for m in (SHORT, LONG))
    batch = AssistantOnlyCollator(pad_token_id=0)([short, long])
    n = len(short["input_ids"])
    assert batch["label_masks"][0].sum().item() == sum(shift_for_next_token(short)["label_masks"])
    assert batch["targets"][0, n - 2].item() == 0 and batch["label_masks"][0, n - 2]


def test_labels_convention_puts_minus_100_where_untrained(tokenizer):
    short, long = (tokenize_conversation(m, tokenizer) for m in (SHORT, LONG))
    batch = AssistantOnlyCollator(tokenizer.pad_token_id, convention="labels")([short, long])
    n = len(short["input_ids"])
    labels = batch["labels"][0].tolist()
    expected = [i if on else -100 for i, on in zip(short["input_ids"], short["label_mask"])]
    assert labels == expected + [-100] * (batch["labels"].shape[1] - n)
    assert batch["input_ids"].shape == batch["labels"].shape


@pytest.mark.parametrize("convention", ["labels", "shifted"])
def test_pad_to_multiple_of_applies_to_what_the_model_reads(tokenizer, convention):
    short = tokenize_conversation(SHORT, tokenizer)
    assert len(short["input_ids"]) % 8 != 0
    batch = AssistantOnlyCollator(1, pad_to_multiple_of=8, convention=convention)([short])
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"].shape[1] >= len(short["input_ids"]) - 1
    # 7 real tokens: all of them are inputs (the last one's target is padding)
    assert batch["attention_mask"][0].tolist() == [1] * len(short["input_ids"]) + [0]


@pytest.mark.parametrize("value", [0, -8, 2.5, "8", True])
def test_bad_pad_to_multiple_of_is_rejected(value):
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive int"):
        AssistantOnlyCollator(1, pad_to_multiple_of=value)


@pytest.mark.parametrize("convention", ["labels", "shifted"])
def test_collator_names_an_example_whose_lengths_differ(convention):
    good = {"input_ids": [5, 6, 7, 8], "label_mask": [0, 0, 1, 1]}
    bad = {"input_ids": [1, 2, 3, 4], "label_mask": [1, 1]}
    with pytest.raises(ValueError, match="example 1: .*one length"):
        AssistantOnlyCollator(1, convention=convention)([good, bad])


def test_collator_rejects_empty_and_unknown_convention():
    with pytest.raises(ValueError, match="empty list"):
        AssistantOnlyCollator(1)([])
    with pytest.raises(ValueError, match="convention must be"):
        AssistantOnlyCollator(1, convention="both")


def test_labels_from_label_mask():
    ids = torch.tensor([[7, 8, 9]])
    assert labels_from_label_mask(ids, torch.tensor([[False, True, True]])).tolist() == [[-100, 8, 9]]


def test_causal_lm_baseline_trains_every_real_token(tokenizer):
    short, long = (tokenize_conversation(m, tokenizer) for m in (SHORT, LONG))
    batch = CausalLMCollator(tokenizer)([short, long])
    n = len(short["input_ids"])
    assert batch["labels"][0, :n].tolist() == short["input_ids"]  # prompt included, <|endoftext|> kept
    assert batch["labels"][0, n:].eq(-100).all() and batch["labels"][1].tolist() == long["input_ids"]


def test_causal_lm_baseline_refuses_pad_equal_to_eos(tokenizer):
    import copy

    bad = copy.deepcopy(tokenizer)
    bad.pad_token = bad.eos_token
    with pytest.raises(ValueError, match="differ from eos"):
        CausalLMCollator(bad)
