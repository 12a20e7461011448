"""One visual language for the whole course: the colours of every chip, heatmap and curve, defined once.

Introduced in notebook 03_mask. A trained token is the same green and an untrained one the same grey in the
chips of 03, 04 and 06, the heatmaps of 03 and 04, 06's figure and the viewer; padding is white (with a dashed
outline on chips). Under a loss overlay, untrained targets are hatched instead, so that grey never reads as a
low loss. The loss
colour scale is fixed in nats, from 0 to ln 50 304 (a uniform guess over Pythia's vocabulary, 10.8 nats),
so that a red chip means the same loss in every notebook.
"""

from __future__ import annotations

import math
import numbers

TRAINED = "#4ade80"
UNTRAINED = "#e5e7eb"
PADDING = "#ffffff"
TARGET_IS_PADDING = "#c7d2fe"  # a real input whose next token is padding: nothing to predict
MASK_COLORS = {True: TRAINED, False: UNTRAINED}
ROLE_COLORS = {"system": "#ddd6fe", "prompter": "#bfdbfe", "assistant": "#bbf7d0"}
# Light colours, so that dark text stays readable on every chip.
MESSAGE_COLORS = ("#fde68a", "#bfdbfe", "#fbcfe8", "#bbf7d0", "#fed7aa", "#ddd6fe", "#a5f3fc", "#e5e7eb")
PAD_STYLE = f"background:{PADDING};border:1px dashed #9ca3af;color:#9ca3af"
HATCH_STYLE = "background:repeating-linear-gradient(45deg,#f3f4f6 0 3px,#d1d5db 3px 5px);color:#6b7280"
REMOVED_STYLE = "opacity:0.35;text-decoration:line-through"
LOSS_RGB = (220, 38, 38)  # red; the alpha channel carries the loss
LOSS_MAX_NATS = math.log(50304)  # full red: the loss of a uniform guess over Pythia's 50 304 logits


def _check_numbers(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number (nats), got {type(value).__name__}")


def loss_color(value: float, vmax: float = LOSS_MAX_NATS) -> str:
    """Inline style of a trained target with loss ``value`` (nats): red with alpha = value / vmax, clipped to
    [0, 1]. ``vmax`` defaults to the course's fixed scale, :data:`LOSS_MAX_NATS`. Raises TypeError for values that
    are not real numbers (a str)."""
    _check_numbers(value=value, vmax=vmax)
    alpha = 0.0 if vmax <= 0 else min(max(value / vmax, 0.0), 1.0)
    r, g, b = LOSS_RGB
    return f"background:rgba({r},{g},{b},{alpha:.2f})"


def loss_colorbar_html(vmax: float = LOSS_MAX_NATS) -> str:
    """A horizontal colour bar for the loss chips: white at 0 nats to full red at ``vmax`` nats (HTML). Raises
    TypeError for a ``vmax`` that is not a real number."""
    _check_numbers(vmax=vmax)
    r, g, b = LOSS_RGB
    bar = (
        f"display:inline-block;width:160px;height:10px;vertical-align:middle;border:1px solid #d1d5db;"
        f"background:linear-gradient(to right,rgba({r},{g},{b},0),rgba({r},{g},{b},1))"
    )
    return (
        f'<span class="loss-colorbar" style="font-size:12px">0 <span style="{bar}"></span> {vmax:.1f} nats '
        "(cross-entropy of each trained target)</span>"
    )


def loss_colormap():
    """The same scale for matplotlib: a colormap from white (0) to the chips' red (1)."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("sft-loss", [(1, 1, 1), tuple(c / 255 for c in LOSS_RGB)])


# The chat widget's chips (notebooks 07 and 08): the probability the model gave each token of its reply, as the
# intensity of one blue (Okabe and Ito's, safe for every colour vision): pale for a guess, deep for a sure token.
PROBABILITY_RGB = (0, 114, 178)
STOP_STYLE = "background:#ffffff;border:1px solid #6b7280;color:#374151"  # the token that ended the reply


def probability_color(p: float) -> str:
    """Inline style of a reply token the model gave probability ``p`` (0 to 1, clipped): blue with alpha = p,
    white text once the blue is deep. Raises TypeError for a ``p`` that is not a real number."""
    _check_numbers(p=p)
    p = min(max(float(p), 0.0), 1.0)
    r, g, b = PROBABILITY_RGB
    return f"background:rgba({r},{g},{b},{p:.2f})" + (";color:#ffffff" if p > 0.55 else "")


def probability_legend_html() -> str:
    """A colour bar for the chat chips: white at probability 0 to full blue at 1 (HTML)."""
    r, g, b = PROBABILITY_RGB
    bar = (
        f"display:inline-block;width:160px;height:10px;vertical-align:middle;border:1px solid #d1d5db;"
        f"background:linear-gradient(to right,rgba({r},{g},{b},0),rgba({r},{g},{b},1))"
    )
    return (
        f'<span class="sft-chat-legend" style="font-size:12px">0 <span style="{bar}"></span> 1 '
        "(probability the model gave each token it chose)</span>"
    )
