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

    ``weight``: ``[vocab_size, hidden_size]``, no bias.
    """
    return model.get_output_embeddings()


def logits_nbytes(batch: int, seq: int, vocab_size: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a ``[batch, seq, vocab_size]`` logits tensor of ``dtype`` (activations only, no gradient)."""
    return batch * seq * vocab_size * torch.finfo(dtype).bits // 8
