"""Static token chips (sft_utils.viz.chips): count, classes, tooltips and counts line of known conversations."""

import html
import math
import re

import pytest

from sft_utils import CHATML, LLAMA3, AssistantOnlyCollator, tokenize_conversation
from sft_utils.viz import counts_text, shifted_chips, token_chips, token_strings
from sft_utils.viz.chips import MASK_COLORS, ROLE_COLORS

# memo-hello, from the memo's table (notebook 03): message lengths 8, 6, 7, 7 tokens; 1 and 3 are the assistant's.
HELLO_MESSAGE_INDICES = [0] * 8 + [1] * 6 + [2] * 7 + [3] * 7
HELLO_LABEL_MASK = [False] * 8 + [True] * 6 + [False] * 7 + [True] * 7


def chips(text: str, kind: str = "chip") -> list[str]:
    """Class lists of the chips (or targets, inputs, columns) in the HTML, in order."""
    return [c.split() for c in re.findall(r'class="(' + kind + r'(?: [^"]*)?)"', text)]


def titles(text: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'<span class="chip[^"]*" title="([^"]*)"', text)]


def counts(text: str) -> str:
    return html.unescape(re.search(r'class="sft-chips-counts"[^>]*>([^<]*)<', text).group(1))


@pytest.fixture(scope="module")
def hello(tokenizer, course_conversations):
    messages = next(c for c in course_conversations if c["id"] == "memo-hello")["messages"]
    return tokenize_conversation(messages, tokenizer)


def test_label_mask_view_has_one_chip_per_token_with_its_mask_class(hello, tokenizer):
    assert hello["label_mask"] == HELLO_LABEL_MASK  # the known conversation, as the memo draws it
    out = token_chips(hello, tokenizer, view="label_mask")
    classes = chips(out)
    assert len(classes) == 28
    assert [f"mask-{int(m)}" in c for c, m in zip(classes, HELLO_LABEL_MASK)] == [True] * 28
    assert [c[2] for c in classes] == [f"msg-{i}" for i in HELLO_MESSAGE_INDICES]
    assert counts(out) == "28 tokens · 13 trained (46%) · 0 padding"
    # Colours follow the mask, inline so that GitHub keeps them.
    styles = re.findall(r'<span class="chip[^"]*" title="[^"]*" style="[^"]*background:(#[0-9a-f]{6})', out)
    assert styles == [MASK_COLORS[m] for m in HELLO_LABEL_MASK]
    assert 'data-view="label_mask"' in out and "trained (label_mask 1)" in out and "sft-chips-warning" not in out


def test_tooltips_and_visible_whitespace(hello, tokenizer):
    out = token_chips(hello, tokenizer)
    assert titles(out)[0] == "position 0 · id 50279 · <|prompter|> · message 0 (prompter) · label_mask 0"
    assert titles(out)[9] == "position 9 · id 42 · I · message 1 (assistant) · label_mask 1"
    texts = [html.unescape(t) for t in re.findall(r'<span class="chip[^>]*>([^<]*)</span>', out)]
    assert texts == token_strings(tokenizer, hello["input_ids"])
    assert texts[3] == "␣how"


def test_role_and_message_views(hello, tokenizer):
    by_role = token_chips(hello, tokenizer, view="role")
    roles = [c[3] for c in chips(by_role)]
    assert roles == ["role-assistant" if m else "role-prompter" for m in HELLO_LABEL_MASK]
    backgrounds = re.findall(r'<span class="chip[^"]*" title="[^"]*" style="[^"]*background:(#[0-9a-f]{6})', by_role)
    assert backgrounds == [ROLE_COLORS[r.removeprefix("role-")] for r in roles]
    by_message = token_chips(hello, tokenizer, view="message")
    assert len(set(re.findall(r'title="[^"]*" style="[^"]*background:(#[0-9a-f]{6})', by_message))) == 4
    assert "message 3 (assistant)" in by_message


def test_newline_tokens_break_the_line(tokenizer, course_conversations):
    messages = next(c for c in course_conversations if c["id"] == "haiku-system")["messages"]
    example = tokenize_conversation(messages, tokenizer)
    out = token_chips(example, tokenizer, view="role")
    newline_chips = sum("↵" in s for s in token_strings(tokenizer, example["input_ids"]))
    assert newline_chips == 2 and out.count("<br>") == 2
    assert chips(out)[0][3] == "role-system"


def test_max_length_strikes_removed_tokens_and_counts_what_is_kept(hello, tokenizer, course_conversations):
    out = token_chips(hello, tokenizer, max_length=10)
    classes = chips(out)
    assert len(classes) == 28 and [("removed" in c) for c in classes] == [False] * 10 + [True] * 18
    assert counts(out) == "10 tokens · 2 trained (20%) · 0 padding · 18 removed by max_length=10"
    assert "sft-chips-warning" not in out
    # max_length 8 stops before the first reply; tokenize_conversation warns by the same rule.
    with pytest.warns(UserWarning, match="no trained token"):
        tokenize_conversation(course_conversations[1]["messages"], tokenizer, max_length=8)
    out = token_chips(hello, tokenizer, max_length=8)
    assert counts(out) == "8 tokens · 0 trained (0%) · 0 padding · 20 removed by max_length=8"
    assert "max_length=8 leaves no trained token" in out


def test_padding_from_a_batch_row(hello, tokenizer):
    short = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]
    short_example = tokenize_conversation(short, tokenizer)
    padded = AssistantOnlyCollator(tokenizer.pad_token_id).pad([hello, short_example])
    row = {k: padded[k][1] for k in ("input_ids", "label_mask", "attention_mask")}
    n = len(short_example["input_ids"])
    out = token_chips(row, tokenizer)
    classes = chips(out)
    assert len(classes) == 28 and sum("pad" in c for c in classes) == 28 - n
    shifted = shifted_chips(row, tokenizer)
    assert sum("pad" in c for c in chips(shifted, "chip input")) == 27 - n  # inputs are positions 0..26: n..26 padding
    assert (
        sum("pad" in c for c in chips(shifted, "chip target")) == 28 - n
    )  # targets are positions 1..27: n..27 padding
    assert (
        counts(out)
        == f"{n} tokens · {sum(short_example['label_mask'])} trained ({sum(short_example['label_mask']) / n:.0%}) · {28 - n} padding"
    )


def test_shifted_view_puts_each_input_above_its_target(hello, tokenizer):
    out = shifted_chips(hello, tokenizer)
    assert len(chips(out, "col")) == 27 and len(chips(out)) == 54
    targets = chips(out, "chip target")
    assert [f"mask-{int(m)}" in c for c, m in zip(targets, HELLO_LABEL_MASK[1:])] == [True] * 27
    texts = [html.unescape(t) for t in re.findall(r'<span class="chip (?:input|target)[^>]*>([^<]*)</span>', out)]
    strings = token_strings(tokenizer, hello["input_ids"])
    assert texts[0::2] == strings[:-1] and texts[1::2] == strings[1:]
    # The <|assistant|> marker (position 8) is a trained target, predicted from the prompter's <|endoftext|>.
    assert "position 7 · input <|endoftext|> → target <|assistant|> · target id 50280" in html.unescape(out)
    assert counts(out) == "27 targets · 13 trained (48%) · 0 padding"
    cut = shifted_chips(hello, tokenizer, max_length=8)
    assert sum("removed" in c for c in chips(cut, "col")) == 20
    assert counts(cut) == "7 targets · 0 trained (0%) · 0 padding · 20 removed by max_length=8"
    assert "leaves no trained token" in cut


def test_loss_overlay_intensity_is_the_loss_and_untrained_targets_are_hatched(hello, tokenizer):
    loss = [t / 26 * 5.0 for t in range(27)]  # a loss that grows with the position, up to 5 nats
    out = shifted_chips(hello, tokenizer, token_loss=loss)
    targets = chips(out, "chip target")
    assert [("hatched" in c) for c in targets] == [not m for m in HELLO_LABEL_MASK[1:]]
    alphas = [float(a) for a in re.findall(r"background:rgba\(220,38,38,([0-9.]+)\)\">", out)]
    trained = [t for t, m in enumerate(HELLO_LABEL_MASK[1:]) if m]
    # The scale is fixed, the same in every notebook: full red at ln 50 304 = 10.83 nats, whatever the losses.
    assert alphas[: len(trained)] == [round(loss[t] / math.log(50304), 2) for t in trained]
    expected_mean = sum(loss[t] for t in trained) / len(trained)
    assert counts(out) == f"27 targets · 13 trained (48%) · 0 padding · mean CE {expected_mean:.3f} nats"
    assert "CE 10.8 nats" in out and "loss-colorbar" in out
    rescaled = shifted_chips(hello, tokenizer, token_loss=loss, vmax=5.0)  # a chosen scale still works
    assert "CE 5.0 nats" in rescaled


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"view": "colour"}, "view must be one of"),
        ({"max_length": 0}, "max_length must be an int >= 1"),
    ],
)
def test_bad_arguments_are_refused(hello, tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        token_chips(hello, tokenizer, **kwargs)


def test_bad_examples_are_refused(hello, tokenizer):
    with pytest.raises(ValueError, match="differ in length"):
        token_chips({**hello, "label_mask": hello["label_mask"][:-1]}, tokenizer)
    with pytest.raises(ValueError, match="needs the example's message_indices"):
        token_chips({"input_ids": hello["input_ids"], "label_mask": hello["label_mask"]}, tokenizer, view="role")
    with pytest.raises(ValueError, match="no label_mask"):
        shifted_chips({"input_ids": hello["input_ids"]}, tokenizer)
    with pytest.raises(ValueError, match="token_loss has 3 values, expected one per target"):
        shifted_chips(hello, tokenizer, token_loss=[1.0, 2.0, 3.0])


def test_typed_markers_are_escaped_text(tokenizer, course_conversations):
    messages = next(c for c in course_conversations if c["id"] == "format-question")["messages"]
    out = token_chips(tokenize_conversation(messages, tokenizer), tokenizer)
    assert "<|" not in out and "&lt;|assistant|&gt;" in out


def test_counts_text_without_real_tokens():
    assert counts_text([False, False], [0, 0]) == "0 tokens · 0 trained (–) · 2 padding"


def test_real_conversations_one_chip_per_token_with_its_mask(tokenizer, shared_conversations):
    """100 real Open-Assistant conversations (nine languages): the chips' text and classes follow the ids and mask."""
    for c in shared_conversations:
        example = tokenize_conversation(c["messages"], tokenizer, conversation_id=c["id"])
        out = token_chips(example, tokenizer, view="message")
        classes = chips(out)
        assert len(classes) == len(example["input_ids"]), c["id"]
        assert [chip[1] for chip in classes] == [f"mask-{int(m)}" for m in example["label_mask"]], c["id"]
        texts = [html.unescape(t) for t in re.findall(r'<span class="chip[^>]*>([^<]*)</span>', out)]
        assert texts == token_strings(tokenizer, example["input_ids"]), c["id"]


@pytest.mark.parametrize("chat_format", [CHATML, LLAMA3], ids=lambda f: f.name)
def test_other_formats_read_each_role_off_its_header(chat_format, format_tokenizer, course_conversations):
    """ChatML's headers all open with <|im_start|>, Llama 3's with <|start_header_id|> (after <|begin_of_text|>,
    message 0's): the role is the header's, not the first token's."""
    tokenizer = format_tokenizer(chat_format)
    conversation = next(c for c in course_conversations if c["id"] == "packing-list")  # system, 2 exchanges
    roles = [m["role"] for m in conversation["messages"]]
    assert roles == ["system", "prompter", "assistant", "prompter", "assistant"]
    example = tokenize_conversation(conversation["messages"], tokenizer, chat_format=chat_format)
    by_role = token_chips(example, tokenizer, view="role", chat_format=chat_format)
    assert [c[3] for c in chips(by_role)] == [f"role-{roles[i]}" for i in example["message_indices"]]
    assert [f"mask-{int(m)}" in c for c, m in zip(chips(by_role), example["label_mask"])] == [True] * len(
        example["input_ids"]
    )
    first = chat_format.prefix or chat_format.marker_token("system")
    assert titles(by_role)[0] == f"position 0 · id 50277 · {first} · message 0 (system) · label_mask 0"
    shifted = shifted_chips(example, tokenizer, chat_format=chat_format)
    assert "message 4 (assistant)" in html.unescape(shifted) and "(?)" not in html.unescape(shifted)


def test_a_tokenizer_without_the_formats_tokens_is_named(tokenizer, format_tokenizer, course_conversations):
    chatml = format_tokenizer(CHATML)
    example = tokenize_conversation(course_conversations[1]["messages"], chatml, chat_format=CHATML)
    with pytest.raises(ValueError, match=re.escape("load_tokenizer(chat_format=sft_utils.CHATML)")):
        token_chips(example, tokenizer, chat_format=CHATML)
    with pytest.raises(TypeError, match="chat_format must be a ChatFormat"):
        shifted_chips(example, chatml, chat_format="chatml")
