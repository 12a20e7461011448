"""The interactive viewer (sft_utils.viz.widgets) without a browser: set controls, read the rendered HTML."""

import html
import re

import nbformat
import pytest
import torch
import torch.nn.functional as F

from sft_utils import CHATML, ConversationError, shift_for_next_token, tokenize_conversation
from sft_utils.course.notebooks import WIDGET_MIME, clean, problems
from sft_utils.viz import MaskViewer, parse_typed_conversation


def chip_classes(viewer) -> list[list[str]]:
    return [c.split() for c in re.findall(r'class="(chip(?: [^"]*)?)"', viewer.html.value)]


def counts(viewer) -> str:
    return html.unescape(re.search(r'class="sft-chips-counts"[^>]*>([^<]*)<', viewer.html.value).group(1))


@pytest.fixture()
def viewer(tokenizer, course_conversations):
    return MaskViewer(course_conversations, tokenizer, selected="memo-riddle")


@pytest.fixture(scope="module")
def riddle(tokenizer, course_conversations):
    return tokenize_conversation(course_conversations[0]["messages"], tokenizer)


def test_riddle_label_mask_view(viewer, riddle):
    assert viewer.picker.value == "memo-riddle" and viewer.view.value == "label_mask"
    classes = chip_classes(viewer)
    assert len(classes) == len(riddle["input_ids"]) == 103
    assert [f"mask-{int(m)}" in c for c, m in zip(classes, riddle["label_mask"])] == [True] * 103
    assert sum("mask-1" in c for c in classes) == 52
    assert counts(viewer) == "103 tokens · 52 trained (50%) · 0 padding"
    assert viewer.max_length.max == viewer.max_length.value == 103


def test_views_switch_classes_and_layout(viewer, riddle):
    viewer.view.value = "role"
    assert 'data-view="role"' in viewer.html.value
    roles = [c[3] for c in chip_classes(viewer)]
    assert roles == ["role-assistant" if m else "role-prompter" for m in riddle["label_mask"]]
    viewer.view.value = "message"
    assert [c[2] for c in chip_classes(viewer)] == [f"msg-{i}" for i in riddle["message_indices"]]
    viewer.view.value = "shifted"
    assert len(chip_classes(viewer)) == 2 * 102 and counts(viewer) == "102 targets · 52 trained (51%) · 0 padding"


def test_max_length_slider_shows_truncation_and_warns(viewer, riddle):
    first_reply = riddle["label_mask"].index(True)  # 21: tokens before the first <|assistant|>
    viewer.max_length.value = first_reply + 5
    assert counts(viewer) == f"{first_reply + 5} tokens · 5 trained ({5 / (first_reply + 5):.0%}) · 0 padding · " + (
        f"{103 - first_reply - 5} removed by max_length={first_reply + 5}"
    )
    assert sum("removed" in c for c in chip_classes(viewer)) == 103 - first_reply - 5
    assert "sft-chips-warning" not in viewer.html.value
    viewer.max_length.value = first_reply
    assert f"{first_reply} tokens · 0 trained (0%)" in counts(viewer)
    assert f"max_length={first_reply} leaves no trained token" in viewer.html.value


def test_picking_another_conversation_resets_the_slider(viewer):
    viewer.max_length.value = 10
    viewer.picker.value = "memo-hello"
    assert viewer.max_length.max == viewer.max_length.value == 28
    assert len(chip_classes(viewer)) == 28 and counts(viewer) == "28 tokens · 13 trained (46%) · 0 padding"
    assert "memo-hello · label mask view" in viewer.html.value


def test_typed_conversation_as_lines_or_json(viewer, tokenizer):
    viewer.text.value = "Hello, how are you?\nI am fine.\nWhat is your name?\nMy name is John."
    assert viewer.picker.value == "typed" and len(chip_classes(viewer)) == 28
    assert counts(viewer) == "28 tokens · 13 trained (46%) · 0 padding"
    viewer.text.value = '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo\\n!"}]}'
    expected = tokenize_conversation(
        [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Yo\n!"}], tokenizer
    )
    assert len(chip_classes(viewer)) == len(expected["input_ids"]) and viewer.html.value.count("<br>") == 1
    viewer.text.value = '[{"role": "assistant", "text": "first"}]'
    assert "sft-chips-error" in viewer.html.value and "typed" in viewer.html.value and "prompter" in viewer.html.value


def test_parse_typed_conversation_errors():
    assert parse_typed_conversation("a\n\nb\\nc") == [
        {"role": "prompter", "text": "a"},
        {"role": "assistant", "text": "b\nc"},
    ]
    with pytest.raises(ConversationError, match="typed conversation: the text box is empty"):
        parse_typed_conversation("  \n")
    with pytest.raises(ConversationError, match="typed conversation: not valid JSON"):
        parse_typed_conversation("[{")
    with pytest.raises(ConversationError, match="start a plain first line with another character"):
        parse_typed_conversation("[joke] Tell me one.\nNo.")
    with pytest.raises(ConversationError, match="a JSON object needs a 'messages' list"):
        parse_typed_conversation('{"id": "x"}')


def test_one_typed_line_asks_for_the_reply(viewer):
    """Before: "no assistant message ... use generation_prompt_ids", which a learner at the text box cannot act on."""
    with pytest.raises(ConversationError, match="one line is the prompter's message only.*next line"):
        parse_typed_conversation("What is 2 + 2?")
    # The whole Open-Assistant string typed on one line: its markers are text, and the viewer says so.
    viewer.text.value = "<|prompter|>Hi<|endoftext|><|assistant|>Hello<|endoftext|>"
    assert "one line is the prompter&#x27;s message only" in viewer.html.value
    assert "markers typed in a line (&lt;|prompter|&gt;, &lt;|assistant|&gt;) stay plain text" in viewer.html.value


def test_loss_view_matches_cross_entropy(tokenizer, course_conversations, tiny_model, riddle):
    viewer = MaskViewer(course_conversations, tokenizer, model=tiny_model, selected="memo-riddle", view="loss")
    assert len(re.findall(r'class="chip target[^"]*hatched', viewer.html.value)) == 102 - 52
    # Independent reference: F.cross_entropy with -100 on untrained targets.
    batch = shift_for_next_token({k: torch.tensor([riddle[k]]) for k in ("input_ids", "label_mask")})
    with torch.no_grad():
        logits = tiny_model(input_ids=batch["input_ids"]).logits
    labels = torch.where(batch["label_masks"], batch["targets"], -100)
    reference = F.cross_entropy(logits[0], labels[0], ignore_index=-100).item()
    assert counts(viewer).endswith(f"mean CE {reference:.3f} nats")
    with pytest.raises(ValueError, match="view must be one of"):
        MaskViewer(course_conversations, tokenizer, view="loss")  # no model, no loss view


def test_constructor_errors(tokenizer, course_conversations):
    with pytest.raises(ValueError, match="no conversation named 'nope'"):
        MaskViewer(course_conversations, tokenizer, selected="nope")
    with pytest.raises(ValueError, match="at least one conversation"):
        MaskViewer([], tokenizer)


def test_bare_message_lists_are_named_by_position(tokenizer):
    viewer = MaskViewer([[{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello"}]], tokenizer)
    assert viewer.picker.value == "conversation 0" and len(chip_classes(viewer)) == 6


def test_a_conversation_without_reply_shows_the_error_instead_of_chips(tokenizer):
    viewer = MaskViewer([[{"role": "prompter", "text": "Hi"}]], tokenizer)
    assert chip_classes(viewer) == []
    assert "conversation 0" in viewer.html.value and "no assistant message" in viewer.html.value


def test_static_html_beside_the_widget_view_survives_cleaning(viewer):
    viewer.max_length.value = 30
    bundle = viewer._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", WIDGET_MIME}
    assert bundle["text/html"] == viewer.html.value and "30 tokens" in bundle["text/html"]
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"state": {}}
    cell = nbformat.v4.new_code_cell("viewer", execution_count=1)
    bar = {"text/plain": "  0%|          | 0/80", WIDGET_MIME: {"model_id": "x"}}  # a tqdm bar: dropped
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=bar),
        nbformat.v4.new_output("execute_result", data=bundle, execution_count=1),
    ]
    nb.cells = [cell]
    clean(nb)
    assert [set(o["data"]) for o in nb.cells[0].outputs] == [{"text/plain", "text/html"}]
    assert nb.cells[0].outputs[0]["data"]["text/html"] == viewer.html.value
    assert problems(nb) == []


def test_one_conversation_instead_of_a_list_is_refused(tokenizer, course_conversations):
    """Before: a dict was iterated as its keys, a message list as one conversation per message: error chips
    about 'conversation 0' that did not say what was wrong."""
    with pytest.raises(TypeError, match=r"for a single one, pass \[conversation\]"):
        MaskViewer(course_conversations[0], tokenizer)
    with pytest.raises(TypeError, match=r"the messages of one conversation; pass \[messages\]"):
        MaskViewer(course_conversations[0]["messages"], tokenizer)


def test_conversations_sharing_an_id_stay_apart(tokenizer, course_conversations):
    """Before: the second replaced the first under one name, listed twice in the picker."""
    first, second = course_conversations[:2]
    viewer = MaskViewer([first, {**second, "id": first["id"]}], tokenizer)
    assert [value for _, value in viewer.picker.options] == [first["id"], f"{first['id']} (2)", "typed"]
    viewer.picker.value = f"{first['id']} (2)"
    assert viewer._messages == second["messages"]


def test_the_viewer_in_chatml(format_tokenizer, course_conversations):
    tokenizer = format_tokenizer(CHATML)
    viewer = MaskViewer(course_conversations, tokenizer, selected="memo-riddle", chat_format=CHATML)
    riddle = tokenize_conversation(course_conversations[0]["messages"], tokenizer, chat_format=CHATML)
    classes = chip_classes(viewer)
    assert [f"mask-{int(m)}" in c for c, m in zip(classes, riddle["label_mask"])] == [True] * len(classes)
    n, trained = len(riddle["input_ids"]), sum(riddle["label_mask"])
    assert counts(viewer) == f"{n} tokens · {trained} trained ({trained / n:.0%}) · 0 padding"
    viewer.view.value = "role"
    roles = [m["role"] for m in course_conversations[0]["messages"]]
    assert [c[3] for c in chip_classes(viewer)] == [f"role-{roles[i]}" for i in riddle["message_indices"]]
    viewer.text.value = "<|im_start|>user Hi<|im_end|>"
    assert "markers typed in a line (&lt;|im_start|&gt;) stay plain text" in viewer.html.value


def test_the_viewer_names_a_tokenizer_without_the_formats_tokens(tokenizer, course_conversations):
    viewer = MaskViewer(course_conversations, tokenizer, chat_format=CHATML)
    assert "tokenizer has no &#x27;&lt;|im_start|&gt;&#x27; token" in viewer.html.value
    assert "sft_utils.load_tokenizer(chat_format=sft_utils.CHATML)" in viewer.html.value
    with pytest.raises(TypeError, match="chat_format must be a ChatFormat"):
        MaskViewer(course_conversations, tokenizer, chat_format="chatml")
