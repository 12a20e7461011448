"""How much tensor memory a piece of code needs at its peak, on a CPU or a GPU.

Introduced in notebook 05_project (its last section), to compare full logits with the chunked loss.
On a GPU this is ``torch.cuda.max_memory_allocated``. A CPU has no such counter, so the allocations and
frees that PyTorch's profiler records (``profile_memory=True``, its raw ``[memory]`` records) are replayed
in time order and the largest running total is kept. Both count tensors created while ``fn`` runs, not tensors that already existed.
"""

from __future__ import annotations

import contextlib
import os

import torch


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what the profiler's C++ side writes straight to file descriptor 2 (some builds log each start)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(fn, device="cpu") -> tuple[int, object]:
    """Run ``fn()`` once; return (peak bytes of tensors it allocated above what was live before, its result).

    ``device``: ``"cpu"`` (every allocation and free that PyTorch's profiler records with
    ``profile_memory=True``) or a CUDA device (``torch.cuda.max_memory_allocated``). Raises TypeError when ``fn``
    is not callable (a result where a function goes: pass ``lambda: …``), ValueError for another device.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function to run, got {type(fn).__name__}; wrap the code as lambda: …")
    given = device
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or a CUDA device such as 'cuda:0', got {given!r}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before, result
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    # The profiler's raw allocation (+bytes) and free (-bytes) records, replayed in time order.
    records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for record in sorted(records, key=lambda e: e.start_ns()):
        live += record.nbytes()
        peak = max(peak, live)
    return peak, result
