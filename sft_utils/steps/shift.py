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

import torch
from torch.nn.utils.rnn import pad_sequence

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index


def shift_for_next_token(example: dict) -> dict:
    """Memo step 4 for one example (flat lists) or a batch (tensors ``[batch, T]``, shifted on the last axis).

    Args:
        example: ``input_ids`` and ``label_mask`` (and optionally ``attention_mask``) of length T, as
            returned by :func:`sft_utils.tokenize_conversation`; all lists or all tensors.

    Returns:
        dict with ``input_ids`` (positions 0..T-2), ``targets`` (positions 1..T-1), ``label_masks``
        (``label_mask`` at positions 1..T-1) and ``attention_mask`` when given; each of length T-1.

    Raises:
        ValueError: a missing ``input_ids`` or ``label_mask``; fewer than 2 tokens (nothing to predict);
            lengths or shapes that differ; nested lists (a batch must be a tensor, or the batch axis
            would be shifted instead of the token axis).
        TypeError: lists mixed with tensors.
    """
    values, head, tail = _checked_columns(example)
    ids, mask = values["input_ids"], values["label_mask"]
    out = {"input_ids": head(ids), "targets": tail(ids), "label_masks": tail(mask)}
    if "attention_mask" in values:
        out["attention_mask"] = head(values["attention_mask"])
    return out


def _checked_columns(example: dict):
    """(columns, head, tail) of an example for :func:`shift_for_next_token`: its ``input_ids``, ``label_mask``
    (and ``attention_mask``), checked to be all lists or all tensors of one shape with at least 2 tokens, and
    the slicing that drops the last / the first position on the token axis. Raises as documented there."""
    missing = [k for k in ("input_ids", "label_mask") if k not in example]
    if missing:
        raise ValueError(f"example has no {' or '.join(missing)}; expected the output of tokenize_conversation")
    keys = [k for k in ("input_ids", "label_mask", "attention_mask") if k in example]
    values = {k: example[k] for k in keys}
    if any(torch.is_tensor(v) for v in values.values()):
        if not all(torch.is_tensor(v) for v in values.values()):
            raise TypeError(f"mix of tensors and lists in {keys}; convert all to tensors (or all to lists)")
        shapes = {k: tuple(v.shape) for k, v in values.items()}
        head, tail = (lambda x: x[..., :-1]), (lambda x: x[..., 1:])
    else:
        if any(v and isinstance(v[0], (list, tuple)) for v in values.values()):
            raise ValueError("nested lists: pass one example as flat lists, or a batch as [batch, T] tensors")
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
    Not shifted: ``model(labels=…)`` shifts.
    """
    return torch.where(label_mask.bool(), input_ids, torch.full_like(input_ids, IGNORE_INDEX))


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

    Raises ValueError on an empty list, an example whose ``input_ids``, ``attention_mask`` and
    ``label_mask`` differ in length (naming its index), an unknown convention or a bad
    ``pad_to_multiple_of``.
    """

    def __init__(self, pad_token_id: int = 1, *, convention: str = "shifted", pad_to_multiple_of: int | None = None):
        if convention not in ("shifted", "labels"):
            raise ValueError(f"convention must be 'shifted' or 'labels', got {convention!r}")
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool) or not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1
        ):
            raise ValueError(f"pad_to_multiple_of must be a positive int, got {pad_to_multiple_of!r}")
        self.pad_token_id = pad_token_id
        self.convention = convention
        self.pad_to_multiple_of = pad_to_multiple_of

    def pad(self, examples: list[dict]) -> dict:
        """Right-pad ``input_ids``, ``attention_mask`` and ``label_mask`` to ``[B, L]`` tensors."""
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        for i, e in enumerate(examples):
            lengths = {k: len(e[k]) for k in ("input_ids", "attention_mask", "label_mask") if k in e}
            if len(set(lengths.values())) > 1 or "label_mask" not in lengths:
                raise ValueError(
                    f"example {i}: input_ids, attention_mask and label_mask must be present and of "
                    f"one length, got lengths {lengths}"
                )
        ids = [torch.as_tensor(e["input_ids"], dtype=torch.long) for e in examples]
        out = {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id),
            # Built from lengths: 1 on each example's own tokens, 0 on the padding after it.
            "attention_mask": pad_sequence([torch.ones_like(i) for i in ids], batch_first=True, padding_value=0),
            "label_mask": pad_sequence(
                [torch.as_tensor(e["label_mask"], dtype=torch.bool) for e in examples],
                batch_first=True,
                padding_value=False,
            ),
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
    Raises ValueError when the tokenizer's pad token equals its eos token.
    """

    def __init__(self, tokenizer, *, pad_to_multiple_of: int | None = None):
        from transformers import DataCollatorForLanguageModeling

        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("pad token must exist and differ from eos, or the end of each reply is never trained")
        self.collator = DataCollatorForLanguageModeling(
            tokenizer, mlm=False, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt"
        )

    def __call__(self, examples: list[dict]) -> dict:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        return self.collator([{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]} for e in examples])
