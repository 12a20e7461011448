"""A batch at a glance: examples × positions, coloured by padding, not trained, trained.

Introduced in notebook 03_mask (all course conversations padded into one batch). The colours are the
chips' (:mod:`sft_utils.viz.chips`): grey not trained, green trained, white padding.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from .chips import MASK_COLORS

STATES = ("padding", "not trained", "trained")  # values 0, 1, 2 of the image
STATE_COLORS = ("#ffffff", MASK_COLORS[False], MASK_COLORS[True])


def mask_states(label_mask, attention_mask) -> np.ndarray:
    """int ``[B, L]``: 0 padding (attention 0), 1 real but not trained, 2 trained (label_mask on a real token).

    Args: ``label_mask`` and ``attention_mask``, ``[B, L]`` tensors or arrays (bool or 0/1), as
    ``AssistantOnlyCollator.pad`` returns them. Raises ValueError when the shapes differ or are not 2-d.
    """
    label_mask, attention_mask = np.asarray(label_mask).astype(bool), np.asarray(attention_mask).astype(bool)
    if label_mask.shape != attention_mask.shape or label_mask.ndim != 2:
        raise ValueError(
            f"label_mask and attention_mask must both be [batch, positions], got {label_mask.shape} and "
            f"{attention_mask.shape}"
        )
    return attention_mask.astype(int) + (label_mask & attention_mask).astype(int)


def mask_heatmap(label_mask, attention_mask, *, names=None, ax=None, title="Label mask and padding of a batch"):
    """Draw :func:`mask_states` as an image (rows = examples, columns = token positions) with a legend.

    Args:
        label_mask, attention_mask: ``[B, L]`` (see :func:`mask_states`).
        names: B row labels (e.g. conversation ids); default the row numbers.
        ax: matplotlib Axes to draw on (default: a new figure sized to the batch).
        title: the Axes' title.

    Returns the Axes; its image holds the states (``ax.images[0].get_array()``).
    Raises ValueError on bad shapes or a ``names`` of the wrong length.
    """
    states = mask_states(label_mask, attention_mask)
    if names is not None and len(names) != states.shape[0]:
        raise ValueError(f"{len(names)} names for {states.shape[0]} rows")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.8 + 0.28 * states.shape[0]), layout="constrained")
    cmap = ListedColormap(STATE_COLORS)
    ax.imshow(states, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=2.5)
    ax.set_yticks(range(states.shape[0]), names if names is not None else range(states.shape[0]))
    ax.set_xlabel("position (tokens)")
    ax.set_ylabel("example")
    ax.set_title(title)
    handles = [Patch(facecolor=c, edgecolor="#6b7280", label=s) for s, c in zip(STATES, STATE_COLORS)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax
