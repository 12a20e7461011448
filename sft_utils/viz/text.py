"""Plain-text tables of tokens, aligned like the memo's TEXT / MESSAGE_INDICES / LABEL_MASK picture.

Introduced in notebook 03_mask; used again in 04_shift. Plain text reads the same in JupyterLab, on
GitHub and in a terminal, and nbval can compare it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..steps.example import column, describe
from ..steps.tokenize import check_tokenizer

# Make whitespace visible so that "␣how" and "how" are told apart.
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def _visible(ch: str) -> str:
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    # Other separators, controls and zero-width characters would vanish or break the table.
    if unicodedata.category(ch) in ("Zs", "Zl", "Zp", "Cc", "Cf"):
        return f"⟨U+{ord(ch):04X}⟩"
    return ch


def token_strings(tokenizer, ids) -> list[str]:
    """Each id decoded on its own, whitespace made visible (space ␣, newline ↵, tab ⇥, carriage
    return ␍; other invisible characters as ``⟨U+200B⟩``).

    A token holding part of a multi-byte character (CJK, emoji) decodes to "�" on its own; the
    characters come back when its neighbours are decoded with it.

    ``ids``: a list, tuple, 1-d numpy array or 1-d tensor of token ids. Raises TypeError for a ``tokenizer`` that
    is not a tokenizer object, and for ids of the wrong kind (an example dict: pass its ``input_ids``; a str;
    floats); ValueError for nested ids (a batch: one row at a time) or negative ones.
    """
    check_tokenizer(tokenizer)
    if isinstance(ids, Mapping):
        raise TypeError(f"ids must be a list of token ids, got {describe(ids)}; for an example, pass its input_ids")
    ids = column(ids, "ids", "token_strings").tolist()
    pieces = [tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in ids]
    return ["".join(map(_visible, piece)) or "∅" for piece in pieces]


def _row(name, values) -> list:
    """One row's values as a list: a list, a tuple, or a 1-d tensor or array; raises as :func:`aligned_table`."""
    if torch.is_tensor(values) or isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"row {name!r} must be 1-d (one value per column), got {describe(values)}")
        return values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"row {name!r} must be a list of values, one per column, got {describe(values)}")
    nested = next((i for i, v in enumerate(values) if isinstance(v, (list, tuple, dict))), None)
    if nested is not None:
        raise ValueError(f"row {name!r} holds a {type(values[nested]).__name__} at column {nested}; one value a column")
    return list(values)


def _cell(value) -> str:
    if hasattr(value, "item"):  # a 0-d tensor or numpy scalar
        value = value.item()
    return str(int(value)) if isinstance(value, bool) else str(value)


def _width(text: str) -> int:
    """Columns a string takes in a monospace font (wide CJK characters take 2)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def aligned_table(rows: dict[str, list], *, width: int = 100) -> str:
    """One column per token, one row per named sequence, wrapped into blocks of at most ``width`` columns.

    Args:
        rows: row name -> list (or 1-d tensor) of values (str, int or bool; bools print as 0/1); all of
            one length.
        width: line width in characters (monospace columns).

    Returns "" for no rows. Raises ValueError when the rows differ in length, a row holds a nested list or a
    tensor of more than one dimension, or ``width`` is not an int >= 1; TypeError for ``rows`` that are not a
    dict, or a row that is not a list (a str, a number).
    """
    if not isinstance(rows, Mapping):
        raise TypeError(f"rows must be a dict of row name -> list of values, got {describe(rows)}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1 (characters), got {width!r}")
    if not rows:
        return ""
    rows = {name: _row(name, values) for name, values in rows.items()}
    lengths = {name: len(values) for name, values in rows.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"rows differ in length: {lengths}")
    cells = {name: [_cell(v) for v in values] for name, values in rows.items()}
    label_width = max(len(name) for name in rows) + 2
    n = next(iter(lengths.values()), 0)
    blocks, start = [], 0
    while start < n:
        used, stop = label_width, start
        while stop < n:
            col = max(_width(cells[name][stop]) for name in rows) + 1
            if used + col > width and stop > start:
                break
            used, stop = used + col, stop + 1
        lines = []
        for name in rows:
            line = f"{name + ':':<{label_width}}"
            for i in range(start, stop):
                col = max(_width(cells[r][i]) for r in rows) + 1
                line += cells[name][i] + " " * (col - _width(cells[name][i]))
            lines.append(line.rstrip())
        blocks.append("\n".join(lines))
        start = stop
    return "\n\n".join(blocks)
