"""Packing: several tokenized conversations in one row, each attending only to itself (an option).

Introduced in notebook 04_shift ("How masks go wrong"). Padding a batch of short and long
conversations wastes compute on padding; packing puts them end to end instead. Done naively (just
concatenating), it trains three wrong things, which this module prevents:

* attention across conversations: a token would see the previous conversation. Here the attention
  mask is block-diagonal and causal (query ``i`` may attend to key ``j`` when ``j <= i`` and both are in
  one segment), passed as a 4D *additive* float mask ``[B, 1, T, T]``: 0 where allowed, the dtype's
  minimum elsewhere. transformers' GPT-NeoX (4.57 and 5.x) uses a 4D ``attention_mask`` as it is. A
  bool 4D mask works with its "sdpa" attention but not with "eager", which adds the mask to the
  scores (True would add 1): the additive form is right for both (tests check both);
* positions that run on: ``position_ids`` restart at 0 in each segment, as in a separate forward pass;
* a target across the seam: the last token of one conversation would be trained to predict the first
  token of the next. Its label mask is False.

With all three, the packed loss (``reduction="sum"``) equals the sum of the separate conversations'
losses (tests check it against separate forward passes of a GPT-NeoX).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping

import torch

from ..steps.example import check_examples, check_pad_token_id, describe
from ..steps.mask import check_max_length

PADDING_SEGMENT = -1  # segment id of the padding after the last conversation of a row


def pack_examples(examples: list[dict]) -> dict:
    """Concatenate tokenized conversations into one unshifted row (flat lists of length sum(T_i)).

    Args:
        examples: outputs of :func:`sft_utils.tokenize_conversation` (``input_ids``, ``label_mask``).

    Returns:
        dict with ``input_ids`` (int), ``label_mask`` (bool), ``position_ids`` (int, 0..T_i-1 in each
        conversation) and ``segment_ids`` (int, the index of the conversation in ``examples``).

    Raises:
        ValueError: no examples, an example without ``input_ids`` or ``label_mask``, or one whose columns are empty,
            nested or differ in length (naming its index).
        TypeError: one example (a dict) where the list goes, an item that is not a dict, or a column that is not a
            list of ints (as :func:`sft_utils.steps.example.check_example`).
    """
    if isinstance(examples, (list, tuple)) and not examples:
        raise ValueError("cannot pack an empty list of examples")
    row = {"input_ids": [], "label_mask": [], "position_ids": [], "segment_ids": []}
    for segment, columns in enumerate(check_examples(examples, unpadded=True)):
        n = len(columns["input_ids"])
        row["input_ids"] += columns["input_ids"].tolist()
        row["label_mask"] += columns["label_mask"].tolist()
        row["position_ids"] += list(range(n))
        row["segment_ids"] += [segment] * n
    return row


def group_by_length(lengths: list[int], max_length: int) -> list[list[int]]:
    """Greedy, in order: indices of examples for each packed row of at most ``max_length`` tokens.

    ``[5, 4, 3, 7]`` with ``max_length=9`` -> ``[[0, 1], [2], [3]]`` (a new row when the next example
    does not fit). Raises ValueError for an example longer than ``max_length`` (truncate it first), a length that
    is negative or a ``max_length`` that is not an int >= 1; TypeError for ``lengths`` that are not a list of ints
    (examples themselves: pass their lengths, ``[len(e["input_ids"]) for e in examples]``).
    """
    check_max_length(max_length)
    if max_length is None:
        raise ValueError("max_length must be an int >= 1 (tokens per row), got None")
    if isinstance(lengths, (str, bytes, Mapping)) or not isinstance(lengths, Iterable):
        raise TypeError(f"lengths must be a list of ints (tokens per example), got {describe(lengths)}")
    lengths = list(lengths)
    for index, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, numbers.Integral):
            raise TypeError(
                f"lengths must be a list of ints (tokens per example), got {describe(length)} at index {index}; "
                'for examples, pass [len(e["input_ids"]) for e in examples]'
            )
        if length < 0:
            raise ValueError(f"example {index} has a negative length, {length}")
    rows, current, used = [], [], 0
    for index, length in enumerate(lengths):
        if length > max_length:
            raise ValueError(f"example {index} has {length} tokens, more than max_length={max_length}; truncate it")
        if current and used + length > max_length:
            rows.append(current)
            current, used = [], 0
        current.append(index)
        used += length
    return rows + [current] if current else rows


def block_causal_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` segment ids -> bool ``[B, 1, T, T]``: True where position i may attend to j (j <= i, one segment).

    Raises TypeError for anything but an integer tensor, ValueError for one that is not 2-d."""
    if not torch.is_tensor(segment_ids) or segment_ids.is_floating_point() or segment_ids.is_complex():
        raise TypeError(f"segment_ids must be an integer tensor [B, T], got {describe(segment_ids)}")
    if segment_ids.dim() != 2:
        raise ValueError(f"segment_ids must be [B, T], got {describe(segment_ids)}")
    T = segment_ids.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool, device=segment_ids.device).tril()
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return (causal & same)[:, None]


def check_float_dtype(dtype) -> torch.dtype:
    """``dtype`` unchanged; TypeError unless it is a floating torch dtype (an additive mask holds -inf-like values)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch dtype (torch.float32, torch.bfloat16, …), got {dtype!r}")
    return dtype


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A bool mask (True: may attend) -> the additive form the model adds to its attention scores, of ``dtype``.

    Raises TypeError for a mask that is not a bool tensor, or a ``dtype`` that is not a floating torch dtype."""
    if not torch.is_tensor(allowed) or allowed.dtype != torch.bool:
        raise TypeError(f"allowed must be a bool tensor (True: may attend), got {describe(allowed)}")
    check_float_dtype(dtype)
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


class PackedCollator:
    """Packs each list of examples into one row, pads rows on the right, and shifts (memo step 4).

    ``__call__(rows)``: ``rows`` is a list of lists of examples (one inner list per packed row, e.g.
    from :func:`group_by_length`). Returns, with B rows and L the longest row (tokens):
    ``input_ids``, ``targets``, ``position_ids`` int64 ``[B, L-1]``; ``label_masks`` bool ``[B, L-1]``
    (False on padding and on each seam, where a conversation's last token would predict the next
    one's first); ``segment_ids`` int64 ``[B, L-1]`` (-1 on padding); ``attention_mask`` float
    ``[B, 1, L-1, L-1]`` of ``dtype``, additive: 0 where :func:`block_causal_mask` allows, the dtype's
    minimum elsewhere (padding attends only to padding, so no softmax row is empty). Pass
    ``input_ids``, ``attention_mask`` and ``position_ids`` to the model
    (:func:`sft_utils.train.step.forward_logits` does).

    Args:
        pad_token_id: id that fills ``input_ids`` and ``targets`` after a row's last conversation.
        dtype: of the attention mask; the model's dtype when it runs in bf16/fp16 without autocast.

    Raises ValueError on no rows, an empty row, rows of one token only (no target after the shift), and
    what :func:`pack_examples` raises, naming the row; TypeError for ``rows`` that are not a list (one example),
    a row that is not a list of examples, a ``pad_token_id`` that is not an int or a ``dtype`` that is not a
    floating torch dtype.
    """

    def __init__(self, pad_token_id: int = 1, *, dtype: torch.dtype = torch.float32):
        self.pad_token_id = check_pad_token_id(pad_token_id)
        self.dtype = check_float_dtype(dtype)

    def __call__(self, rows: list[list[dict]]) -> dict:
        if not isinstance(rows, (list, tuple)):
            raise TypeError(f"rows must be a list of rows, each a list of examples, got {describe(rows)}")
        if not rows:
            raise ValueError("cannot collate an empty list of rows")
        packed = []
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple)):  # collator(examples) instead of collator([examples])
                raise TypeError(
                    f"row {i}: expected a list of examples, got {type(row).__name__}; one row is [examples]"
                )
            try:
                packed.append(pack_examples(row))
            except (TypeError, ValueError) as error:
                raise type(error)(f"row {i}, {error}") from None
        L = max(len(p["input_ids"]) for p in packed)
        if L < 2:  # after the shift no position would be left: a [B, 0] batch that trains nothing
            raise ValueError("every row has a single token: no target to predict after the shift")
        fill = {"input_ids": self.pad_token_id, "label_mask": False, "position_ids": 0, "segment_ids": PADDING_SEGMENT}
        batch = {
            key: torch.tensor(
                [p[key] + [value] * (L - len(p[key])) for p in packed],
                dtype=torch.bool if key == "label_mask" else torch.long,
            )
            for key, value in fill.items()
        }
        segments = batch["segment_ids"]
        same_segment = segments[:, 1:] == segments[:, :-1]  # False where target t+1 opens a new conversation
        return {
            "input_ids": batch["input_ids"][:, :-1],
            "targets": batch["input_ids"][:, 1:],
            "label_masks": batch["label_mask"][:, 1:] & same_segment,
            "position_ids": batch["position_ids"][:, :-1],
            "segment_ids": segments[:, :-1],
            "attention_mask": additive_mask(block_causal_mask(segments[:, :-1]), self.dtype),
        }
