"""Property-based tests (hypothesis) of the mask's invariants on random conversations.

Random roles and lengths, any Unicode (surrogates excluded: normalize_messages refuses them, tested in
test_formatting.py), and the role markers typed into the text. Reproducible in CI: the "ci" profile
derandomizes (the same examples on every run); ``HYPOTHESIS_PROFILE=explore`` draws 1000 fresh ones.
"""

import os
import unicodedata
import warnings

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sft_utils import AssistantOnlyCollator, render_message, shift_for_next_token, tokenize_conversation
from sft_utils.steps.format import ASSISTANT, normalize_messages

settings.register_profile(
    "ci", max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MARKERS = ["<|assistant|>", "<|prompter|>", "<|endoftext|>", "<|padding|>", "<|system|>", "<|prefix_end|>"]
ROLE_IDS = {0, 1, 50277, 50278, 50279, 50280, 50281}  # <|endoftext|>, <|padding|> and the five role tokens

# Any character but lone surrogates; markers appear as whole pieces so that they are not vanishingly rare.
pieces = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12), st.sampled_from(MARKERS)
)
texts = st.lists(pieces, min_size=1, max_size=5).map("".join)


def _readable(text: str) -> bool:
    try:
        normalize_messages([{"role": "prompter", "text": text}])
    except ValueError:
        return False
    return True


@st.composite
def conversations(draw):
    """A valid conversation: optional system message, alternating turns (prompter first), >= 1 reply."""
    n_turns = draw(st.integers(min_value=2, max_value=6))
    text = texts.filter(_readable)
    messages = [{"role": "system", "text": draw(text)}] if draw(st.booleans()) else []
    messages += [{"role": ("prompter", "assistant")[k % 2], "text": draw(text)} for k in range(n_turns)]
    if draw(st.booleans()):  # the ecosystem's form: user / content
        messages = [{"role": "user" if m["role"] == "prompter" else m["role"], "content": m["text"]} for m in messages]
    return messages


def rendered(message) -> str:
    """A normalised message as its tokens decode: marker + text in NFC (the tokenizer's normaliser) + eos."""
    return render_message({**message, "text": unicodedata.normalize("NFC", message["text"])})


@given(conversations())
def test_trained_targets_decode_to_exactly_the_assistant_messages(tokenizer, messages):
    normalized = normalize_messages(messages)
    example = tokenize_conversation(messages, tokenizer)
    shifted = shift_for_next_token(example)
    T = len(example["input_ids"])
    # lengths agree
    assert {len(v) for v in example.values()} == {T}
    assert {len(v) for v in shifted.values()} == {T - 1}
    # the shift: targets[t] == input_ids[t + 1], the label mask moves with the targets
    assert shifted["targets"] == example["input_ids"][1:] and shifted["input_ids"] == example["input_ids"][:-1]
    assert shifted["label_masks"] == example["label_mask"][1:]
    target_message = example["message_indices"][1:]
    trained = [t for t in range(T - 1) if shifted["label_masks"][t]]
    # no trained target belongs to a non-assistant message
    assert all(normalized[target_message[t]]["role"] == ASSISTANT for t in trained)
    # decoded trained targets, message by message, are the rendered assistant messages, and only those
    for index, message in enumerate(normalized):
        ids = [shifted["targets"][t] for t in trained if target_message[t] == index]
        expected = rendered(message) if message["role"] == ASSISTANT else ""
        assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == expected
    # typed markers stay text: role ids are exactly the inserted markers and closing <|endoftext|>s
    assert sum(i in ROLE_IDS for i in example["input_ids"]) == 2 * len(normalized)


@given(conversations(), st.integers(min_value=1, max_value=80))
def test_truncation_is_a_prefix_and_warns_exactly_when_nothing_is_trained(tokenizer, messages, max_length):
    full = tokenize_conversation(messages, tokenizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cut = tokenize_conversation(messages, tokenizer, max_length=max_length)
    assert all(cut[k] == full[k][:max_length] for k in full)
    warned = any("left no trained token" in str(w.message) for w in caught)
    assert warned == (len(full["input_ids"]) > max_length and not any(cut["label_mask"][1:]))


@given(st.lists(conversations(), min_size=1, max_size=4))
def test_a_padded_batch_holds_each_example_unchanged(tokenizer, batch_messages):
    examples = [tokenize_conversation(m, tokenizer) for m in batch_messages]
    batch = AssistantOnlyCollator(tokenizer.pad_token_id)(examples)
    labels = AssistantOnlyCollator(tokenizer.pad_token_id, convention="labels")(examples)["labels"]
    for row, example in enumerate(examples):
        alone = shift_for_next_token(example)
        n = len(alone["targets"])
        assert batch["targets"][row, :n].tolist() == alone["targets"]
        assert batch["label_masks"][row, :n].tolist() == alone["label_masks"]
        assert not batch["label_masks"][row, n:].any()  # padding is never trained
        # the two conventions train the same targets: labels[t + 1] != -100 exactly where label_masks[t]
        assert torch.equal(labels[row, 1:] != -100, batch["label_masks"][row])
