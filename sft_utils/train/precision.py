"""One precision policy for every path that runs the model: the loop, ``train_step``, evaluation, notebook 07.

Introduced in notebook 08_finetune_pythia. Mixed precision runs the matrix products in 16 bits and keeps the
weights and the softmax in float32:

* **bf16** has float32's range, so no loss scaling is needed; only GPUs with native bf16 (Ampere and later:
  A100, L4, H100 …) run it fast. ``torch.cuda.is_bf16_supported()`` also says True on a T4 or a V100, where
  bf16 is *emulated* (slow): this module asks with ``including_emulation=False``.
* **fp16** runs natively on older GPUs, but small gradients underflow to 0 unless the loss is scaled up
  first: it needs a gradient scaler (accelerate's, in :func:`sft_utils.train.train`), which skips the updates
  whose scaled gradients overflowed. On a CPU the loop asked for fp16 uses torch's CPU gradient scaler: slow,
  but the same path as on a T4, to rehearse it.
* **fp32** everywhere else: on a CPU, and on a path without a gradient scaler on an older GPU.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def native_bf16(device=None) -> bool:
    """True when ``device`` is a CUDA GPU that computes bf16 natively (Ampere and later), not by emulation."""
    device = _device(device)
    if device.type != "cuda":
        return False
    try:  # torch >= 2.4 also reports bf16 *emulated* on older GPUs (a T4) unless told not to
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch counts only native support
        return torch.cuda.is_bf16_supported()


def resolve_precision(precision: str = "auto", device=None, *, scaler: bool = True) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"``: the precision to run ``precision`` in on ``device``.

    Args:
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        device: a torch device or its name; None: the first CUDA GPU when there is one, else the CPU.
        scaler: whether the calling path scales fp16 gradients (the loop of :func:`sft_utils.train.train`
            does; :func:`sft_utils.train.train_step` does not).

    ``"auto"`` gives bf16 on a GPU with native bf16 (Ampere and later); fp16 on older GPUs (a T4, a V100)
    when the path has a gradient scaler, fp32 when it has none; fp32 on a CPU. ``"fp16"`` asked for by name runs
    on a CPU too, where the loop scales with torch's CPU gradient scaler (to rehearse a T4's run; slow).

    Raises:
        ValueError: an unknown name; ``"fp16"`` on a path without a gradient scaler; a device torch does not know,
            or a CUDA device where there is none.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = _device(device)
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        if native_bf16(device):
            return "bf16"
        return "fp16" if scaler else "fp32"
    if precision == "fp16" and not scaler:
        raise ValueError("fp16 needs a gradient scaler, which this path has not; use 'auto', 'bf16' or 'fp32'")
    return precision


def autocast(precision: str, device) -> torch.autocast:
    """``torch.autocast`` for ``precision`` on ``device``: bf16 or fp16 autocast, or disabled for fp32.

    ``precision`` is a resolved name (``"bf16"``, ``"fp16"``, ``"fp32"``) or ``"auto"``, resolved here as a
    path without a gradient scaler. Raises ValueError as :func:`resolve_precision` does.
    """
    device = _device(device)
    # "auto" here knows of no scaler; an explicit name is the caller's choice, scaler included.
    precision = resolve_precision(precision, device, scaler=precision != "auto")
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _device(device) -> torch.device:
    """``device`` as a torch.device (None: the GPU when there is one); ValueError for a name torch does not know,
    or a CUDA device on a machine without one."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"not a device: {device!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} asked for, but torch sees no CUDA GPU here")
    return device
