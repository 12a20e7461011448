"""The example: the dict of token columns that :func:`sft_utils.tokenize_conversation` returns and every later step
reads, and the one check of it that the shift, the collators, packing and the chips share.

One example is one conversation, unpadded, every column holding one value per token (T tokens)::

    input_ids        int, token ids >= 0
    attention_mask   0/1, all 1 (an example has no padding: a collator adds it, and builds the mask from lengths)
    message_indices  int, the message each token belongs to
    label_mask       bool or 0/1, True on trained tokens

A column may be a list, a tuple, a 1-d numpy array or a 1-d tensor. Anything else is named where it is given,
with what was expected: one example where a list of them goes, token lists without a dict, a ``[1, T]`` tensor,
float ids, a mask of 2s, columns of different lengths. Otherwise such input fails deep inside torch or
transformers (``string indices must be integers``, ``KeyError: 'attention_mask'``) or, worse, gives a batch of
the wrong shape.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import torch

COLUMNS = ("input_ids", "attention_mask", "message_indices", "label_mask")
MASK_COLUMNS = ("attention_mask", "label_mask")
TRAINED = ("input_ids", "label_mask")  # what every route to a loss needs


def describe(value) -> str:
    """What was given, in a few words: ``dict with keys ['role', 'text']``, ``Tensor of shape (1, 7)``, ``list of
    list``, ``str 'abc'``. Error messages say it after "got"."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return f"dict with keys {sorted(map(str, value))[:8]}"
    if isinstance(value, (str, bytes)):
        return f"{type(value).__name__} {value[:40]!r}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {type(value[0]).__name__}" if value else f"empty {type(value).__name__}"
    return type(value).__name__


def _flat_values(value: Sequence, key: str, where: str) -> None:
    """Raise unless every item of a list column is an int (or a bool): a nested list is a batch, not an example."""
    for position, item in enumerate(value):
        if isinstance(item, numbers.Integral):
            continue
        if isinstance(item, (Sequence, np.ndarray)) and not isinstance(item, str) or torch.is_tensor(item):
            raise ValueError(
                f"{where}: {key} must be flat, one value per token; got a nested {describe(value)} "
                "(one example is flat lists; several go to a collator as a list of dicts)"
            )
        shown = describe(item) if isinstance(item, Mapping) else f"{type(item).__name__} {item!r:.20}"
        raise TypeError(f"{where}: {key} must hold ints, got {shown} at position {position}")


def column(value, key: str, where: str = "example") -> torch.Tensor:
    """One column of an example as a 1-d tensor: int64 ``[T]``, bool ``[T]`` for ``label_mask``.

    Raises TypeError for a value that is not a list, tuple, numpy array or tensor of ints (a str, floats, None),
    ValueError for a nested list or an array that is not 1-d, a mask with values other than 0 and 1, or a
    negative token id; each message starts with ``where`` (e.g. ``example 3``) and names the column.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"{where}: {key} must be a list of ints (one per token), got {describe(value)}")
    if isinstance(value, Sequence):
        try:  # numpy infers the kind in C (int, bool, float, str, 2-d for nested lists), 5x faster than torch
            array = np.asarray(value) if len(value) else np.zeros(0, dtype=np.int64)
        except ValueError:  # ragged nested lists
            array = None
        if array is None or array.ndim != 1 or array.dtype.kind not in "iub":
            _flat_values(value, key, where)  # raises, naming the item that is not an int
            array = np.asarray(value, dtype=np.int64)  # ints numpy did not recognise (0-d tensors, say)
        tensor = torch.from_numpy(array)
    elif isinstance(value, np.ndarray) and value.dtype.kind not in "iubf":  # strings, objects: torch cannot read them
        raise TypeError(f"{where}: {key} must hold ints, got {describe(value)} of dtype {value.dtype}")
    else:
        tensor = torch.as_tensor(value)
    if tensor.dim() != 1:
        raise ValueError(f"{where}: {key} must be 1-d (one example's tokens), got {describe(value)}")
    if tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(f"{where}: {key} must hold ints, got dtype {tensor.dtype}")
    tensor = tensor.long()
    if key in MASK_COLUMNS and not ((tensor == 0) | (tensor == 1)).all():
        raise ValueError(f"{where}: {key} must hold only 0 and 1 (or bools), got {sorted(set(tensor.tolist()))[:5]}")
    if key == "input_ids" and tensor.numel() and tensor.min() < 0:
        position = int((tensor < 0).nonzero()[0])
        raise ValueError(
            f"{where}: input_ids must be token ids >= 0, got {int(tensor[position])} at position {position} "
            "(-100 marks untrained labels, never an input)"
        )
    return tensor.bool() if key == "label_mask" else tensor


def require_columns(example, required=TRAINED, where: str = "example") -> Mapping:
    """``example`` unchanged when it is a dict holding the ``required`` columns.

    Raises TypeError for anything but a dict, or for a message or a conversation given in its place; ValueError
    naming the missing columns (and telling ``labels`` from a ``label_mask``).
    """
    expected = f"expected a dict with {' and '.join(map(repr, required))} (as tokenize_conversation returns)"
    if not isinstance(example, Mapping):
        raise TypeError(f"{where}: {expected}, got {describe(example)}")
    missing = [k for k in required if k not in example]
    if missing and ("role" in example or "messages" in example):
        what = "a message" if "role" in example else "a conversation"
        raise TypeError(f"{where}: {expected}, got {what} ({describe(example)}); tokenize it first")
    if missing:
        labels = (
            "; labels (transformers' -100 convention) are not a label_mask: label_mask = labels != -100"
            if "labels" in example and "label_mask" in missing
            else ""
        )
        raise ValueError(
            f"{where}: {expected}, but {where} has no {' or '.join(missing)} (its keys: {sorted(example)}){labels}"
        )
    return example


def check_example(
    example, *, required=TRAINED, where: str = "example", unpadded: bool = False, min_tokens: int = 1
) -> dict[str, torch.Tensor]:
    """The columns of one example (those of :data:`COLUMNS` it holds) as 1-d tensors, checked.

    Args:
        example: a dict as :func:`sft_utils.tokenize_conversation` returns.
        required: columns it must hold.
        where: how errors name it (``"example 3"``).
        unpadded: refuse an ``attention_mask`` with 0s (a collator pads by length, so a padded example's padding
            would be trained as real tokens).
        min_tokens: the fewest tokens allowed (2 where a next token is predicted).

    Raises TypeError / ValueError as :func:`require_columns` and :func:`column`; ValueError for columns of
    different lengths, fewer than ``min_tokens`` tokens, or (``unpadded``) padding.
    """
    require_columns(example, required, where)
    columns = {k: column(example[k], k, where) for k in COLUMNS if k in example}
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{where}: columns differ in length, {lengths}; each holds one value per token, all of one length"
        )
    length = next(iter(lengths.values()))
    if length < min_tokens:
        raise ValueError(f"{where}: {length} token(s), need at least {min_tokens}")
    if unpadded and "attention_mask" in columns and not columns["attention_mask"].all():
        padded = columns["attention_mask"].eq(0).nonzero().flatten().tolist()
        raise ValueError(
            f"{where}: attention_mask is 0 at positions {padded[:5]}{'…' if len(padded) > 5 else ''}: a padded "
            "example; pass unpadded examples (tokenize_conversation's), the collator pads them by length"
        )
    return columns


def check_examples(examples, *, what: str = "examples", **kwargs) -> list[dict[str, torch.Tensor]]:
    """:func:`check_example` of each item of a non-empty list, named ``example 0``, ``example 1``, …

    Raises TypeError for one example (a dict) or anything else that is not a list or tuple, ValueError for an
    empty list, and what :func:`check_example` raises (``kwargs`` go to it).
    """
    if isinstance(examples, Mapping):
        raise TypeError(f"{what} must be a list of examples, got one ({describe(examples)}); pass [example]")
    if not isinstance(examples, (list, tuple)):
        raise TypeError(
            f"{what} must be a list of examples (dicts, as tokenize_conversation returns), got {describe(examples)}"
        )
    if not examples:
        raise ValueError(f"cannot collate an empty list of {what}")
    return [check_example(e, where=f"example {i}", **kwargs) for i, e in enumerate(examples)]


def check_pad_token_id(pad_token_id) -> int:
    """``pad_token_id`` unchanged; TypeError unless it is an int (None: a tokenizer without a pad token), ValueError
    when it is negative."""
    if isinstance(pad_token_id, bool) or not isinstance(pad_token_id, numbers.Integral):
        raise TypeError(
            f"pad_token_id must be an int (tokenizer.pad_token_id), got {describe(pad_token_id)}"
            + (" (a tokenizer without a pad token: sft_utils.load_tokenizer sets one)" if pad_token_id is None else "")
        )
    if pad_token_id < 0:
        raise ValueError(f"pad_token_id must be a token id >= 0, got {pad_token_id}")
    return int(pad_token_id)
