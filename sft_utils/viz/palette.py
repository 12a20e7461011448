"""One visual language for the whole course: the colours of every chip, heatmap and curve, defined once.

Introduced in notebook 03_mask. A trained token is the same green and an untrained one the same grey in the
chips of 03, 04 and 06, the heatmaps of 03 and 04, 06's figure and the viewer; padding is white (with a dashed
outline on chips). Under a loss overlay, untrained targets are hatched instead, so that grey never reads as a
low loss. The loss
colour scale is fixed in nats, from 0 to ln 50 304 (a uniform guess over Pythia's vocabulary, 10.8 nats),
so that a red chip means the same loss in every notebook.

Curves and bars take their colours from Okabe and Ito's palette ("Color Universal Design", 2008), whose colours stay
apart for readers with protanopia, deuteranopia or tritanopia, and each series also gets its own marker and line
style, so that no meaning rests on colour alone. A masked (assistant-only) run is always blue with circles and a
solid line, a plain-SFT run vermillion with squares and a dashed line, a prompt-weighted run reddish purple with
triangles and a dotted line (:data:`RUN_STYLES`); other comparisons use :data:`SERIES_STYLES` in order.
"""

from __future__ import annotations

import math
import numbers

# Okabe & Ito's eight colours (yellow is left out of lines and bars: too pale on white).
BLACK = "#000000"
ORANGE = "#e69f00"
SKY_BLUE = "#56b4e9"
BLUISH_GREEN = "#009e73"
YELLOW = "#f0e442"
BLUE = "#0072b2"
VERMILLION = "#d55e00"
REDDISH_PURPLE = "#cc79a7"

TRAINED = "#4ade80"
UNTRAINED = "#e5e7eb"
PADDING = "#ffffff"
TARGET_IS_PADDING = ORANGE  # a real input whose next token is padding: nothing to predict
MASK_COLORS = {True: TRAINED, False: UNTRAINED}
ROLE_COLORS = {"system": "#ddd6fe", "prompter": "#bfdbfe", "assistant": "#bbf7d0"}
# Light colours, so that dark text stays readable on every chip.
MESSAGE_COLORS = ("#fde68a", "#bfdbfe", "#fbcfe8", "#bbf7d0", "#fed7aa", "#ddd6fe", "#a5f3fc", "#e5e7eb")
# Text and lines that carry no category: ink, labels, reference lines, warnings.
INK = "#111827"
LABEL_TEXT = "#6b7280"
MUTED_TEXT = "#9ca3af"
EDGE = "#6b7280"
REFERENCE = "#6b7280"  # a reference line (a model's size, a boundary): grey and dotted
BACKGROUND_BAR = "#d1d5db"  # a part two bars share
INPUT_BACKGROUND = "#f9fafb"
WARNING_TEXT = "#b91c1c"
PAD_STYLE = f"background:{PADDING};border:1px dashed {MUTED_TEXT};color:{MUTED_TEXT}"
HATCH_STYLE = f"background:repeating-linear-gradient(45deg,#f3f4f6 0 3px,{BACKGROUND_BAR} 3px 5px);color:{LABEL_TEXT}"
REMOVED_STYLE = "opacity:0.35;text-decoration:line-through"
LOSS_RGB = (220, 38, 38)  # red; the alpha channel carries the loss

# The runs every notebook compares: the same colour, marker and line style everywhere (matplotlib keywords).
MASKED = BLUE
PLAIN = VERMILLION
PROMPT_WEIGHTED = REDDISH_PURPLE
RUN_STYLES = {
    "masked": {"color": MASKED, "marker": "o", "linestyle": "-"},
    "plain": {"color": PLAIN, "marker": "s", "linestyle": "--"},
    "prompt-weighted": {"color": PROMPT_WEIGHTED, "marker": "^", "linestyle": ":"},
}
# Any other comparison (dtypes, methods, the tokens a mask trains), in order; their markers are not the runs', so that
# an orange diamond never reads as a plain run's vermillion square. Hollow markers and lines of decreasing
# size, so that series that coincide still all show.
SERIES = (BLACK, ORANGE, SKY_BLUE, BLUISH_GREEN)
SERIES_STYLES = (
    {"color": BLACK, "marker": "h", "markersize": 9, "linestyle": "-", "linewidth": 3, "markerfacecolor": "none"},
    {"color": ORANGE, "marker": "D", "markersize": 7, "linestyle": "-.", "linewidth": 2.2, "markerfacecolor": "none"},
    {
        "color": SKY_BLUE,
        "marker": "v",
        "markersize": 6,
        "linestyle": (0, (5, 1)),
        "linewidth": 1.6,
        "markerfacecolor": "none",
    },
    {"color": BLUISH_GREEN, "marker": "x", "markersize": 5, "linestyle": ":", "linewidth": 1.2},
)


def run_style(label: str, index: int = 0) -> dict:
    """matplotlib keywords (color, marker, linestyle) of a run called ``label``: :data:`RUN_STYLES` of its first
    word ("masked SFT" -> masked, "plain" -> plain, "prompt-weighted w=0.1" -> prompt-weighted), otherwise
    :data:`SERIES_STYLES` ``[index]`` (cycled). Raises TypeError for a label that is not a str."""
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    words = label.lower().split()
    if words and words[0] in RUN_STYLES:
        return dict(RUN_STYLES[words[0]])
    return dict(SERIES_STYLES[index % len(SERIES_STYLES)])


LOSS_MAX_NATS = math.log(50304)  # full red: the loss of a uniform guess over Pythia's 50 304 logits
# The mask report's page (python -m sft_utils.inspect): its ink, muted text and rules, its warnings, and the
# outline of a token that TRL trains otherwise (an outline, so that the chip keeps its trained / untrained fill).
MUTED = LABEL_TEXT
RULE = BACKGROUND_BAR
WARNING = WARNING_TEXT
DIFFERS = "#7c3aed"


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
