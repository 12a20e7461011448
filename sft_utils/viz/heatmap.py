"""A batch at a glance: examples × positions, coloured by padding, not trained, trained.

Introduced in notebook 03_mask (all course conversations padded into one batch); used again in 04_shift for
a shifted batch, where the last real input of a shorter row has padding as its target. The colours are the
course's (:mod:`sft_utils.viz.palette`): grey not trained, green trained, white padding, orange with a black
diamond for a real input whose target is padding (one column per row: the marker keeps it visible in a wide batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..steps.example import describe
from .palette import EDGE, INK, MASK_COLORS, PADDING, TARGET_IS_PADDING

# values 0, 1, 2, 3 of the image
STATES = ("padding", "not trained", "trained", "target is padding")
STATE_COLORS = (PADDING, MASK_COLORS[False], MASK_COLORS[True], TARGET_IS_PADDING)


def _mask(name: str, value) -> np.ndarray:
    """A bool array of a mask given as a tensor, an array or a list of rows; raises as :func:`mask_states`."""
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    if not isinstance(value, (np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a [batch, positions] tensor, array or list of rows, got {describe(value)}")
    try:
        array = np.asarray(value)
    except ValueError:  # numpy refuses ragged lists
        raise ValueError(
            f"{name}: rows differ in length; pad them into one [batch, positions] array first "
            "(AssistantOnlyCollator.pad)"
        ) from None
    if array.dtype == object or not (array.dtype == bool or np.isin(array, (0, 1)).all()):
        shown = describe(value) if array.dtype == object else f"values {np.unique(array)[:5].tolist()}"
        raise ValueError(f"{name} must hold only 0 and 1 (or bools), got {shown}")
    return array.astype(bool)


def mask_states(label_mask, attention_mask, target_attention=None) -> np.ndarray:
    """int ``[B, L]``: 0 padding (attention 0), 1 real but not trained, 2 trained (label_mask on a real token),
    3 a real input whose target is padding (only with ``target_attention``).

    Args: ``label_mask`` and ``attention_mask``, ``[B, L]`` tensors or arrays (bool or 0/1), as
    ``AssistantOnlyCollator.pad`` returns them, or a shifted batch's ``label_masks`` and ``attention_mask``;
    for a shifted batch, ``target_attention`` ``[B, L]`` says which targets are real (the unshifted
    attention mask without its first column). Raises ValueError when the shapes differ or are not 2-d, rows
    differ in length (a list of unpadded rows: pad them first, ``AssistantOnlyCollator.pad``) or a mask holds
    values other than 0 and 1; TypeError for a mask that is not a tensor, an array or a list of rows (None, a
    str, an example dict).
    """
    label_mask, attention_mask = _mask("label_mask", label_mask), _mask("attention_mask", attention_mask)
    if label_mask.shape != attention_mask.shape or label_mask.ndim != 2:
        raise ValueError(
            f"label_mask and attention_mask must both be [batch, positions], got {label_mask.shape} and "
            f"{attention_mask.shape}"
        )
    states = attention_mask.astype(int) + (label_mask & attention_mask).astype(int)
    if target_attention is not None:
        target_attention = _mask("target_attention", target_attention)
        if target_attention.shape != attention_mask.shape:
            raise ValueError(f"target_attention must be {attention_mask.shape}, got {target_attention.shape}")
        states[attention_mask & ~target_attention] = 3
    return states


def mask_heatmap(
    label_mask,
    attention_mask,
    *,
    target_attention=None,
    names=None,
    ax=None,
    title="Label mask and padding of a batch",
    xlabel="position (tokens)",
):
    """Draw :func:`mask_states` as an image (rows = examples, columns = token positions) with a legend.

    Args:
        label_mask, attention_mask, target_attention: ``[B, L]`` (see :func:`mask_states`).
        names: B row labels (e.g. conversation ids); default the row numbers.
        ax: matplotlib Axes to draw on (default: a new figure sized to the batch).
        title: the Axes' title.

    Returns the Axes; its image holds the states (``ax.images[0].get_array()``).
    Raises ValueError and TypeError as :func:`mask_states`; ValueError for ``names`` of the wrong length; TypeError
    for ``names`` that are not a list (a str) or an ``ax`` that is not a matplotlib Axes.
    """
    states = mask_states(label_mask, attention_mask, target_attention)
    if names is not None and (isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, np.ndarray))):
        raise TypeError(f"names must be a list of row labels, got {describe(names)}")
    if names is not None and len(names) != states.shape[0]:
        raise ValueError(f"{len(names)} names for {states.shape[0]} rows")
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {describe(ax)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.8 + 0.28 * states.shape[0]), layout="constrained")
    cmap = ListedColormap(STATE_COLORS)
    ax.imshow(states, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=len(STATES) - 0.5)
    ax.set_yticks(range(states.shape[0]), names if names is not None else range(states.shape[0]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("example")
    ax.set_title(title)
    shown = range(len(STATES)) if target_attention is not None else range(3)  # state 3 needs target_attention
    handles = [Patch(facecolor=STATE_COLORS[i], edgecolor=EDGE, label=STATES[i]) for i in shown]
    rows, columns = np.nonzero(states == 3)
    if len(rows):  # one column per row, too thin to see in a long batch: a marker of fixed size on each
        ax.scatter(columns, rows, marker="D", s=28, facecolor=TARGET_IS_PADDING, edgecolor=INK, linewidth=0.8, zorder=3)
        handles[3] = Line2D(
            [],
            [],
            marker="D",
            linestyle="none",
            markersize=6,
            markerfacecolor=TARGET_IS_PADDING,
            markeredgecolor=INK,
            label=STATES[3],
        )
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax
