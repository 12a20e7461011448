"""How much memory fine-tuning a Pythia size needs at its peak, before running it: full or LoRA, with or without
gradient checkpointing, float32 or mixed precision.

The terms, per token ``N = batch_size × seq_len``, hidden size ``h``, ``a`` heads, ``L`` layers, vocabulary ``V``:

* **weights**: every parameter in float32 (4 bytes), LoRA's adapters included. Mixed precision as
  ``torch.autocast`` (and accelerate) runs it keeps the weights in float32 and casts them per operation: the
  16-bit copies of the layer weights are saved for backward (**weight_copies**, 2 bytes per layer weight; one
  layer's under checkpointing).
* **gradients**: float32, one per *trainable* parameter (all of them, or LoRA's ``lora_A`` / ``lora_B``).
* **optimizer**: AdamW's two float32 moments per trainable parameter (``torch.optim.AdamW``, any precision).
* **activations**: the tensors GPT-NeoX's forward saves for backward (:data:`SAVED_PER_LAYER`), ``L`` layers of
  them; under gradient checkpointing only every layer's input plus one layer recomputed in backward.
* **loss**: :func:`sft_utils.scale.chunked_loss.chunked_masked_cross_entropy`'s block of ``chunk_rows`` trained
  rows × ``V`` (float32, plus its 16-bit product under autocast) and, under autocast, the head's 16-bit copy
  and the per-chunk product of its gradient. The ``[B, T, V]`` logits are never built.

**total** is not the sum: the gradients of the lower layers appear while their activations are freed in
backward, so the peak is ``weights + optimizer + max(activations + weight_copies + loss + head gradient,
gradients)``, the larger of the start and the end of backward, in a steady-state step (optimizer state
already there, gradients set to None by ``zero_grad`` before the forward). The loss's blocks are freed before
the first layer's backward, which holds one ``[N, 4h]`` gradient beside the saved tensors (and, under
checkpointing, the layer it recomputes): only the larger of the two counts.

Left out: the CUDA context (0.3-0.5 GB on a GPU), the allocator's cache and fragmentation, smaller backward
temporaries, the causal mask built once per forward, and the data. Layer 0 under LoRA saves a little less than
counted (its input needs no gradient). Checked against CPU peaks (``peak_memory``) of pythia-14m and pythia-70m
in docs/performance.md's memory section, which holds the table (``python benchmarks/memory_table.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..models.pythia import PYTHIA_SIZES, pythia_size
from .chunked_loss import DEFAULT_CHUNK_ROWS

METHODS = ("full", "lora")
PRECISIONS = ("fp32", "bf16", "fp16")
ATTENTIONS = ("sdpa", "eager")
# Every linear layer of a GPT-NeoX block: what peft's target_modules="all-linear" selects (the output head
# excluded). QLoRA (Dettmers et al., 2023) found LoRA on every linear layer needed to match full fine-tuning;
# peft's own GPT-NeoX default, ["query_key_value"], trains a quarter of these parameters.
LORA_TARGETS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")

# What one GPT-NeoX layer saves for backward, per token (transformers 5's modeling_gpt_neox, checked with
# torch.autograd.graph.saved_tensors_hooks on pythia-14m). Sizes in elements of h; "act" tensors are 16-bit under
# autocast (its op lists run linear, matmul and sdpa in 16 bits, layer_norm and the float32 softmax in float32)
# and float32 otherwise. The "when ... is trained" ones need a trainable weight in that linear layer (a frozen
# Linear needs only its weight to pass the gradient on; LoRA's lora_A saves the input instead).
SAVED_PER_LAYER = (
    ("layer input: the float32 residual stream both layer norms read", "4h bytes, always"),
    ("layer norms' means and reciprocal deviations, float32", "16 bytes, always"),
    ("input_layernorm output, query_key_value's input", "h act, when query_key_value is trained"),
    ("rotated query and key, the attention's inputs", "2h act, always"),
    ("sdpa: query_key_value's output, kept whole by the value view", "3h act"),
    ("sdpa: attention output and log-sum-exp per head", "h act + 4a bytes"),
    ("sdpa with padding: the mask as a float bias [B, 1, T, T], per layer", "T act"),
    ("eager: the value, copied by the batched matmul", "h act"),
    ("eager: softmax [B, heads, T, T] in float32 (and its 16-bit copy under autocast)", "aT x 4 (x 6) bytes"),
    ("dense's input, the attention output made contiguous", "h act, when dense is trained"),
    ("post_attention_layernorm output, dense_h_to_4h's input", "h act, when dense_h_to_4h is trained"),
    ("dense_h_to_4h output, GELU's input", "4h act, always"),
    ("GELU output, dense_4h_to_h's input", "4h act, when dense_4h_to_h is trained"),
    ("LoRA: lora_A's output, lora_B's input, per target", "r act"),
)


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak training memory, in bytes, and its parts (see :mod:`sft_utils.scale.memory_estimate`).

    ``total`` is the peak, not the sum of the parts; ``parameters`` counts every parameter (LoRA's adapters
    included), ``trainable_parameters`` those with a gradient and optimizer state.
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int
    weight_copies: int
    loss: int
    total: int
    parameters: int
    trainable_parameters: int


def linear_shapes(hidden: int) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each linear layer of a GPT-NeoX block of width ``hidden`` (all with a bias)."""
    return {
        "query_key_value": (hidden, 3 * hidden),
        "dense": (hidden, hidden),
        "dense_h_to_4h": (hidden, 4 * hidden),
        "dense_4h_to_h": (4 * hidden, hidden),
    }


def _shape(size) -> tuple[int, int, int, int]:
    name = pythia_size(size)
    if name is None:
        raise ValueError(f"size must be a Pythia size ({', '.join(PYTHIA_SIZES)}), got {size!r}")
    return PYTHIA_SIZES[name]


def parameter_count(size: str) -> int:
    """Parameters of ``GPTNeoXForCausalLM(pythia_config(size))``: embedding, head, and per layer the four linear
    layers (weights and biases) and two layer norms; plus the final layer norm. ValueError for an unknown size."""
    hidden, layers, _, vocab = _shape(size)
    per_layer = sum(i * o + o for i, o in linear_shapes(hidden).values()) + 2 * 2 * hidden
    return 2 * vocab * hidden + layers * per_layer + 2 * hidden


def _check_targets(targets) -> tuple[str, ...]:
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    unknown = [t for t in targets if t not in LORA_TARGETS]
    if not targets or unknown:
        raise ValueError(f"LoRA targets must be among {', '.join(LORA_TARGETS)}, got {list(targets)!r}")
    return targets


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def lora_trainable_parameters(size: str, r: int = 8, targets=LORA_TARGETS) -> int:
    """Trainable parameters of ``peft.get_peft_model(model, LoraConfig(r=r, target_modules=targets))`` on a Pythia
    size: ``r × (in + out)`` per targeted linear layer (``lora_A``: ``[r, in]``, ``lora_B``: ``[out, r]``, no
    bias, peft's ``bias="none"``), in every layer. Equals ``get_nb_trainable_parameters()[0]`` (tested).

    Raises ValueError for an unknown size, ``r`` not a positive int, or a target outside :data:`LORA_TARGETS`.
    """
    hidden, layers, _, _ = _shape(size)
    _check_positive_int("lora_r", r)
    shapes = linear_shapes(hidden)
    return layers * sum(r * sum(shapes[t]) for t in _check_targets(targets))


def layer_activation_bytes(
    size: str,
    seq_len: int,
    batch_size: int,
    *,
    lora_r: int | None = None,
    lora_targets=LORA_TARGETS,
    mixed: bool = False,
    attention: str = "sdpa",
    padding_mask: bool = False,
) -> int:
    """Bytes one GPT-NeoX layer saves for backward over ``batch_size × seq_len`` tokens (:data:`SAVED_PER_LAYER`).

    ``lora_r`` None: full fine-tuning (every linear layer trained); else LoRA of that rank on ``lora_targets``.
    ``mixed``: 16-bit activations under autocast. Arguments are not checked here (see
    :func:`estimate_training_memory`).
    """
    hidden, _, heads, _ = _shape(size)
    act = 2 if mixed else 4
    trained = LORA_TARGETS if lora_r is None else lora_targets
    per_token = 4 * hidden + 16 + 2 * hidden * act + 4 * hidden * act  # input, norm statistics, q and k, GELU input
    inputs = {"query_key_value": 1, "dense": 1, "dense_h_to_4h": 1, "dense_4h_to_h": 4}  # in units of h
    per_token += sum(hidden * n * act for name, n in inputs.items() if name in trained)
    if attention == "sdpa":
        per_token += 4 * hidden * act + 4 * heads + (seq_len * act if padding_mask else 0)
    else:
        per_token += hidden * act + heads * seq_len * (act + 4 if mixed else 4)
    per_token += 0 if lora_r is None else len(trained) * lora_r * act
    return batch_size * seq_len * per_token


def _check(size, seq_len, batch_size, method, lora_r, precision, attention, trained_fraction, chunk_rows) -> None:
    _shape(size)
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size), ("chunk_rows", chunk_rows)):
        _check_positive_int(name, value)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "lora":
        _check_positive_int("lora_r", lora_r)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
    if isinstance(trained_fraction, bool) or not isinstance(trained_fraction, (int, float)):
        raise TypeError(f"trained_fraction must be a number in (0, 1], got {trained_fraction!r}")
    if not 0 < trained_fraction <= 1:
        raise ValueError(f"trained_fraction must be a number in (0, 1], got {trained_fraction!r}")


def _loss_bytes(hidden: int, vocab: int, rows: int, mixed: bool, head_trained: bool) -> int:
    """The chunked loss's peak beyond what it saves: one ``[rows, V]`` float32 block (plus its 16-bit product and,
    in backward, the 16-bit gradient under autocast), the head's 16-bit copy, and under autocast with a trained
    head the per-chunk weight-gradient product (16-bit, then float32)."""
    if not mixed:
        return rows * vocab * 4
    return rows * vocab * 6 + 2 * vocab * hidden + (6 * vocab * hidden if head_trained else 0)


def estimate_training_memory(
    size: str,
    seq_len: int,
    batch_size: int,
    *,
    method: str = "full",
    lora_r: int = 8,
    lora_targets=LORA_TARGETS,
    gradient_checkpointing: bool = False,
    precision: str = "bf16",
    attention: str = "sdpa",
    padding_mask: bool | None = None,
    trained_fraction: float = 1.0,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> MemoryEstimate:
    """Estimated peak memory of one training step of a Pythia size with the masked, chunked loss, in bytes.

    Args:
        size: a Pythia size, ``"pythia-70m"`` or ``"EleutherAI/pythia-1b"`` (:data:`PYTHIA_SIZES`).
        seq_len, batch_size: tokens per conversation (after padding) and conversations per micro-batch.
        method: ``"full"`` (every parameter trained) or ``"lora"`` (``peft.LoraConfig(r=lora_r,
            target_modules=lora_targets)``; the base weights frozen: no gradient, no optimizer state).
        lora_targets: among :data:`LORA_TARGETS` (default: all four, peft's ``"all-linear"`` on GPT-NeoX).
        gradient_checkpointing: transformers' ``gradient_checkpointing_enable()`` (``use_cache=False``): every
            layer's input is kept, one layer's activations exist at a time, recomputed in backward.
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` autocast with float32 weights (16-bit activations; fp16's
            gradient scaler adds nothing that counts).
        attention: ``"sdpa"`` (transformers' default: flash or memory-efficient kernels, no ``[T, T]`` scores
            saved) or ``"eager"`` (saves the ``[B, heads, T, T]`` softmax).
        padding_mask: whether the batch has padding, so that sdpa gets a mask and saves it per layer as a float
            ``[B, 1, T, T]`` bias; None: when ``batch_size > 1`` (``AssistantOnlyCollator`` pads to the longest).
        trained_fraction: share of the ``batch_size × seq_len`` targets the label mask trains (1: all).
        chunk_rows: the chunked loss's rows per block.

    Returns:
        A :class:`MemoryEstimate` (bytes).

    Raises:
        ValueError: naming the argument: an unknown size, method, precision or attention; ``seq_len``,
            ``batch_size``, ``chunk_rows`` or ``lora_r`` not a positive int; LoRA targets outside
            :data:`LORA_TARGETS`; ``trained_fraction`` outside (0, 1].
        TypeError: ``trained_fraction`` not a number.
    """
    _check(size, seq_len, batch_size, method, lora_r, precision, attention, trained_fraction, chunk_rows)
    hidden, layers, _, vocab = _shape(size)
    full, mixed, tokens = method == "full", precision != "fp32", batch_size * seq_len
    lora_targets = LORA_TARGETS if full else _check_targets(lora_targets)
    trainable = parameter_count(size) if full else lora_trainable_parameters(size, lora_r, lora_targets)
    parameters = parameter_count(size) + (0 if full else trainable)  # LoRA adds its adapters to the base
    padded = batch_size > 1 if padding_mask is None else padding_mask
    one_layer = layer_activation_bytes(
        size, seq_len, batch_size, lora_r=None if full else lora_r, lora_targets=lora_targets, mixed=mixed,
        attention=attention, padding_mask=padded,
    )  # fmt: skip
    residual, rows = tokens * 4 * hidden, math.ceil(trained_fraction * tokens)  # a layer's float32 input
    # Outside the layers: the last layer's output (the final norm's input), its statistics, the trained rows.
    outside = residual + tokens * 8 + rows * hidden * 4
    layer_weights = sum(i * o for i, o in linear_shapes(hidden).values()) + (0 if full else trainable // layers)
    copies = (1 if gradient_checkpointing else layers) * 2 * layer_weights if mixed else 0
    loss = _loss_bytes(hidden, vocab, min(chunk_rows, rows), mixed, full)
    head_gradient = 4 * vocab * hidden if full else 0
    # While a layer's backward runs, the gradient of its [N, 4h] GELU output is alive beside the saved tensors;
    # the loss's blocks are freed by then: one or the other at a time.
    grad_buffer = tokens * 4 * hidden * (2 if mixed else 4)
    if gradient_checkpointing:  # every layer's input kept, one layer recomputed (its input among those kept)
        kept = layers * residual + outside
        activations = kept + one_layer - residual
        start_of_backward = kept + head_gradient + max(loss, one_layer - residual + copies + grad_buffer)
    else:
        activations = layers * one_layer + outside
        start_of_backward = activations + copies + head_gradient + max(loss, grad_buffer)
    weights, gradients, optimizer = 4 * parameters, 4 * trainable, 8 * trainable
    total = weights + optimizer + max(start_of_backward, gradients)
    return MemoryEstimate(weights, gradients, optimizer, activations, copies, loss, total, parameters, trainable)


def weights_bytes(size: str) -> int:
    """Bytes of a Pythia size's weights in float32, as ``load_model`` keeps them on the device (4 per parameter).
    ValueError for an unknown size."""
    return 4 * parameter_count(size)


def forward_memory(
    size: str,
    seq_len: int,
    batch_size: int,
    *,
    precision: str = "fp32",
    full_logits: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Estimated peak bytes of one forward pass without gradients (``torch.no_grad()``: evaluation, a reply's
    prompt, a logits comparison) over ``batch_size × seq_len`` tokens, beyond the weights themselves.

    Nothing is saved for backward, so only one layer's tensors exist at a time: the float32 residual stream and
    the layer's output (``4h`` bytes each per token), query_key_value's output and the MLP's two ``[N, 4h]``
    tensors (16-bit under autocast), the padding bias ``[B, 1, T, T]`` when ``batch_size > 1``, and under
    autocast the layer's 16-bit weight copies. Then the logits: with ``full_logits`` the ``[B, T, V]`` logits
    (16-bit under autocast) and the float32 log-softmax the loss or a comparison computes from them; without,
    one ``[chunk_rows, V]`` float32 block of the chunked loss (:mod:`sft_utils.scale.chunked_loss`).

    Raises ValueError as :func:`estimate_training_memory` for the arguments both take.
    """
    _check(size, seq_len, batch_size, "full", 8, precision, "sdpa", 1.0, chunk_rows)
    hidden, _, _, vocab = _shape(size)
    mixed, tokens = precision != "fp32", batch_size * seq_len
    act = 2 if mixed else 4
    stream = 2 * tokens * 4 * hidden  # the residual stream and the layer's output, float32
    layer = tokens * hidden * act * (3 + 4 + 4) + (batch_size * seq_len * seq_len * act if batch_size > 1 else 0)
    copies = 2 * (sum(i * o for i, o in linear_shapes(hidden).values()) + vocab * hidden) if mixed else 0
    if full_logits:
        logits = tokens * vocab * (act + 4)
    else:
        logits = min(chunk_rows, tokens) * vocab * (4 + (2 if mixed else 0))
    return stream + max(layer, logits) + copies


@dataclass(frozen=True)
class CellMemory:
    """What one notebook cell holds on the device at its peak, part by part (``(what, bytes)`` pairs), e.g. a
    model's weights beside a training step of a copy. ``total`` is their sum, in bytes. Built by
    :func:`sft_utils.course.finetune.notebook_memory` for notebook 08_finetune_pythia."""

    cell: str
    parts: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(size for _, size in self.parts)


def memory_table(cells, *, budget: float | None = None, capacity: float | None = None) -> str:
    """A plain-text table of :class:`CellMemory` rows: each cell's estimated peak in GB (10^9 bytes) and what it
    holds. ``budget`` (bytes) marks a cell over it ``OVER BUDGET``; ``capacity`` (bytes, e.g. the
    device's memory) is named in the header."""
    cells = list(cells)
    width = max(len(c.cell) for c in cells)
    header = f"{'cell':<{width}}  {'peak (GB)':>9}  holds"
    if capacity is not None:
        header += f"   (device: {capacity / 1e9:.1f} GB"
        header += f"; budget {budget / 1e9:.1f} GB)" if budget is not None else ")"
    lines = [header]
    for c in cells:
        fits = "OVER BUDGET: " if budget is not None and c.total > budget else ""
        parts = " + ".join(f"{what} {size / 1e9:.2f}" for what, size in c.parts)
        lines.append(f"{c.cell:<{width}}  {c.total / 1e9:>9.2f}  {fits}{parts}")
    return "\n".join(lines)
