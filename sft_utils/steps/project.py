"""Step 5 of the memo: the output head projects hidden states to the vocabulary, giving the logits.

Introduced in notebook 05_project.

GPT-NeoX ends with a linear layer without bias, ``hidden_size -> vocab_size``. Pythia checkpoints
name it ``embed_out``; transformers 5 calls the attribute ``lm_head`` (and maps the checkpoint name);
``model.get_output_embeddings()`` works in every version. Its output, the logits, is
``[batch, seq, vocab_size]``, the largest activation of a small model. The model itself (Pythia's
configs, hub or random weights) is built in :mod:`sft_utils.models.pythia`.
"""

from __future__ import annotations

import torch


def output_head(model) -> torch.nn.Linear:
    """The vocabulary projection (``embed_out`` in Pythia checkpoints, ``lm_head`` in transformers 5).

    ``weight``: ``[vocab_size, hidden_size]``, no bias. Raises TypeError for anything but a transformers model (a
    name: load it first), ValueError for a model without an output head (``GPTNeoXModel``: load a ``…ForCausalLM``).
    """
    head = check_model(model).get_output_embeddings()
    if head is None:
        raise ValueError(
            f"{type(model).__name__} has no output head; load a causal LM (GPTNeoXForCausalLM, sft_utils.load_model)"
        )
    return head


def check_model(model, *, generate: bool = False):
    """``model`` unchanged when it is a transformers model (with ``.generate`` when ``generate``); TypeError
    otherwise, naming what was given (a model's name, a tokenizer, None)."""
    hint = f" {model!r:.60}; load it first: sft_utils.load_model(name)" if isinstance(model, str) else ""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "get_output_embeddings"):
        raise TypeError(
            f"model must be a transformers causal LM (e.g. GPTNeoXForCausalLM), got {type(model).__name__}{hint}"
        )
    if generate and not hasattr(model, "generate"):
        raise TypeError(f"model must be able to generate (a …ForCausalLM), got {type(model).__name__}")
    return model


def logits_nbytes(batch: int, seq: int, vocab_size: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a ``[batch, seq, vocab_size]`` logits tensor of ``dtype`` (activations only, no gradient).

    Raises ValueError for sizes that are not ints >= 0, TypeError for a ``dtype`` that is not a floating torch
    dtype."""
    for name, value in (("batch", batch), ("seq", seq), ("vocab_size", vocab_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch dtype (logits are floats), got {dtype!r}")
    return batch * seq * vocab_size * torch.finfo(dtype).bits // 8
