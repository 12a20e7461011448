"""Bad or unusual input gives a clear error or a documented, correct mask; never a silent wrong one.

The validation rules themselves (formatting.normalize_messages) are tested one by one in
test_formatting.py; here they are checked through tokenize_conversation, the path to training, together
with the cases that are not errors: literal markers, Unicode, very long messages and truncation.

The last sections give every public function input of the wrong kind, shaped as data really arrives (one
example where a list goes, token lists, a [1, T] tensor, a tokenizer's name, one conversation where a list of
them goes): each is refused with a TypeError (wrong kind) or ValueError (bad value) that says what was expected
and what was given, naming the example, conversation or message.
"""

import copy
import unicodedata

import numpy as np
import pytest
import torch

from sft_utils import (
    AssistantOnlyCollator,
    CausalLMCollator,
    ConversationError,
    MaskedCrossEntropyLoss,
    PackedCollator,
    format_conversation,
    generation_prompt_ids,
    labels_from_label_mask,
    load_tokenizer,
    output_head,
    pack_examples,
    per_token_nll,
    render_message,
    shift_for_next_token,
    tokenize_conversation,
    tokenize_conversations,
    truncation_report,
)
from sft_utils.scale.memory import peak_memory
from sft_utils.scale.packing import additive_mask, block_causal_mask, group_by_length
from sft_utils.scale.preprocess import encode_texts, examples_from_packed, preprocess_dataset, tokenize_packed
from sft_utils.steps.format import ASSISTANT, normalize_messages
from sft_utils.steps.mask import token_id
from sft_utils.steps.project import logits_nbytes
from sft_utils.steps.template_mask import mask_from_template
from sft_utils.steps.tokenize import add_role_tokens
from sft_utils.train.generate import generate_replies, generate_reply
from sft_utils.viz import (
    MaskViewer,
    aligned_table,
    counts_text,
    mask_heatmap,
    mask_states,
    parse_typed_conversation,
    shifted_chips,
    token_chips,
    token_strings,
)
from sft_utils.viz.curves import plot_loss_curves
from sft_utils.viz.palette import loss_color, loss_colorbar_html

HELLO = [{"role": "prompter", "text": "Hello, how are you?"}, {"role": "assistant", "text": "I am fine."}]
MEMO_HELLO = HELLO + [
    {"role": "prompter", "text": "What is your name?"},
    {"role": "assistant", "text": "My name is John."},
]  # 28 tokens: messages of 8, 6, 7 and 7 (test_masking.py prints them)


def roles_by_message(example, messages):
    return [normalize_messages(messages)[i]["role"] for i in example["message_indices"]]


def assert_each_message_decodes_to_itself(example, messages, tokenizer):
    """Every message's tokens decode to its rendering (text in NFC), and exactly the assistant's are trained."""
    normalized = normalize_messages(messages)
    for index, message in enumerate(normalized):
        ids = [i for i, m in zip(example["input_ids"], example["message_indices"]) if m == index]
        nfc = {**message, "text": unicodedata.normalize("NFC", message["text"])}
        assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == render_message(nfc)
    assert example["label_mask"] == [role == ASSISTANT for role in roles_by_message(example, messages)]


# --- errors: each names the conversation and the message ---------------------------------------------


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([{"role": "prompter", "text": "   "}, HELLO[1]], "'c1', message 0: text is empty or whitespace only"),
        ([HELLO[0], {"role": "assistant", "text": "\u200b\ufeff"}], "'c1', message 1: text is empty"),
        ([{"role": "robot", "text": "hi"}, HELLO[1]], "'c1', message 0: unknown role 'robot'"),
        ([HELLO[0], {"role": "assistant"}], "'c1', message 1: has no 'text' (or 'content') key"),
        ([HELLO[0], {"role": "assistant", "text": ["I", "am"]}], "'c1', message 1: text must be a str, got list"),
        ([HELLO[0], {"role": "assistant", "content": None}], "'c1', message 1: text must be a str, got NoneType"),
        ([HELLO[0], HELLO[0], HELLO[1]], "'c1', message 1: expected role 'assistant'"),
        ([HELLO[0], HELLO[1], HELLO[1]], "'c1', message 2: expected role 'prompter'"),
        ([*HELLO, {"role": "system", "text": "Be brief."}], "'c1', message 2: system message is not the first"),
        ([HELLO[0]], "'c1': no assistant message, so nothing to train"),
        ([{"role": "system", "text": "Be brief."}, HELLO[0]], "'c1': no assistant message"),
    ],
)
def test_bad_conversations_are_refused_before_any_mask_is_built(tokenizer, messages, expected):
    with pytest.raises(ConversationError) as error:
        tokenize_conversation(messages, tokenizer, conversation_id="c1")
    assert expected in str(error.value)


def test_a_conversation_ending_with_the_prompter_trains_its_earlier_replies(tokenizer):
    """Not an error: the last prompter turn is context without a reply (28 + 6 tokens, 13 trained)."""
    example = tokenize_conversation([*MEMO_HELLO, {"role": "prompter", "text": "Bye."}], tokenizer)
    assert len(example["input_ids"]) == 32 and sum(example["label_mask"]) == 13
    assert example["label_mask"][-4:] == [False] * 4


# --- literal markers typed in a message stay text -----------------------------------------------------


@pytest.mark.parametrize(
    "marker", ["<|assistant|>", "<|prompter|>", "<|endoftext|>", "<|padding|>", "<|system|>", "<|prefix_begin|>"]
)
@pytest.mark.parametrize("role", ["prompter", "assistant"])
def test_a_typed_marker_is_plain_text_in_either_role(tokenizer, marker, role, mask_runs):
    """The mask equals that of the same text with the marker spelled differently; only inserted markers are ids."""
    text = f"What does {marker} mean? {marker}"
    spelled = text.replace("|>", " |>")
    where = 2 if role == "prompter" else 3  # the second prompter turn, or the second reply

    def with_text(t):
        return [{"role": m["role"], "text": t if i == where else m["text"]} for i, m in enumerate(MEMO_HELLO)]

    messages, spelled_messages = with_text(text), with_text(spelled)
    example, reference = (tokenize_conversation(m, tokenizer) for m in (messages, spelled_messages))
    assert mask_runs(example) == mask_runs(reference) == [(0, False), (1, True), (2, False), (3, True)]
    # role ids: exactly the 4 inserted markers and 4 closing <|endoftext|>; <|padding|> (1) never appears
    ids = example["input_ids"]
    assert [i for i in ids if i in (0, 1, 50277, 50279, 50280, 50281)] == [50279, 0, 50280, 0, 50279, 0, 50280, 0]
    assert_each_message_decodes_to_itself(example, messages, tokenizer)


# --- Unicode ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, ids",
    [
        ("re\u0301sume\u0301", [20887, 2204, 860]),  # combining accents: the tokenizer's NFC gives "résumé"
        ("a\u200bb", [66, 12882, 67]),  # a zero-width space inside a word is kept (3 bytes, one token)
        ("שלום", [26344, 20770, 12859, 240]),  # right-to-left
        ("x\u202eabc", [89, 325, 108, 19758]),  # a right-to-left override character stays in the text
        ("👩\u200d💻 ok", [14931, 228, 104, 325, 224, 14931, 229, 121, 8718]),  # emoji ZWJ sequence: byte tokens
        ("你好，世界", [24553, 34439, 6238, 42848, 45261]),  # CJK
        ("line1\r\nline2", [1282, 18, 190, 187, 1282, 19]),  # \r (190) and \n (187) both kept
    ],
)
def test_unicode_reply_is_trained_token_for_token(tokenizer, text, ids):
    messages = [{"role": "prompter", "text": "Say it."}, {"role": "assistant", "text": text}]
    example = tokenize_conversation(messages, tokenizer)
    prompt = [50279, 27128, 352, 15, 0]  # <|prompter|> Say ␣it . <|endoftext|>
    assert example["input_ids"] == [*prompt, 50280, *ids, 0]
    assert example["label_mask"] == [False] * 5 + [True] * (len(ids) + 2)
    assert_each_message_decodes_to_itself(example, messages, tokenizer)


def test_decomposed_and_composed_text_give_one_mask_and_decode_to_nfc(tokenizer):
    decomposed = [
        {"role": "prompter", "text": "Cafe\u0301?"},
        {"role": "assistant", "text": "Ou\u0300 est le cafe\u0301"},
    ]
    composed = [{"role": "prompter", "text": "Café?"}, {"role": "assistant", "text": "Où est le café"}]
    example = tokenize_conversation(decomposed, tokenizer)
    assert example == tokenize_conversation(composed, tokenizer)
    trained = [i for i, on in zip(example["input_ids"], example["label_mask"]) if on]
    assert tokenizer.decode(trained) == "<|assistant|>Où est le café<|endoftext|>"


def test_a_message_of_12_500_characters_is_tokenized_whole(tokenizer):
    long_reply = "word" + " word" * 2499  # 12 499 characters, one token per word
    messages = [{"role": "prompter", "text": "Repeat a word."}, {"role": "assistant", "text": long_reply}]
    example = tokenize_conversation(messages, tokenizer)
    assert len(long_reply) == 12_499
    # <|prompter|> Re peat ␣a ␣word . <|endoftext|> = 7 tokens, then <|assistant|>, 2500 words, <|endoftext|>
    assert example["input_ids"][:9] == [50279, 1785, 16388, 247, 3159, 15, 0, 50280, 3418]
    assert len(example["input_ids"]) == 7 + 2502 and example["input_ids"][9:-1] == [3159] * 2499
    assert sum(example["label_mask"]) == 2502
    assert_each_message_decodes_to_itself(example, messages, tokenizer)


# --- truncation -------------------------------------------------------------------------------------


def test_truncation_inside_a_reply_keeps_its_head_trained(tokenizer):
    """max_length=11 cuts the first reply after "I am": <|assistant|> I ␣am stay trained, no <|endoftext|>."""
    example = tokenize_conversation(MEMO_HELLO, tokenizer, max_length=11)
    assert tokenizer.convert_ids_to_tokens(example["input_ids"][8:]) == ["<|assistant|>", "I", "Ġam"]
    assert example["label_mask"] == [False] * 8 + [True] * 3
    assert sum(shift_for_next_token(example)["label_masks"]) == 3


def test_truncation_report_counts_cut_replies_and_untrained_examples(tokenizer):
    conversations = [
        {"id": "whole", "messages": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]},
        {"id": "reply-cut", "messages": MEMO_HELLO},  # 28 tokens, cut at 11 inside reply 1
        {"id": "prompt-only", "messages": [{"role": "prompter", "text": "word " * 20}, HELLO[1]]},
    ]
    # 7 tokens (untouched); 28 tokens, cut after "I am"; a 23-token prompt, so its reply is cut off entirely
    report = truncation_report(conversations, tokenizer, max_length=11)
    assert report.examples == 3
    assert report.truncated == ["reply-cut", "prompt-only"]
    assert report.replies_cut == ["reply-cut"]
    assert report.no_trained_target == ["prompt-only"] and report.dropped == []
    assert (report.trained_targets_before, report.trained_targets_after) == (4 + 13 + 6, 4 + 3 + 0)
    assert str(report).startswith("max_length=11: 3 examples, 2 truncated, 1 with a reply cut, 1 with no trained")


def test_tokenize_conversations_warns_once_or_drops_and_counts(tokenizer):
    short = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]  # 7 tokens
    conversations = [{"id": "a", "messages": short}, {"id": "b", "messages": MEMO_HELLO}]
    with pytest.warns(UserWarning, match=r"1 example\(s\) have no trained target .* \(conversation 'b'\)") as record:
        kept, report = tokenize_conversations(conversations, tokenizer, max_length=8)
    assert len(record) == 1 and len(kept) == 2 and report.no_trained_target == ["b"]
    kept, report = tokenize_conversations(conversations, tokenizer, max_length=8, drop_untrained=True)
    assert len(kept) == 1 and report.dropped == ["b"]
    assert kept[0]["label_mask"] == [False] * 3 + [True] * 4  # "a", whole


def test_truncation_report_on_the_course_data(tokenizer, course_conversations):
    """An independent count: an example keeps a trained target iff its first trained token is before max_length."""
    for max_length in (16, 64, 256):
        report = truncation_report(course_conversations, tokenizer, max_length=max_length)
        firsts = {}
        for c in course_conversations:
            mask = tokenize_conversation(c["messages"], tokenizer)["label_mask"]
            firsts[c["id"]] = mask.index(True)
        assert report.no_trained_target == [c["id"] for c in course_conversations if firsts[c["id"]] >= max_length]
        assert report.examples == len(course_conversations)


@pytest.mark.parametrize(
    "conversations, problem",
    [
        ([[{"role": "prompter", "text": "Hi"}]], "conversation 0: expected a dict with a 'messages' list"),
        ([{"text": "Hi"}], "conversation 0: expected a dict with a 'messages' list"),
    ],
    ids=["a-message-list", "no-messages-key"],
)
def test_tokenize_conversations_names_an_item_that_is_not_a_conversation(tokenizer, conversations, problem):
    with pytest.raises(ConversationError, match=problem):
        tokenize_conversations(conversations, tokenizer)


def test_tokenize_conversations_checks_max_length_even_when_nothing_is_cut(tokenizer):
    with pytest.raises(ValueError, match="max_length must be an int >= 1"):
        tokenize_conversations([], tokenizer, max_length=0)


# --- examples of the wrong kind, at every collator ------------------------------------------------------

# tokenize_conversation of SHORT ("Hi" / "Hello!"): checked against it in the first test below.
EXAMPLE = {
    "input_ids": [50279, 12764, 0, 50280, 12092, 2, 0],
    "attention_mask": [1] * 7,
    "message_indices": [0, 0, 0, 1, 1, 1, 1],
    "label_mask": [False] * 3 + [True] * 4,
}
SHORT = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]
NO_LABEL_MASK = {k: v for k, v in EXAMPLE.items() if k != "label_mask"}


def _collators(tokenizer):
    """name -> a function of a list of examples, for every public route from examples to a batch."""
    return {
        "shifted": AssistantOnlyCollator(1),
        "labels": AssistantOnlyCollator(1, convention="labels"),
        "plain": CausalLMCollator(tokenizer),
        "pack_examples": pack_examples,
        "packed_row": lambda examples: PackedCollator(1)([examples]),
    }


def test_the_example_below_is_tokenize_conversations(tokenizer):
    assert tokenize_conversation(SHORT, tokenizer) == EXAMPLE


WRONG_EXAMPLES = {
    # id: (examples, error, message, collators it applies to: all unless named)
    "one-example-dict": (EXAMPLE, TypeError, r"examples must be a list of examples, got one \(dict with keys", None),
    "none": (None, TypeError, r"examples must be a list of examples \(dicts.*\), got NoneType", None),
    "a-str": ("Hello", TypeError, r"examples must be a list of examples .*got str 'Hello'", None),
    "strings": (["Hi", "Hello!"], TypeError, r"example 0: expected a dict with 'input_ids'.* got str 'Hi'", None),
    "token-id-lists": ([EXAMPLE["input_ids"]], TypeError, r"example 0: expected a dict .*, got list of int", None),
    "a-conversation": (SHORT, TypeError, r"example 0: expected a dict .*got a message .*tokenize it first", None),
    "nested-ids": (
        [{**EXAMPLE, "input_ids": [EXAMPLE["input_ids"]]}],
        ValueError,
        "example 0: input_ids must be flat",
        None,
    ),
    "2d-tensor-ids": (
        [{k: torch.tensor([v]) for k, v in EXAMPLE.items()}],
        ValueError,
        r"example 0: input_ids must be 1-d \(one example's tokens\), got Tensor of shape \(1, 7\)",
        None,
    ),
    "2d-numpy-ids": (
        [{**EXAMPLE, "input_ids": np.array([EXAMPLE["input_ids"]])}],
        ValueError,
        r"example 0: input_ids must be 1-d .*got ndarray of shape \(1, 7\)",
        None,
    ),
    "float-ids": (
        [{**EXAMPLE, "input_ids": [float(i) for i in EXAMPLE["input_ids"]]}],
        TypeError,
        "example 0: input_ids must hold ints, got float 50279.0 at position 0",
        None,
    ),
    "str-ids": (
        [{**EXAMPLE, "input_ids": "Hi Hello!"}],
        TypeError,
        "example 0: input_ids must be a list of ints",
        None,
    ),
    "labels-as-ids": (
        [{**EXAMPLE, "input_ids": [-100, -100, -100, 50280, 12092, 2, 0]}],
        ValueError,
        "example 0: input_ids must be token ids >= 0, got -100 at position 0",
        None,
    ),
    "lengths-disagree": (
        [EXAMPLE, {**EXAMPLE, "label_mask": EXAMPLE["label_mask"][:-1]}],
        ValueError,
        r"example 1: columns differ in length, .*'label_mask': 6",
        None,
    ),
    "padded-example": (
        [EXAMPLE, {**EXAMPLE, "attention_mask": [1] * 5 + [0] * 2}],
        ValueError,
        r"example 1: attention_mask is 0 at positions \[5, 6\]: a padded example",
        None,
    ),
    "no-tokens": ([{k: [] for k in EXAMPLE}], ValueError, r"example 0: 0 token\(s\), need at least 1", None),
    "no-label-mask": (
        [NO_LABEL_MASK],
        ValueError,
        r"example 0: expected a dict with 'input_ids' and 'label_mask' .*but example 0 has no label_mask",
        ("shifted", "labels", "pack_examples", "packed_row"),
    ),
    "labels-not-label-mask": (
        [{**NO_LABEL_MASK, "labels": [-100] * 3 + EXAMPLE["input_ids"][3:]}],
        ValueError,
        r"example 0: .*has no label_mask .*labels \(transformers' -100 convention\) are not a label_mask",
        ("shifted", "labels", "pack_examples", "packed_row"),
    ),
    "label-mask-of-2s": (
        [{**EXAMPLE, "label_mask": [0, 0, 0, 2, 2, 2, 2]}],
        ValueError,
        r"example 0: label_mask must hold only 0 and 1 \(or bools\), got \[0, 2\]",
        ("shifted", "labels", "pack_examples", "packed_row"),
    ),
}


COLLATORS = ("shifted", "labels", "plain", "pack_examples", "packed_row")


@pytest.mark.parametrize(
    "case, collator",
    [
        (case, collator)
        for case, (*_, applies_to) in WRONG_EXAMPLES.items()
        for collator in applies_to or COLLATORS  # plain SFT reads no label_mask
    ],
)
def test_collators_name_an_example_of_the_wrong_kind(tokenizer, case, collator):
    examples, error, message, _ = WRONG_EXAMPLES[case]
    if collator == "packed_row" and not isinstance(examples, list):
        message = rf"row 0: expected a list of examples, got {type(examples).__name__}"  # the row is named first
    elif collator == "packed_row":
        message = "row 0, " + message
    with pytest.raises(error, match=message):
        _collators(tokenizer)[collator](examples)


@pytest.mark.parametrize("collator", ["shifted", "labels", "plain", "pack_examples"])
def test_an_empty_list_of_examples_is_refused(tokenizer, collator):
    verb = "pack" if collator == "pack_examples" else "collate"
    with pytest.raises(ValueError, match=f"cannot {verb} an empty list of examples"):
        _collators(tokenizer)[collator]([])


@pytest.mark.parametrize("collator", ["shifted", "labels", "plain", "packed_row"])
def test_unpadded_examples_need_no_attention_mask_and_any_1d_columns_do(tokenizer, collator):
    """An example's attention mask is all ones by definition, so leaving it out gives the same batch; numpy
    arrays and 1-d tensors give the same batch as lists."""
    collate = _collators(tokenizer)[collator]
    long = tokenize_conversation(MEMO_HELLO, tokenizer)
    reference = collate([EXAMPLE, long])
    without = [{k: v for k, v in e.items() if k != "attention_mask"} for e in (EXAMPLE, long)]
    as_numpy = [{k: np.array(v) for k, v in e.items()} for e in (EXAMPLE, long)]
    as_tensors = [{k: torch.tensor(v) for k, v in e.items()} for e in (EXAMPLE, long)]
    for examples in (without, as_numpy, as_tensors):
        batch = collate(examples)
        assert batch.keys() == reference.keys()
        assert all(torch.equal(batch[k], reference[k]) for k in reference)
    if collator != "packed_row":  # a packed row's mask is its block-causal [B, 1, T, T] form
        width = reference["attention_mask"].shape[1]
        assert reference["attention_mask"].tolist() == [[1] * 7 + [0] * (width - 7), [1] * width]


@pytest.mark.parametrize(
    "pad_token_id, error, message",
    [
        (
            None,
            TypeError,
            r"pad_token_id must be an int \(tokenizer.pad_token_id\), got NoneType \(a tokenizer without",
        ),
        ("1", TypeError, r"pad_token_id must be an int .*got str '1'"),
        (1.0, TypeError, "pad_token_id must be an int .*got float"),
        (True, TypeError, "pad_token_id must be an int .*got bool"),
        (-1, ValueError, "pad_token_id must be a token id >= 0, got -1"),
    ],
    ids=["none", "str", "float", "bool", "negative"],
)
@pytest.mark.parametrize("collator", [AssistantOnlyCollator, PackedCollator])
def test_a_pad_token_id_of_the_wrong_kind_is_refused(collator, pad_token_id, error, message):
    with pytest.raises(error, match=message):
        collator(pad_token_id)


def test_a_tokenizer_passed_as_the_pad_token_id_is_named(tokenizer):
    with pytest.raises(TypeError, match=f"pad_token_id must be an int .*got {type(tokenizer).__name__}"):
        AssistantOnlyCollator(tokenizer)


# --- one example of the wrong kind: the shift, the viewers, labels ----------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: shift_for_next_token([EXAMPLE]), TypeError, r"a list of examples goes to a collator"),
        (lambda: shift_for_next_token(None), TypeError, r"example: expected a dict with 'input_ids'.*got NoneType"),
        (lambda: shift_for_next_token(SHORT[0]), TypeError, r"got a message \(dict with keys \['role', 'text'\]\)"),
        (
            lambda: shift_for_next_token({"input_ids": "Hi there", "label_mask": "Hi there"}),
            TypeError,
            "example: input_ids must be a list, a numpy array or a tensor, got str 'Hi there'",
        ),
        (
            lambda: shift_for_next_token({k: torch.tensor([[v]]) for k, v in EXAMPLE.items()}),
            ValueError,
            r"input_ids must be \[T\] \(one example\) or \[batch, T\] \(a batch\), got Tensor of shape \(1, 1, 7\)",
        ),
        (
            lambda: shift_for_next_token({"input_ids": torch.ones(1, 7), "label_mask": torch.ones(1, 7)}),
            TypeError,
            "example: input_ids must hold integer token ids, got dtype torch.float32",
        ),
        (
            lambda: shift_for_next_token({"input_ids": [1, 2, 3], "label_mask": [0, 1, 2]}),
            ValueError,
            r"example: label_mask must hold only 0 and 1 \(or bools\), got \[0, 1, 2\]",
        ),
        (
            lambda: shift_for_next_token({"input_ids": np.arange(3), "label_mask": [0, 1, 1]}),
            TypeError,
            r"mix of numpy arrays and lists in \['input_ids', 'label_mask'\]",
        ),
        (
            lambda: labels_from_label_mask([1, 2], [0, 1]),
            TypeError,
            "input_ids must be a torch.Tensor, got list of int",
        ),
        (
            lambda: labels_from_label_mask(torch.tensor([1, 2, 3]), torch.tensor([0, 1])),
            ValueError,
            r"input_ids \(3,\) and label_mask \(2,\) differ in shape",
        ),
        (
            lambda: labels_from_label_mask(torch.tensor([1.0, 2.0]), torch.tensor([0, 1])),
            TypeError,
            "input_ids must be token ids",
        ),
        (
            lambda: labels_from_label_mask(torch.tensor([1, 2]), torch.tensor([0, 2])),
            ValueError,
            "label_mask must be bool or hold only 0 and 1",
        ),
    ],
    ids=[
        "shift-a-list-of-examples",
        "shift-none",
        "shift-a-message",
        "shift-str-columns",
        "shift-3d-tensor",
        "shift-float-ids",
        "shift-mask-of-2",
        "shift-numpy-mixed-with-lists",
        "labels-lists",
        "labels-shapes-differ",
        "labels-float-ids",
        "labels-mask-of-2",
    ],
)
def test_one_example_of_the_wrong_kind_is_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_numpy_example_shifts_like_lists():
    shifted = shift_for_next_token({k: np.array(v) for k, v in EXAMPLE.items()})
    assert {k: v.tolist() for k, v in shifted.items()} == shift_for_next_token(EXAMPLE)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda tok: token_chips([EXAMPLE], tok), TypeError, r"example: expected a dict .*got list of dict"),
        (
            lambda tok: token_chips({k: torch.tensor([v]) for k, v in EXAMPLE.items()}, tok),
            ValueError,
            r"example: input_ids must be 1-d .*shape \(1, 7\)",
        ),
        (lambda tok: token_chips({k: [] for k in EXAMPLE}, tok), ValueError, r"example: 0 token\(s\)"),
        (
            lambda tok: shifted_chips(EXAMPLE, tok, token_loss=torch.zeros(1, 6)),
            ValueError,
            r"token_loss must be 1-d \(one loss per target\), got Tensor of shape \(1, 6\)",
        ),
        (
            lambda tok: shifted_chips(EXAMPLE, tok, token_loss="high"),
            TypeError,
            "token_loss must be a list of numbers",
        ),
        (
            lambda tok: shifted_chips(EXAMPLE, tok, token_loss=[1.0] * 6, vmax="10"),
            ValueError,
            r"vmax must be a number > 0 \(nats\), got '10'",
        ),
        (
            lambda tok: token_strings(tok, EXAMPLE),
            TypeError,
            r"ids must be a list of token ids, got dict .*; for an example, pass its input_ids",
        ),
        (
            lambda tok: token_strings(tok, torch.tensor([EXAMPLE["input_ids"]])),
            ValueError,
            r"token_strings: ids must be 1-d .*shape \(1, 7\)",
        ),
        (lambda tok: token_strings(tok, [1.5, 2.0]), TypeError, "token_strings: ids must hold ints, got float 1.5"),
        (lambda tok: counts_text("1100"), TypeError, "counts_text: label_mask must be a list of ints"),
        (
            lambda tok: counts_text([1, 0, 1], [1, 1]),
            ValueError,
            r"counts_text: label_mask \(3\) and attention_mask \(2\) differ in length",
        ),
        (lambda tok: counts_text([[1, 0]]), ValueError, "counts_text: label_mask must be flat"),
        (lambda tok: counts_text([1], removed="2"), ValueError, "removed must be an int >= 0"),
        (lambda tok: counts_text([1], unit=3), TypeError, "unit must be a str"),
        (lambda tok: aligned_table([[1, 2]]), TypeError, r"rows must be a dict of row name -> list of values"),
        (lambda tok: aligned_table({"TEXT": "abc"}), TypeError, r"row 'TEXT' must be a list of values"),
        (lambda tok: aligned_table({"a": [[1, 2]]}), ValueError, r"row 'a' holds a list at column 0"),
        (lambda tok: aligned_table({"a": torch.ones(2, 3)}), ValueError, r"row 'a' must be 1-d"),
        (lambda tok: aligned_table({"a": [1]}, width="80"), ValueError, "width must be an int >= 1"),
        (
            lambda tok: mask_states([[1, 0, 1], [1, 0]], [[1, 1, 1], [1, 1]]),
            ValueError,
            r"label_mask: rows differ in length; pad them into one \[batch, positions\] array first",
        ),
        (lambda tok: mask_states("10", "11"), TypeError, r"label_mask must be a \[batch, positions\] tensor"),
        (lambda tok: mask_states([[2, 0]], [[1, 1]]), ValueError, r"label_mask must hold only 0 and 1 .*\[0, 2\]"),
        (lambda tok: mask_heatmap([[1, 0]], [[1, 1]], names="a"), TypeError, "names must be a list of row labels"),
        (lambda tok: mask_heatmap([[1, 0]], [[1, 1]], ax="left"), TypeError, "ax must be a matplotlib Axes"),
    ],
    ids=[
        "chips-a-list-of-examples",
        "chips-2d-tensor",
        "chips-no-tokens",
        "chips-2d-token-loss",
        "chips-str-token-loss",
        "chips-str-vmax",
        "token-strings-an-example",
        "token-strings-2d",
        "token-strings-floats",
        "counts-a-str",
        "counts-lengths-differ",
        "counts-nested",
        "counts-removed-str",
        "counts-unit-int",
        "table-a-list",
        "table-str-row",
        "table-nested-row",
        "table-2d-row",
        "table-str-width",
        "heatmap-ragged-rows",
        "heatmap-a-str",
        "heatmap-mask-of-2",
        "heatmap-str-names",
        "heatmap-str-ax",
    ],
)
def test_the_viewers_refuse_input_of_the_wrong_kind(tokenizer, call, error, message):
    with pytest.raises(error, match=message):
        call(tokenizer)


# --- tokenizers, chat formats, models of the wrong kind -----------------------------------------------------

TOKENIZER_USERS = {
    "tokenize_conversation": lambda tok: tokenize_conversation(SHORT, tok),
    "generation_prompt_ids": lambda tok: generation_prompt_ids(SHORT[:1], tok),
    "tokenize_conversations": lambda tok: tokenize_conversations([{"messages": SHORT}], tok),
    "truncation_report": lambda tok: truncation_report([{"messages": SHORT}], tok, max_length=4),
    "mask_from_template": lambda tok: mask_from_template([{"role": "user", "content": "Hi"}], tok),
    "tokenize_packed": lambda tok: tokenize_packed([SHORT], tok),
    "preprocess_dataset": lambda tok: preprocess_dataset([{"messages": SHORT}], tok, desc=None),
    "token_strings": lambda tok: token_strings(tok, [1, 2]),
    "token_chips": lambda tok: token_chips(EXAMPLE, tok),
    "shifted_chips": lambda tok: shifted_chips(EXAMPLE, tok),
    "CausalLMCollator": lambda tok: CausalLMCollator(tok),
    "add_role_tokens": lambda tok: add_role_tokens(tok),
    "MaskViewer": lambda tok: MaskViewer([{"messages": SHORT}], tok),
}


@pytest.mark.parametrize("user", list(TOKENIZER_USERS))
def test_a_tokenizers_name_where_the_tokenizer_goes_says_load_it_first(user):
    with pytest.raises(
        TypeError, match=r"tokenizer must be a tokenizer object, got the str 'EleutherAI/pythia-70m'; load"
    ):
        TOKENIZER_USERS[user]("EleutherAI/pythia-70m")


@pytest.mark.parametrize("user", [u for u in TOKENIZER_USERS if u != "MaskViewer"])  # its None loads the default
def test_no_tokenizer_is_named(user):
    with pytest.raises(TypeError, match=r"tokenizer must be a transformers tokenizer \(.*\), got NoneType"):
        TOKENIZER_USERS[user](None)


def test_batching_refuses_a_tokenizer_without_a_pad_token(tokenizer, tiny_model):
    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    with pytest.raises(ValueError, match=r"tokenizer has no pad token \(pad_token_id is None\)"):
        generate_replies(tiny_model, no_pad, [{"messages": SHORT}])
    with pytest.raises(ValueError, match="pad token must exist and differ from eos"):
        CausalLMCollator(no_pad)
    with pytest.raises(TypeError, match=r"pad_token_id must be an int .*got NoneType \(a tokenizer without a pad"):
        AssistantOnlyCollator(no_pad.pad_token_id)


CHAT_FORMAT_USERS = {
    "format_conversation": lambda tok, fmt: format_conversation(SHORT, chat_format=fmt),
    "render_message": lambda tok, fmt: render_message(SHORT[0], chat_format=fmt),
    "tokenize_conversation": lambda tok, fmt: tokenize_conversation(SHORT, tok, chat_format=fmt),
    "generation_prompt_ids": lambda tok, fmt: generation_prompt_ids(SHORT[:1], tok, chat_format=fmt),
    "tokenize_conversations": lambda tok, fmt: tokenize_conversations([{"messages": SHORT}], tok, chat_format=fmt),
    "tokenize_packed": lambda tok, fmt: tokenize_packed([SHORT], tok, chat_format=fmt),
    "preprocess_dataset": lambda tok, fmt: preprocess_dataset([{"messages": SHORT}], tok, chat_format=fmt),
    "load_tokenizer": lambda tok, fmt: load_tokenizer(verbose=False, chat_format=fmt),
    "add_role_tokens": lambda tok, fmt: add_role_tokens(copy.deepcopy(tok), fmt),
}


@pytest.mark.parametrize("user", list(CHAT_FORMAT_USERS))
def test_a_chat_formats_name_is_not_a_chat_format(tokenizer, user):
    with pytest.raises(
        TypeError, match=r"chat_format must be a ChatFormat \(e.g. sft_utils.OPEN_ASSISTANT\), got 'open"
    ):
        CHAT_FORMAT_USERS[user](tokenizer, "open-assistant")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda tok, model: output_head("EleutherAI/pythia-14m"), TypeError, r"got str .*load it first"),
        (lambda tok, model: output_head(torch.nn.Linear(2, 3)), TypeError, "transformers causal LM .*got Linear"),
        (lambda tok, model: output_head(model.gpt_neox), ValueError, "GPTNeoXModel has no output head"),
        (lambda tok, model: logits_nbytes(2, 8, 50304, torch.long), TypeError, "dtype must be a floating torch dtype"),
        (lambda tok, model: logits_nbytes("2", 8, 50304), ValueError, "batch must be an int >= 0"),
        (
            lambda tok, model: generate_reply("pythia", tok, SHORT[:1]),
            TypeError,
            "model must be a transformers causal LM",
        ),
        (
            lambda tok, model: generate_reply(tok, tok, SHORT[:1]),
            TypeError,
            "transformers causal LM .*got GPTNeoXTokenizer",
        ),
        (
            lambda tok, model: generate_reply(model, tok, SHORT[:1], max_new_tokens=None),
            ValueError,
            "max_new_tokens must be an int >= 1, got None",
        ),
        (
            lambda tok, model: generate_replies(None, tok, [{"messages": SHORT}]),
            TypeError,
            "model must be a transformers causal LM",
        ),
        (
            lambda tok, model: MaskViewer([{"messages": SHORT}], tok, model="EleutherAI/pythia-14m"),
            TypeError,
            "model must be a transformers causal LM",
        ),
    ],
    ids=[
        "head-of-a-name",
        "head-of-a-linear",
        "head-of-a-base-model",
        "nbytes-int-dtype",
        "nbytes-str-size",
        "reply-a-models-name",
        "reply-a-tokenizer-as-model",
        "reply-no-max-new-tokens",
        "replies-no-model",
        "viewer-a-models-name",
    ],
)
def test_models_of_the_wrong_kind_are_refused(tokenizer, tiny_model, call, error, message):
    with pytest.raises(error, match=message):
        call(tokenizer, tiny_model)


# --- conversations and messages of the wrong kind ----------------------------------------------------------

CONVERSATION_USERS = {
    "tokenize_conversations": lambda tok, model, c: tokenize_conversations(c, tok),
    "truncation_report": lambda tok, model, c: truncation_report(c, tok, max_length=4),
    "tokenize_packed": lambda tok, model, c: tokenize_packed(c, tok),
    "generate_replies": lambda tok, model, c: generate_replies(model, tok, c, max_new_tokens=1),
    "MaskViewer": lambda tok, model, c: MaskViewer(c, tok),
}


ONE_CONVERSATION = {
    "one-conversation-dict": (
        {"id": "c", "messages": SHORT},
        r"conversations must be a list of conversations, got one dict; .*\[conversation\]",
    ),
    "a-str": ("Hi", "conversations must be a list of conversations, got str"),
    "none": (None, "conversations must be a list of conversations, got NoneType"),
    "one-conversations-messages": (SHORT, r"conversations look like the messages of one conversation; pass \["),
}


@pytest.mark.parametrize(
    "user, case",
    [
        (user, case)
        for user in CONVERSATION_USERS
        for case in ONE_CONVERSATION
        if not (user == "MaskViewer" and case == "none")  # MaskViewer(None) shows the course's conversations
    ],
)
def test_one_conversation_where_a_list_of_them_goes_is_refused(tokenizer, tiny_model, user, case):
    conversations, message = ONE_CONVERSATION[case]
    with pytest.raises(TypeError, match=message):
        CONVERSATION_USERS[user](tokenizer, tiny_model, conversations)


@pytest.mark.parametrize(
    "user, conversations, message",
    [
        ("tokenize_conversations", [SHORT], r"conversation 0: expected a dict .*got list \(a bare list of messages"),
        ("generate_replies", [SHORT], r"conversation 0: expected a dict .*wrap it as \{'messages': messages\}"),
        (
            "tokenize_conversations",
            [{"id": "c", "messages": SHORT[0]}],
            r"conversation 'c': messages must be a list of dicts, got dict \(one message",
        ),
        (
            "tokenize_packed",
            [{"messages": SHORT}],
            r"conversation 0: messages must be a list of dicts, got dict \(a conversation dict: pass its \['messages'\]\)",
        ),
        (
            "tokenize_conversations",
            [{"id": "c", "messages": [SHORT]}],
            r"conversation 'c', message 0: expected a dict with 'role' and 'text', got list \(a list of conversations",
        ),
    ],
    ids=["bare-message-lists", "bare-message-lists-to-reply", "one-message", "conversation-dicts", "nested-lists"],
)
def test_a_conversation_of_the_wrong_kind_is_named(tokenizer, tiny_model, user, conversations, message):
    with pytest.raises(ConversationError, match=message) as error:
        CONVERSATION_USERS[user](tokenizer, tiny_model, conversations)
    assert isinstance(error.value, TypeError)  # a ConversationError of the wrong kind is a TypeError too


MESSAGE_USERS = {
    "normalize_messages": lambda tok, model, m: normalize_messages(m, conversation_id="c"),
    "format_conversation": lambda tok, model, m: format_conversation(m, conversation_id="c"),
    "tokenize_conversation": lambda tok, model, m: tokenize_conversation(m, tok, conversation_id="c"),
    "generation_prompt_ids": lambda tok, model, m: generation_prompt_ids(m, tok, conversation_id="c"),
    "mask_from_template": lambda tok, model, m: mask_from_template(m, tok, conversation_id="c"),
}


@pytest.mark.parametrize(
    "messages, message",
    [
        ({"id": "c", "messages": SHORT}, r"'c': messages must be a list of dicts, got dict \(a conversation dict"),
        (SHORT[0], r"'c': messages must be a list of dicts, got dict \(one message: pass a list of messages"),
        ([SHORT, SHORT], r"'c', message 0: expected a dict with 'role' and 'text', got list \(a list of conversations"),
        ([{"messages": SHORT}], r"'c', message 0: expected a message, got a conversation \(a dict with 'messages'\)"),
        ("Hi there", "'c': messages must be a list of dicts, got str"),
    ],
    ids=["a-conversation-dict", "one-message", "a-list-of-conversations", "conversation-dicts", "a-str"],
)
@pytest.mark.parametrize("user", list(MESSAGE_USERS))
def test_messages_of_the_wrong_kind_are_named(tokenizer, tiny_model, user, messages, message):
    with pytest.raises(ConversationError, match=message) as error:
        MESSAGE_USERS[user](tokenizer, tiny_model, messages)
    assert isinstance(error.value, TypeError)


def test_generate_reply_names_messages_of_the_wrong_kind(tokenizer, tiny_model):
    with pytest.raises(TypeError, match=r"messages must be a list of dicts, got dict \(a conversation dict"):
        generate_reply(tiny_model, tokenizer, {"messages": SHORT[:1]})


@pytest.mark.parametrize(
    "messages, error, message",
    [
        (
            [{"role": "user", "text": "Hi"}],
            ConversationError,
            r"message 0: expected 'role' and 'content' .*\['role', 'text'\]",
        ),
        ([{"role": "user", "content": None}], TypeError, "message 0: content must be a str, got NoneType"),
        ([], ConversationError, "conversation: no messages"),
    ],
    ids=["course-form", "content-none", "empty"],
)
def test_template_masks_name_a_message_of_the_wrong_form(tokenizer, messages, error, message):
    with pytest.raises(error, match=message):
        mask_from_template(messages, tokenizer)


@pytest.mark.parametrize(
    "message, error, expected",
    [
        ("Hi", TypeError, "message must be a dict with 'role' and 'text', got str"),
        (SHORT, TypeError, "message must be a dict with 'role' and 'text', got list"),
        ({"role": "user", "content": "Hi"}, ValueError, "message must be normalised, .*normalize_messages turns"),
    ],
    ids=["a-str", "a-list-of-messages", "not-normalised"],
)
def test_render_message_needs_a_normalised_message(message, error, expected):
    with pytest.raises(error, match=expected):
        render_message(message)


# --- the data-set and loss routes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda tok: preprocess_dataset([], tok, desc=None), ValueError, "dataset is an empty list"),
        (
            lambda tok: preprocess_dataset({"messages": SHORT}, tok, desc=None),
            TypeError,
            r"got dict; for a single conversation, pass \[conversation\]",
        ),
        (
            lambda tok: preprocess_dataset([{"id": "c", "messages": SHORT[0]}], tok, desc=None),
            ConversationError,
            r"conversation 'c': messages must be a list of dicts, got dict",
        ),
        (lambda tok: encode_texts(tok, "Hello"), TypeError, r"texts must be a list of str, got str 'Hello'; for one"),
        (lambda tok: encode_texts(tok, ["Hi", 3]), TypeError, "texts must be a list of str, got int at index 1"),
        (lambda tok: examples_from_packed([EXAMPLE]), TypeError, "packed must be the dict tokenize_packed returns"),
        (lambda tok: examples_from_packed(EXAMPLE), ValueError, "packed has no offsets; expected the dict"),
        (lambda tok: group_by_length([EXAMPLE], 8), TypeError, "lengths must be a list of ints .*at index 0"),
        (lambda tok: group_by_length([3], None), ValueError, "max_length must be an int >= 1 .*got None"),
        (lambda tok: group_by_length([-3], 8), ValueError, "example 0 has a negative length, -3"),
        (lambda tok: PackedCollator(1, dtype=torch.long), TypeError, "dtype must be a floating torch dtype"),
        (lambda tok: PackedCollator(1)(EXAMPLE), TypeError, "rows must be a list of rows, each a list of examples"),
        (lambda tok: block_causal_mask([[0, 0, 1]]), TypeError, r"segment_ids must be an integer tensor \[B, T\]"),
        (lambda tok: block_causal_mask(torch.tensor([0, 0, 1])), ValueError, r"segment_ids must be \[B, T\]"),
        (lambda tok: additive_mask([[True]]), TypeError, "allowed must be a bool tensor"),
        (lambda tok: peak_memory(torch.ones(3)), TypeError, "fn must be a function to run, got Tensor"),
        (lambda tok: peak_memory(lambda: 1, device="gpu"), ValueError, "device must be 'cpu' or a CUDA device"),
        (
            lambda tok: per_token_nll(torch.randn(1, 6, 10), torch.zeros(1, 5, dtype=torch.long)),
            ValueError,
            r"shapes differ: logits \(1, 6, 10\), targets \(1, 5\)",
        ),
        (lambda tok: per_token_nll(torch.randn(4, 10).tolist(), torch.zeros(4)), TypeError, "logits must be a torch"),
        (lambda tok: per_token_nll(torch.randn(4, 10), torch.zeros(4)), TypeError, "targets must be token ids"),
        (
            lambda tok: per_token_nll(torch.randn(4, 10), torch.full((4,), 10)),
            ValueError,
            r"a target is outside 0..9 \(min 10, max 10\)",
        ),
        (
            lambda tok: MaskedCrossEntropyLoss()(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1), torch.ones(1)),
            TypeError,
            r"logits must be a float tensor, got torch.int64 \(token ids where logits go\?\)",
        ),
        (lambda tok: plot_loss_curves({"step": [1]}), TypeError, r"got one history; pass \{'run': history\}"),
        (lambda tok: plot_loss_curves({"run": {"step": [1]}}), ValueError, "history 'run' has no eval_step"),
        (lambda tok: parse_typed_conversation(SHORT), TypeError, "text must be the str typed in the text box"),
        (
            lambda tok: tokenize_packed([SHORT], tok, conversation_ids="c"),
            TypeError,
            "conversation_ids must be a list, one id per conversation, got str 'c'",
        ),
        (lambda tok: token_id("EleutherAI/pythia-70m", "<|prompter|>"), TypeError, "load it first"),
        (lambda tok: token_id(tok, 50279), TypeError, "token must be a str such as a role marker, got int"),
        (lambda tok: loss_color("2.5"), TypeError, "value must be a number"),
        (lambda tok: loss_colorbar_html(None), TypeError, "vmax must be a number .*got NoneType"),
    ],
    ids=[
        "dataset-empty",
        "dataset-one-conversation",
        "dataset-messages-a-dict",
        "encode-a-str",
        "encode-an-int",
        "unpack-a-list",
        "unpack-an-example",
        "group-examples",
        "group-no-max-length",
        "group-negative",
        "packed-int-dtype",
        "packed-one-example",
        "block-mask-a-list",
        "block-mask-1d",
        "additive-a-list",
        "peak-a-tensor",
        "peak-unknown-device",
        "nll-shapes-differ",
        "nll-lists",
        "nll-float-targets",
        "nll-out-of-range",
        "loss-int-logits",
        "curves-one-history",
        "curves-missing-keys",
        "typed-a-list",
        "packed-str-ids",
        "token-id-a-tokenizers-name",
        "token-id-an-id",
        "loss-colour-a-str",
        "colour-bar-none",
    ],
)
def test_data_set_and_loss_routes_refuse_input_of_the_wrong_kind(tokenizer, call, error, message):
    with pytest.raises(error, match=message):
        call(tokenizer)
