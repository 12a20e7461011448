"""The batch heatmap (sft_utils.viz.heatmap): its image is the padding / not trained / trained state."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from sft_utils import AssistantOnlyCollator, tokenize_conversation
from sft_utils.viz import mask_heatmap, mask_states


def test_image_legend_and_axes_of_a_padded_batch(tokenizer, course_conversations):
    chosen = course_conversations[1:3]  # memo-hello (28 tokens), capital-single (27 tokens)
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in chosen]
    padded = AssistantOnlyCollator(tokenizer.pad_token_id).pad(examples)
    ax = mask_heatmap(padded["label_mask"], padded["attention_mask"], names=[c["id"] for c in chosen])
    image = np.asarray(ax.images[0].get_array())
    expected = np.zeros((2, 28), dtype=int)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        expected[row, :n] = [2 if m else 1 for m in e["label_mask"]]
    assert image.shape == (2, 28) and (image == expected).all()
    assert expected[1, 27] == 0 and expected[0, 8] == 2  # capital-single is padded; <|assistant|> is trained
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["padding", "not trained", "trained"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["memo-hello", "capital-single"]
    assert ax.get_xlabel() == "position (tokens)" and ax.get_title() == "Label mask and padding of a batch"
    plt.close(ax.figure)


def test_states_ignore_a_label_mask_on_padding():
    states = mask_states(torch.tensor([[True, True, True]]), torch.tensor([[1, 1, 0]]))
    assert states.tolist() == [[2, 2, 0]]


def test_bad_shapes_and_names_are_refused():
    with pytest.raises(ValueError, match="must both be"):
        mask_states(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="1 names for 2 rows"):
        mask_heatmap(np.zeros((2, 3)), np.ones((2, 3)), names=["a"])


def test_a_shifted_batch_marks_inputs_whose_target_is_padding():
    from sft_utils.viz.heatmap import STATES, mask_states

    label_masks = [[0, 1, 1, 0], [0, 1, 0, 0]]
    attention = [[1, 1, 1, 1], [1, 1, 1, 0]]  # inputs
    target_attention = [[1, 1, 1, 1], [1, 1, 0, 0]]  # row 1's last real input predicts padding
    states = mask_states(label_masks, attention, target_attention)
    assert states.tolist() == [[1, 2, 2, 1], [1, 2, 3, 0]]
    assert STATES[3] == "target is padding"


def test_one_palette_for_chips_and_heatmaps():
    from sft_utils.viz import chips, heatmap, palette

    assert heatmap.STATE_COLORS[:3] == (palette.PADDING, palette.UNTRAINED, palette.TRAINED)
    assert chips.MASK_COLORS is palette.MASK_COLORS and chips.loss_color is palette.loss_color


def test_the_course_colours_are_written_only_in_the_palette():
    """Chips, heatmaps and notebooks take their colours from sft_utils.viz.palette: no copy of a semantic
    colour, and no other colour map for masks (notebook 04 once drew its batch in viridis)."""
    from pathlib import Path

    import nbformat

    from sft_utils.viz import palette

    root = Path(palette.__file__).resolve().parents[2]
    semantic = [palette.TRAINED, palette.UNTRAINED, palette.TARGET_IS_PADDING, *palette.ROLE_COLORS.values()]
    semantic += [",".join(map(str, palette.LOSS_RGB)), "viridis"]
    sources = {p: p.read_text() for p in (root / "sft_utils").rglob("*.py") if p.name != "palette.py"}
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        sources[path] = "\n".join(c.source for c in cells if c.cell_type == "code")
    found = [
        (str(p.relative_to(root)), c) for p, text in sources.items() for c in semantic if c.lower() in text.lower()
    ]
    assert found == []
