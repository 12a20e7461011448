"""Step 4 of the memo: next-token targets, their label mask, and batching.

Introduced in notebook 04_shift.

A causal LM reads ``input_ids[t]`` and predicts ``targets[t] = input_ids[t + 1]``. The label mask
moves with the targets: ``label_masks[t]`` is True exactly when ``targets[t]`` belongs to an assistant
message ("true when predicting a token that is part of the answer"). So the ``<|assistant|>`` marker
itself is predicted from the prompter's ``<|endoftext|>`` and is trained; the prompter's marker is not.

Two conventions give the same loss (notebook 04 shows it):

* the memo's: ``input_ids[:-1]``, ``targets = input_ids[1:]``, ``label_masks = label_mask[1:]``;
* transformers': ``labels = input_ids`` with -100 where not trained, and the *model* shifts inside
  its loss. Shift once, never twice: handing shifted targets to ``model(labels=…)`` trains the
  token after next.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from .example import TRAINED, check_examples, check_pad_token_id, column, describe, require_columns
from .tokenize import check_tokenizer

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index


def shift_for_next_token(example: dict) -> dict:
    """Memo step 4 for one example (flat lists) or a batch (tensors ``[batch, T]``, shifted on the last axis).

    Args:
        example: ``input_ids`` and ``label_mask`` (and optionally ``attention_mask``) of length T, as
            returned by :func:`sft_utils.tokenize_conversation`; all lists, all 1-d numpy arrays, or all tensors
            (``[T]`` or ``[batch, T]``).

    Returns:
        dict with ``input_ids`` (positions 0..T-2), ``targets`` (positions 1..T-1), ``label_masks``
        (``label_mask`` at positions 1..T-1) and ``attention_mask`` when given; each of length T-1.

    Raises:
        ValueError: a missing ``input_ids`` or ``label_mask``; fewer than 2 tokens (nothing to predict);
            lengths or shapes that differ; nested lists (a batch must be a tensor, or the batch axis
            would be shifted instead of the token axis); arrays of more than 2 dimensions; masks holding
            values other than 0 and 1; negative ids.
        TypeError: anything but a dict (a list of examples goes to a collator); columns that are not lists, arrays
            or tensors (a str, None); float ids; lists mixed with tensors.
    """
    values, head, tail = _checked_columns(example)
    ids, mask = values["input_ids"], values["label_mask"]
    out = {"input_ids": head(ids), "targets": tail(ids), "label_masks": tail(mask)}
    if "attention_mask" in values:
        out["attention_mask"] = head(values["attention_mask"])
    return out


_KINDS = {torch.Tensor: "tensors", np.ndarray: "numpy arrays", list: "lists", tuple: "lists"}


def _kind(value, key: str) -> str:
    """The kind of a column, ``"tensors"``, ``"numpy arrays"`` or ``"lists"``; TypeError for any other (a str,
    None, a number)."""
    kind = next((name for cls, name in _KINDS.items() if isinstance(value, cls)), None)
    if kind is None:
        raise TypeError(f"example: {key} must be a list, a numpy array or a tensor, got {describe(value)}")
    return kind


def _check_array(value, key: str) -> None:
    """A tensor or numpy column of one example ``[T]`` or a batch ``[B, T]``: its rank and the kind of its values."""
    try:
        tensor = torch.as_tensor(value)
    except TypeError:  # a numpy array of objects or strings
        raise TypeError(f"example: {key} must hold ints, got {describe(value)} of dtype {value.dtype}") from None
    if tensor.dim() not in (1, 2):
        raise ValueError(f"example: {key} must be [T] (one example) or [batch, T] (a batch), got {describe(value)}")
    if key == "input_ids" and (tensor.is_floating_point() or tensor.is_complex()):
        raise TypeError(f"example: input_ids must hold integer token ids, got dtype {tensor.dtype}")
    if key != "input_ids" and not ((tensor == 0) | (tensor == 1)).all():
        raise ValueError(f"example: {key} must hold only 0 and 1 (or bools)")


def _checked_columns(example: dict):
    """(columns, head, tail) of an example for :func:`shift_for_next_token`: its ``input_ids``, ``label_mask``
    (and ``attention_mask``), checked to be all lists or all tensors of one shape with at least 2 tokens, and
    the slicing that drops the last / the first position on the token axis. Raises as documented there."""
    if isinstance(example, (list, tuple)):
        raise TypeError(
            f"example must be one example (a dict), got {describe(example)}; a list of examples goes to a collator "
            "(AssistantOnlyCollator), which pads and shifts them"
        )
    require_columns(example, TRAINED, "example")
    keys = [k for k in ("input_ids", "label_mask", "attention_mask") if k in example]
    values = {k: example[k] for k in keys}
    kinds = {_kind(v, k) for k, v in values.items()}
    if len(kinds) > 1:
        mixed = " and ".join(k for k in ("tensors", "numpy arrays", "lists") if k in kinds)
        raise TypeError(f"mix of {mixed} in {keys}; convert all to tensors (or all to lists)")
    if kinds != {"lists"}:
        for k, v in values.items():
            _check_array(v, k)
        shapes = {k: tuple(v.shape) for k, v in values.items()}
        head, tail = (lambda x: x[..., :-1]), (lambda x: x[..., 1:])
    else:
        if any(v and isinstance(v[0], (list, tuple)) for v in values.values()):
            raise ValueError("nested lists: pass one example as flat lists, or a batch as [batch, T] tensors")
        for k, v in values.items():
            column(v, k)  # ints, masks of 0 and 1
        shapes = {k: (len(v),) for k, v in values.items()}
        head, tail = (lambda x: x[:-1]), (lambda x: x[1:])
    if len(set(shapes.values())) > 1:
        raise ValueError(f"input_ids, label_mask and attention_mask must have one shape, got {shapes}")
    length = shapes["input_ids"][-1] if shapes["input_ids"] else 0
    if length < 2:
        raise ValueError(f"need at least 2 tokens to predict a next token, got {length}")
    return values, head, tail


def labels_from_label_mask(input_ids: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
    """transformers' convention: ``labels = input_ids`` with :data:`IGNORE_INDEX` (-100) where not trained.

    Shapes ``[batch, T]`` (or ``[T]``); returns the dtype of ``input_ids`` (int64 from the collator).
    Not shifted: ``model(labels=…)`` shifts. Raises TypeError for arguments that are not tensors or float ids,
    ValueError for shapes that differ or a mask with values other than 0 and 1.
    """
    for name, value in (("input_ids", input_ids), ("label_mask", label_mask)):
        if not torch.is_tensor(value):
            raise TypeError(f"{name} must be a torch.Tensor, got {describe(value)}")
    if input_ids.shape != label_mask.shape:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and label_mask {tuple(label_mask.shape)} differ in shape")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be token ids (an integer tensor), got {input_ids.dtype}")
    if label_mask.dtype != torch.bool and not ((label_mask == 0) | (label_mask == 1)).all():
        raise ValueError("label_mask must be bool or hold only 0 and 1")
    return torch.where(label_mask.bool(), input_ids, torch.full_like(input_ids, IGNORE_INDEX))


def check_pad_to_multiple_of(value) -> int | None:
    """``value`` unchanged when None or a positive int; ValueError otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"pad_to_multiple_of must be a positive int, got {value!r}")
    return value


class AssistantOnlyCollator:
    """Pads examples from :func:`sft_utils.tokenize_conversation` into a batch for assistant-only loss.

    Padding is decided by each example's *length*, never by token id, so a real ``<|endoftext|>``
    is never mistaken for padding. Pads on the right with ``pad_token_id`` (``<|padding|>``, id 1).

    Args:
        pad_token_id: id used to fill ``input_ids`` (and ``targets``) past each example's end.
        convention: ``"shifted"`` (the memo's, default) or ``"labels"`` (transformers').
        pad_to_multiple_of: round the length of the returned ``input_ids`` up to a multiple of this
            (tokens), e.g. 8 for tensor cores; a positive int.

    Returns (``__call__``), with B examples and L the longest length (tokens):

    * ``"shifted"``: ``input_ids``, ``attention_mask``, ``targets`` int64 ``[B, L-1]`` and
      ``label_masks`` bool ``[B, L-1]`` (False on padding).
    * ``"labels"``: ``input_ids``, ``attention_mask`` int64 ``[B, L]`` and ``labels`` int64 ``[B, L]``
      with -100 on untrained and padded positions.

    Examples are unpadded, as :func:`sft_utils.tokenize_conversation` returns them: ``input_ids`` and
    ``label_mask`` (lists, tuples, 1-d numpy arrays or 1-d tensors). Their ``attention_mask`` may be left out:
    an unpadded example's is all ones by definition, and the batch's is built from lengths. One with a 0 (an
    already padded example) is refused, since its padding would be trained as real tokens.

    Raises:
        TypeError: a ``pad_token_id`` that is not an int (None: a tokenizer without a pad token); one example
            (a dict) where the list goes; an item that is not a dict (token lists, a message); a column that is
            not a list of ints (a str, floats).
        ValueError: an empty list; an example without ``input_ids`` or ``label_mask``, whose columns differ
            in length, are nested or 2-d, or hold no token, with a 0 in its ``attention_mask``, or a ``label_mask``
            other than 0/1 (each naming the example's index); an unknown convention or a bad
            ``pad_to_multiple_of``.
    """

    def __init__(self, pad_token_id: int = 1, *, convention: str = "shifted", pad_to_multiple_of: int | None = None):
        if convention not in ("shifted", "labels"):
            raise ValueError(f"convention must be 'shifted' or 'labels', got {convention!r}")
        self.pad_token_id = check_pad_token_id(pad_token_id)
        self.convention = convention
        self.pad_to_multiple_of = check_pad_to_multiple_of(pad_to_multiple_of)

    def pad(self, examples: list[dict]) -> dict:
        """Right-pad ``input_ids``, ``attention_mask`` and ``label_mask`` to ``[B, L]`` tensors (raises as the class)."""
        columns = check_examples(examples, required=TRAINED, unpadded=True)
        ids = [c["input_ids"] for c in columns]
        out = {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id),
            # Built from lengths: 1 on each example's own tokens, 0 on the padding after it.
            "attention_mask": pad_sequence([torch.ones_like(i) for i in ids], batch_first=True, padding_value=0),
            "label_mask": pad_sequence([c["label_mask"] for c in columns], batch_first=True, padding_value=False),
        }
        # The shifted convention drops one position, so pad to a multiple plus one.
        returned_length = out["input_ids"].shape[1] - (self.convention == "shifted")
        extra = -returned_length % self.pad_to_multiple_of if self.pad_to_multiple_of else 0
        if extra:
            fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "label_mask": False}
            out = {k: torch.nn.functional.pad(v, (0, extra), value=fill[k]) for k, v in out.items()}
        return out

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.pad(examples)
        if self.convention == "labels":
            labels = labels_from_label_mask(batch["input_ids"], batch["label_mask"])
            return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
        return shift_for_next_token(batch)


class CausalLMCollator:
    """Baseline: plain causal-LM SFT, ``labels = input_ids`` on every real token (prompts included).

    A thin wrapper over transformers' ``DataCollatorForLanguageModeling(mlm=False)``, which pads with
    the tokenizer and sets ``labels`` to -100 where ``input_ids == pad_token_id``. That by-id rule is
    safe here only because our pad token (``<|padding|>``, 1) differs from ``<|endoftext|>`` (0).
    Extra keys (``message_indices``, ``label_mask``) are dropped before padding.

    Returns ``input_ids``, ``attention_mask``, ``labels``: int64 ``[B, L]``; unshifted (the model shifts).
    Examples need only ``input_ids``; their ``attention_mask`` may be left out (an unpadded example's is all ones),
    and one with a 0 is refused, as in :class:`AssistantOnlyCollator`.

    Raises TypeError for a ``tokenizer`` that is not a tokenizer object (a name: load it first), and for examples
    of the wrong kind as :class:`AssistantOnlyCollator` does; ValueError when the tokenizer has no pad token or its
    pad token equals its eos token, and for bad examples as :class:`AssistantOnlyCollator` does.
    """

    def __init__(self, tokenizer, *, pad_to_multiple_of: int | None = None):
        from transformers import DataCollatorForLanguageModeling

        check_tokenizer(tokenizer)
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("pad token must exist and differ from eos, or the end of each reply is never trained")
        self.collator = DataCollatorForLanguageModeling(
            tokenizer, mlm=False, pad_to_multiple_of=check_pad_to_multiple_of(pad_to_multiple_of), return_tensors="pt"
        )

    def __call__(self, examples: list[dict]) -> dict:
        columns = check_examples(examples, required=("input_ids",), unpadded=True)
        # transformers builds the attention mask from the lengths, as AssistantOnlyCollator does.
        return self.collator([{"input_ids": c["input_ids"].tolist()} for c in columns])
