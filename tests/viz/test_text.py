import pytest

from sft_utils.viz import aligned_table, token_strings


def test_aligned_table_matches_the_memo_layout():
    table = aligned_table(
        {"TEXT": ["Hello", ",", "␣how"], "MESSAGE_INDICES": [0, 0, 1], "LABEL_MASK": [False, False, True]}
    )
    assert table == ("TEXT:            Hello , ␣how\nMESSAGE_INDICES: 0     0 1\nLABEL_MASK:      0     0 1")


def test_aligned_table_wraps_into_blocks():
    table = aligned_table({"T": ["abcd"] * 5, "M": [1] * 5}, width=15)
    blocks = table.split("\n\n")
    assert len(blocks) == 3 and blocks[0] == "T: abcd abcd\nM: 1    1"


def test_wide_characters_take_two_columns():
    table = aligned_table({"T": ["茶", "a"], "M": [0, 1]})
    assert table.splitlines() == ["T: 茶 a", "M: 0  1"]


def test_rows_of_different_length_are_an_error():
    with pytest.raises(ValueError, match="rows differ in length"):
        aligned_table({"a": [1], "b": [1, 2]})


def test_token_strings_show_whitespace(tokenizer):
    ids = tokenizer("Hi there\n\tok", add_special_tokens=False)["input_ids"]
    assert "".join(token_strings(tokenizer, ids)) == "Hi␣there↵⇥ok"
    assert token_strings(tokenizer, [50280, 0]) == ["<|assistant|>", "<|endoftext|>"]


def test_tensors_print_as_numbers_and_no_rows_as_nothing():
    import torch

    assert aligned_table({"M": torch.tensor([True, False]), "I": torch.tensor([3, 4])}) == "M: 1 0\nI: 3 4"
    assert aligned_table({}) == ""


def test_invisible_characters_are_shown_by_code_point(tokenizer):
    ids = tokenizer("a\u200bb\u2028c\x0bd", add_special_tokens=False)["input_ids"]
    assert "".join(token_strings(tokenizer, ids)) == "a⟨U+200B⟩b⟨U+2028⟩c⟨U+000B⟩d"
