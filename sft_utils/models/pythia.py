"""Pythia models: the published configs, and loading weights from a folder, the hub, its cache, or at random.

Introduced in notebook 05_project. Offline (no hub, nothing cached) a model gets the named size's exact
architecture with *random* weights, and says so loudly. The output head, memo step 5, is in
:mod:`sft_utils.steps.project`.
"""

from __future__ import annotations

import numbers
import re
from pathlib import Path

import torch

from .hub import load_local_hub_or_cache

DEFAULT_MODEL = "EleutherAI/pythia-70m"
PYTHIA_VOCAB_LEN = 50277  # len(tokenizer) of every Pythia checkpoint (50 254 BPE entries + 23 added)

# Pythia's published configs (EleutherAI/pythia-*/config.json). Shared by all sizes: GELU, rotary on
# 25% of each head (base 10 000), parallel attention + MLP residual, untied input/output embeddings,
# 2 048-token context, bos = eos = 0. intermediate_size is always 4 * hidden_size.
PYTHIA_SIZES = {  # name: (hidden_size, num_hidden_layers, num_attention_heads, vocab_size)
    "pythia-14m": (128, 6, 4, 50304),
    "pythia-31m": (256, 6, 8, 50304),
    "pythia-70m": (512, 6, 8, 50304),
    "pythia-160m": (768, 12, 12, 50304),
    "pythia-410m": (1024, 24, 16, 50304),
    "pythia-1b": (2048, 16, 8, 50304),
    "pythia-1.4b": (2048, 24, 16, 50304),
    "pythia-2.8b": (2560, 32, 32, 50304),
    "pythia-6.9b": (4096, 32, 32, 50432),
    "pythia-12b": (5120, 36, 40, 50688),
}


# EleutherAI/pythia-70m, pythia-70m-deduped, pythia-70m-v0, pythia-70m-deduped-v0: one architecture each.
# What sft_utils.train.resume writes into each checkpoint-<step>/ folder (named here: models/ sits below train/).
RESUME_STATE_FILE = "trainer_state.json"

_PYTHIA_NAME = re.compile(r"(?:eleutherai/)?(pythia-[0-9.]+[mb])(?:-deduped)?(?:-v0)?", re.IGNORECASE)


def pythia_size(name) -> str | None:
    """``"pythia-70m"`` for any hub name of a Pythia size (``EleutherAI/pythia-70m-deduped``,
    ``pythia-70m-v0`` …); None for anything else, a folder such as ``checkpoints/pythia-70m`` included."""
    match = _PYTHIA_NAME.fullmatch(name) if isinstance(name, str) else None
    size = match.group(1).lower() if match else None
    return size if size in PYTHIA_SIZES else None


def _load_gpt_neox(name_or_path, **kwargs):
    """``GPTNeoXForCausalLM.from_pretrained``, refusing other architectures up front (loading a GPT-2
    config as GPT-NeoX would fill the gaps with GPT-NeoX-20B's defaults: a 20-billion-parameter model)."""
    from transformers import AutoConfig, GPTNeoXForCausalLM

    folder = Path(name_or_path)
    if (folder / RESUME_STATE_FILE).is_file() and not (folder / "config.json").is_file():
        raise ValueError(
            f"{name_or_path!s} is a checkpoint to resume training from (train(..., resume_from=...), --resume), not a "
            "saved model: the trained model is saved in the run's output folder when it ends"
        )
    config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    if config.model_type != "gpt_neox":
        raise ValueError(f"{name_or_path!s} holds a {config.model_type!r} model, not GPT-NeoX (Pythia)")
    return GPTNeoXForCausalLM.from_pretrained(name_or_path, config=config, **kwargs)


def pythia_config(name: str):
    """``GPTNeoXConfig`` of a Pythia size, e.g. ``"EleutherAI/pythia-70m"`` or ``"pythia-160m-deduped"``.

    Built from the same keys as the hub's ``config.json`` (so transformers converts ``rotary_pct``
    etc. as it does for a download). ``eos_token_id`` is set to 0 explicitly: ``GPTNeoXConfig``
    defaults it to 2. Raises ValueError for a name that is not a Pythia size.
    """
    from transformers import GPTNeoXConfig

    size = pythia_size(name)
    if size is None:
        raise ValueError(
            f"{name!r} is not a Pythia name (EleutherAI/pythia-70m, pythia-160m-deduped, …); "
            f"sizes: {', '.join(PYTHIA_SIZES)}"
        )
    hidden, layers, heads, vocab = PYTHIA_SIZES[size]
    return GPTNeoXConfig.from_dict(
        {
            "architectures": ["GPTNeoXForCausalLM"],
            "model_type": "gpt_neox",
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": 4 * hidden,
            "vocab_size": vocab,
            "hidden_act": "gelu",
            "rotary_pct": 0.25,
            "rotary_emb_base": 10000,
            "max_position_embeddings": 2048,
            "use_parallel_residual": True,
            "tie_word_embeddings": False,
            "layer_norm_eps": 1e-5,
            "initializer_range": 0.02,
            "attention_dropout": 0.0,
            "hidden_dropout": 0.0,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "use_cache": True,
        }
    )


def load_model(name_or_path=DEFAULT_MODEL, *, seed: int | None = 0, verbose: bool = True, random_weights: bool = False):
    """A ``GPTNeoXForCausalLM``: Pythia's weights from the hub when reachable, else random weights.

    Args:
        name_or_path: hub name (``EleutherAI/pythia-70m``, any size) or a local folder saved with
            ``save_pretrained``.
        seed: ``torch.manual_seed(seed)`` before random initialisation (offline path and ``random_weights``
            only); None does not reseed: the weights then come from torch's global generator as it stands.
        verbose: print which source was used.
        random_weights: skip the hub and its cache: random weights on purpose (the toy world of notebook 07
            trains a model from scratch), announced in one quiet line.

    Returns:
        The model in eval mode, float32, on the CPU; ``model.sft_source`` says where it came from and
        ``model.sft_pretrained`` is False for random weights. Its ``pad_token_id`` is set to 1.

    Without the hub (and not in the hub cache) the model has the named size's exact architecture but
    *random weights*, and a loud message says so: shapes, memory and losses of the course are right,
    generated text is noise.

    Raises ValueError for a folder or hub model that is not GPT-NeoX, or when no weights can be loaded
    and ``name_or_path`` is not a Pythia name; FileNotFoundError for a path (``/…``, ``./…``,
    ``~/…``, ``a/b/c``) that is not a folder; TypeError for a ``seed`` that is neither an int nor None
    (checked before anything loads, whichever source would be used).
    """
    from transformers import GPTNeoXForCausalLM

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None (do not reseed), got {seed!r} ({type(seed).__name__})")

    if random_weights:
        model, source = None, "asked for"
    else:
        model, source = load_local_hub_or_cache(name_or_path, _load_gpt_neox)
    pretrained = model is not None
    if not pretrained:
        config = pythia_config(name_or_path)
        if seed is not None:
            torch.manual_seed(int(seed))
        model = GPTNeoXForCausalLM(config)
        source = f"RANDOM weights with {name_or_path}'s config ({source})"
    model = model.float()  # checkpoints are float16 and transformers 5 keeps their dtype; train in fp32
    model.config.pad_token_id = 1
    model.config.eos_token_id = 0
    model.sft_source, model.sft_pretrained = source, pretrained
    if verbose and random_weights:
        print(f"Model: {source}; {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    elif verbose:
        n = sum(p.numel() for p in model.parameters())
        print(("!" * 72 + "\n" if not pretrained else "") + f"Model: {source}; {n / 1e6:.1f}M parameters")
        if not pretrained:
            print("No pretrained weights: shapes and losses are real, generated text will be noise.\n" + "!" * 72)
    return model.eval()
