"""Token chips: every token of a conversation drawn as a small coloured box, as static HTML.

Introduced in notebook 03_mask (views by message, role and label mask, and truncation by ``max_length``);
used again in 04_shift (the shifted view: input above target) and 06_masked_loss (the per-token loss
overlay). The interactive viewer (:mod:`sft_utils.viz.widgets`) shows exactly these strings, so a notebook
saved with them reads the same on GitHub and in nbconvert output, where no widget frontend runs.

Colours are inline ``style`` attributes, so they survive renderers that drop ``<style>`` blocks; the
classes (``chip``, ``mask-1``, ``role-assistant``, ``msg-3``, ``pad``, ``removed``, ``hatched``) name
what each chip is, for tests and for readers of the HTML. Whitespace is made visible by
:func:`sft_utils.viz.text.token_strings` (space ␣, newline ↵, tab ⇥); a newline token also breaks the
line, so the chips keep the text's shape.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Sequence

import numpy as np
import torch

from ..chat_format import OPEN_ASSISTANT, ChatFormat, check_chat_format
from ..steps.example import check_example, column, describe
from ..steps.mask import check_max_length, header_ids, written_ids
from ..steps.shift import shift_for_next_token
from ..steps.tokenize import check_tokenizer
from .palette import (
    HATCH_STYLE,
    INK,
    INPUT_BACKGROUND,
    LABEL_TEXT,
    LOSS_MAX_NATS,
    MASK_COLORS,
    MESSAGE_COLORS,
    MUTED_TEXT,
    PAD_STYLE,
    PADDING,
    REMOVED_STYLE,
    ROLE_COLORS,
    WARNING_TEXT,
    loss_color,
    loss_colorbar_html,
)
from .text import token_strings

VIEWS = ("message", "role", "label_mask")

# Short, because it is repeated on every chip (inline: GitHub drops <style> blocks, keeps style attributes).
_CHIP = (
    "display:inline-block;margin:1px;padding:0 3px;border-radius:3px;font:12px/18px monospace;white-space:pre;"
    f"color:{INK}"
)
_COLUMN = "display:inline-flex;flex-direction:column;vertical-align:top;margin-right:1px"


def _is_number(x) -> bool:
    """A real number (a 0-d tensor too), not a bool."""
    if torch.is_tensor(x):
        return x.numel() == 1 and not x.is_complex() and x.dtype != torch.bool
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _losses(token_loss) -> list[float]:
    """``token_loss`` (a list, a 1-d tensor or array of numbers, nats) as floats; raises as :func:`shifted_chips`."""
    if torch.is_tensor(token_loss) or isinstance(token_loss, np.ndarray):
        if token_loss.ndim != 1:
            raise ValueError(f"token_loss must be 1-d (one loss per target), got {describe(token_loss)}")
        return [float(x) for x in token_loss.tolist()]
    if isinstance(token_loss, (str, bytes)) or not isinstance(token_loss, Sequence):
        raise TypeError(f"token_loss must be a list of numbers (nats), got {describe(token_loss)}")
    bad = next((x for x in token_loss if not _is_number(x)), None)
    if bad is not None:
        raise TypeError(f"token_loss must hold numbers (nats), got {describe(bad)}")
    return [float(x) for x in token_loss]


def _span(classes: str, text: str, tooltip: str, style: str) -> str:
    return (
        f'<span class="{classes}" title="{html.escape(tooltip, quote=True)}" style="{_CHIP};{style}">'
        f"{html.escape(text)}</span>"
    )


def _roles_of_messages(tokenizer, input_ids: list, message_indices: list, chat_format: ChatFormat) -> dict:
    """Message index -> role, read off the header that opens each message (as tokenize_conversation builds it):
    the role whose header ids the message's first ids share most of, after the format's prefix (message 0's);
    ``"?"`` when no header matches. Raises ValueError, as :func:`sft_utils.steps.mask.header_ids`, for a
    tokenizer without the format's tokens."""
    headers = {role: header_ids(tokenizer, chat_format, role) for role in chat_format.role_markers}
    prefix = written_ids(tokenizer, chat_format, chat_format.prefix)
    starts = {}
    for t, index in enumerate(message_indices):
        starts.setdefault(index, t)
    roles = {}
    for index, start in starts.items():
        if index == 0 and input_ids[start : start + len(prefix)] == prefix:
            start += len(prefix)
        shared = {role: _shared_prefix(input_ids[start : start + len(ids)], ids) for role, ids in headers.items()}
        best = max(shared.values(), default=0)
        matches = [role for role, n in shared.items() if n == best]
        roles[index] = matches[0] if best and len(matches) == 1 else "?"
    return roles


def _shared_prefix(a: list, b: list) -> int:
    """How many leading ids ``a`` and ``b`` share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _wrap(
    view: str, title: str | None, body: str, legend: list[tuple[str, str]], counts: str, warning: str, extra: str = ""
) -> str:
    parts = [f'<div class="sft-chips" data-view="{view}" style="margin:4px 0">']
    if title:
        parts.append(
            f'<div class="sft-chips-title" style="font-weight:bold;margin-bottom:2px">{html.escape(title)}</div>'
        )
    parts.append(f'<div class="sft-chips-tokens" style="line-height:22px">{body}</div>')
    items = "".join(
        f'<span class="legend-chip" style="{_CHIP};{style}">{html.escape(label)}</span> ' for label, style in legend
    )
    parts.append(f'<div class="sft-chips-legend" style="margin-top:4px;font-size:12px">legend: {items}{extra}</div>')
    parts.append(
        f'<div class="sft-chips-counts" style="font-family:monospace;font-size:12px">{html.escape(counts)}</div>'
    )
    if warning:
        parts.append(
            f'<div class="sft-chips-warning" style="color:{WARNING_TEXT};font-weight:bold">⚠ {html.escape(warning)}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


def counts_text(label_mask, attention_mask=None, *, unit: str = "tokens", removed: int = 0, max_length=None) -> str:
    """The line under every view: ``"28 tokens · 12 trained (43%) · 0 padding"``.

    Args:
        label_mask: bool or 0/1 per position (length T), after truncation.
        attention_mask: 0/1 per position, 0 on padding (default: no padding).
        unit: what a position is, ``"tokens"`` or ``"targets"`` (shifted).
        removed: how many positions ``max_length`` cut off; appended when > 0.
    Percentages are of the positions that are not padding.

    Raises TypeError for masks that are not lists (or 1-d arrays) of 0/1 or bools, or a ``unit`` that is not a
    str; ValueError for masks that are nested, hold other values or differ in length, or a ``removed`` that is
    not an int >= 0.
    """
    label_mask = column(label_mask, "label_mask", "counts_text").tolist()
    if attention_mask is None:
        attention = [1] * len(label_mask)
    else:
        attention = column(attention_mask, "attention_mask", "counts_text").tolist()
        if len(attention) != len(label_mask):
            raise ValueError(
                f"counts_text: label_mask ({len(label_mask)}) and attention_mask ({len(attention)}) differ in length"
            )
    if not isinstance(unit, str):
        raise TypeError(f"unit must be a str such as 'tokens' or 'targets', got {describe(unit)}")
    if isinstance(removed, bool) or not isinstance(removed, int) or removed < 0:
        raise ValueError(f"removed must be an int >= 0 (positions), got {removed!r}")
    real = sum(attention)
    trained = sum(m for m, a in zip(label_mask, attention) if a)
    share = f"{trained / real:.0%}" if real else "–"
    text = f"{real} {unit} · {trained} trained ({share}) · {len(label_mask) - real} padding"
    if removed:
        text += f" · {removed} removed by max_length={max_length}"
    return text


def _check_example(example, tokenizer) -> dict:
    """The example's columns as lists (``attention_mask`` all ones when absent), checked by
    :func:`sft_utils.steps.example.check_example`, and the tokenizer checked to be one."""
    check_tokenizer(tokenizer)
    out = {k: v.tolist() for k, v in check_example(example).items()}
    out.setdefault("attention_mask", [1] * len(out["input_ids"]))
    return out


def _check_max_length(max_length, length: int) -> int:
    check_max_length(max_length)
    return length if max_length is None else min(max_length, length)


def _no_target_warning(label_mask: list, keep: int, max_length) -> str:
    # Position 0 is never a target after the shift, as in tokenize_conversation's own warning.
    if not any(label_mask[1:keep]):
        return f"max_length={max_length} leaves no trained token: this example adds nothing to the loss"
    return ""


def token_chips(
    example,
    tokenizer,
    *,
    view: str = "label_mask",
    max_length: int | None = None,
    title=None,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> str:
    """One chip per token, coloured by ``view``; a legend and the counts line under it. Returns HTML (str).

    Args:
        example: ``input_ids``, ``label_mask`` and (for the message and role views, and tooltips)
            ``message_indices`` of one conversation, length T, from :func:`sft_utils.tokenize_conversation`;
            an ``attention_mask`` with 0s (a padded batch row) draws those positions as padding. Lists or
            1-d tensors.
        tokenizer: the tokenizer that made the ids (to decode each token and find the role markers).
        view: ``"message"`` (one colour per message index), ``"role"`` (system, prompter, assistant) or
            ``"label_mask"`` (trained green, not trained grey).
        max_length: show truncation: tokens at positions >= max_length are struck through (class
            ``removed``) and the counts are those of the kept tokens; a warning appears when no trained
            target is left.
        title: a line above the chips.
        chat_format: the format the example was tokenized in (:mod:`sft_utils.chat_format`), whose headers
            tell each message's role; the tokenizer must hold its tokens.

    Every chip has ``class="chip mask-0|1 msg-i role-r"`` (plus ``pad`` / ``removed``) and a tooltip with
    its position, id, string, message index and role, and mask value.

    Raises ValueError on an unknown view, a missing key, sequences of different lengths, no token, a bad
    ``max_length``, or the message/role view without ``message_indices``; TypeError for an example that is not
    a dict (a list of examples: one at a time) or whose columns are not lists of ints, and for a ``tokenizer``
    that is not a tokenizer object (as :func:`sft_utils.steps.example.check_example`) or a ``chat_format`` that is
    not a ChatFormat; ValueError, naming the token and the call that loads it, for a tokenizer without the format's
    tokens.
    """
    check_chat_format(chat_format)
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    ex = _check_example(example, tokenizer)
    if view != "label_mask" and "message_indices" not in ex:
        raise ValueError(f"view {view!r} needs the example's message_indices")
    ids, mask, attention = ex["input_ids"], ex["label_mask"], ex["attention_mask"]
    indices = ex.get("message_indices", [None] * len(ids))
    keep = _check_max_length(max_length, len(ids))
    roles = _roles_of_messages(tokenizer, ids, indices, chat_format)
    chips = []
    for t, (token_id, text, index, trained, real) in enumerate(
        zip(ids, token_strings(tokenizer, ids), indices, mask, attention)
    ):
        role = roles.get(index, "?")
        classes = ["chip", f"mask-{int(bool(trained))}"]
        if index is not None:
            classes += [f"msg-{index}", f"role-{role}"]
        if not real:
            classes.append("pad")
            style = PAD_STYLE
        elif view == "message":
            style = f"background:{MESSAGE_COLORS[index % len(MESSAGE_COLORS)]}"
        elif view == "role":
            style = f"background:{ROLE_COLORS.get(role, PADDING)}"
        else:
            style = f"background:{MASK_COLORS[bool(trained)]}"
        if t >= keep:
            classes.append("removed")
            style += ";" + REMOVED_STYLE
        where = f"message {index} ({role})" if index is not None else "no message index"
        tooltip = f"position {t} · id {token_id} · {text} · {where} · label_mask {int(bool(trained))}"
        if not real:
            tooltip += " · padding"
        chips.append(_span(" ".join(classes), text, tooltip, style))
        if "↵" in text:
            chips.append("<br>")  # keep the text's lines
    if view == "message":
        shown = sorted({i for i in indices[:keep]})
        legend = [(f"message {i} ({roles[i]})", f"background:{MESSAGE_COLORS[i % len(MESSAGE_COLORS)]}") for i in shown]
    elif view == "role":
        legend = [(r, f"background:{c}") for r, c in ROLE_COLORS.items() if r in set(roles.values())]
    else:
        legend = [
            ("trained (label_mask 1)", f"background:{MASK_COLORS[True]}"),
            ("not trained", f"background:{MASK_COLORS[False]}"),
        ]
    if not all(attention):
        legend.append(("padding", PAD_STYLE))
    if keep < len(ids):
        legend.append(("removed by max_length", f"background:{MASK_COLORS[False]};{REMOVED_STYLE}"))
    counts = counts_text(mask[:keep], attention[:keep], removed=len(ids) - keep, max_length=max_length)
    warning = _no_target_warning(mask, keep, max_length) if keep < len(ids) else ""
    return _wrap(view, title, "".join(chips), legend, counts, warning)


def shifted_chips(
    example,
    tokenizer,
    *,
    max_length: int | None = None,
    token_loss=None,
    vmax: float | None = None,
    title=None,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> str:
    """Memo step 4 drawn: two aligned rows, each input token above its target. Returns HTML (str).

    Args:
        example: one *unshifted* example (``input_ids``, ``label_mask``, optionally ``message_indices`` and
            ``attention_mask``), length T; it is shifted here with :func:`sft_utils.shift_for_next_token`.
        tokenizer: the tokenizer that made the ids.
        max_length: show truncation (columns past the kept tokens are struck through, class ``removed``).
        token_loss: optional per-target loss in nats, length T-1 (e.g. a row of
            ``MaskedCrossEntropyLoss(reduction="none")`` or of ``per_token_nll``). When given, each trained
            target is red with intensity loss / ``vmax`` (the loss overlay of notebook 06) and untrained
            targets are hatched; otherwise trained targets are green and untrained ones greyed.
        vmax: loss mapped to full red, in nats (default: the course's fixed scale, ln 50 304 = 10.8 nats, a
            uniform guess over Pythia's vocabulary, so that redness means the same in every notebook).
        title: a line above the chips.
        chat_format: the format the example was tokenized in, as :func:`token_chips`.

    Columns have ``class="col"``; input chips ``chip input``; target chips ``chip target mask-0|1`` (plus
    ``hatched`` untrained under a loss, ``pad``, ``removed``). Tooltips give the position, both tokens,
    the target id, its message, ``label_masks`` and the loss.

    Raises ValueError and TypeError as :func:`token_chips`; ValueError on fewer than 2 tokens, a ``token_loss``
    that is not of length T-1 or not 1-d, or a ``vmax`` that is not a number > 0; TypeError for a ``token_loss``
    that is not a list or 1-d array of numbers.
    """
    check_chat_format(chat_format)
    ex = _check_example(example, tokenizer)
    shifted = shift_for_next_token(ex)
    inputs, targets, target_mask = shifted["input_ids"], shifted["targets"], shifted["label_masks"]
    n = len(targets)
    target_real = ex["attention_mask"][1:]
    indices = ex.get("message_indices", [None] * (n + 1))[1:]
    roles = _roles_of_messages(tokenizer, ex["input_ids"], ex.get("message_indices", [None] * (n + 1)), chat_format)
    keep = _check_max_length(max_length, n + 1) - 1  # L kept tokens give L-1 targets
    losses = None
    if token_loss is not None:
        losses = _losses(token_loss)
        if len(losses) != n:
            raise ValueError(f"token_loss has {len(losses)} values, expected one per target ({n} = T-1)")
        vmax = LOSS_MAX_NATS if vmax is None else vmax
        if not _is_number(vmax) or not vmax > 0:
            raise ValueError(f"vmax must be a number > 0 (nats), got {vmax!r}")
        vmax = float(vmax)
    input_strings, target_strings = token_strings(tokenizer, inputs), token_strings(tokenizer, targets)
    columns = []
    for t in range(n):
        trained, real, index = bool(target_mask[t]), target_real[t], indices[t]
        role = roles.get(index, "?")
        target_classes = ["chip", "target", f"mask-{int(trained)}"]
        if not real:
            target_classes.append("pad")
            style = PAD_STYLE
        elif losses is not None and not trained:
            target_classes.append("hatched")
            style = HATCH_STYLE
        elif losses is not None:
            target_classes.append("loss")
            style = loss_color(losses[t], vmax)
        else:
            style = f"background:{MASK_COLORS[trained]}" + ("" if trained else f";color:{MUTED_TEXT}")
        column_style = _COLUMN + (";" + REMOVED_STYLE if t >= keep else "")
        column_classes = "col removed" if t >= keep else "col"
        where = f"message {index} ({role})" if index is not None else "no message index"
        tooltip = (
            f"position {t} · input {input_strings[t]} → target {target_strings[t]} · target id {targets[t]} · "
            f"{where} · label_masks {int(trained)}"
        )
        if losses is not None and trained and real:
            tooltip += f" · CE {losses[t]:.2f} nats"
        input_real = ex["attention_mask"][t]
        input_chip = _span(
            "chip input" if input_real else "chip input pad",
            input_strings[t],
            f"position {t} · input id {inputs[t]}" + ("" if input_real else " · padding"),
            f"background:{INPUT_BACKGROUND}" if input_real else PAD_STYLE,
        )
        target_chip = _span(" ".join(target_classes), target_strings[t], tooltip, style)
        columns.append(f'<span class="{column_classes}" style="{column_style}">{input_chip}{target_chip}</span>')
    labels = (
        f'<span class="row-labels" style="{_COLUMN};font-size:11px;color:{LABEL_TEXT};text-align:right">'
        '<span style="line-height:22px">input</span><span style="line-height:22px">target</span></span>'
    )
    if losses is None:
        legend = [
            ("trained target (label_masks 1)", f"background:{MASK_COLORS[True]}"),
            ("not trained", f"background:{MASK_COLORS[False]};color:{MUTED_TEXT}"),
        ]
    else:
        legend = [
            ("CE 0 nats", loss_color(0.0, 1.0)),
            (f"CE {vmax / 2:.1f}", loss_color(0.5, 1.0)),
            (f"CE {vmax:.1f} nats", loss_color(1.0, 1.0)),
            ("not trained", HATCH_STYLE),
        ]
    if not all(target_real):
        legend.append(("padding", PAD_STYLE))
    if keep < n:
        legend.append(("removed by max_length", f"background:{MASK_COLORS[False]};{REMOVED_STYLE}"))
    counts = counts_text(
        target_mask[:keep], target_real[:keep], unit="targets", removed=n - keep, max_length=max_length
    )
    if losses is not None:
        kept = [v for v, m, a in zip(losses[:keep], target_mask, target_real) if m and a]
        counts += f" · mean CE {sum(kept) / len(kept):.3f} nats" if kept else " · no trained target"
    warning = _no_target_warning(ex["label_mask"], keep + 1, max_length) if keep < n else ""
    view = "shifted" if losses is None else "loss"
    colorbar = "" if losses is None else loss_colorbar_html(vmax)
    return _wrap(view, title, labels + "".join(columns), legend, counts, warning, colorbar)
