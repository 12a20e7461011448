"""How long a run will take, roughly: 6 x parameters x tokens FLOPs at a share of the GPU's peak.

Introduced in notebook 08_finetune_pythia, before its GPU run.
"""

from __future__ import annotations

import os

import torch

# Dense bf16 peak (TFLOP/s) of common GPUs, from their makers' data sheets; fp16 for the T4.
PEAK_TFLOPS = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "L4": 121, "A10": 125, "T4": 65, "V100": 125}


def estimate_run_seconds(n_params: int, tokens: int, device, *, mfu: float = 0.3) -> float | None:
    """Rough wall time of training on ``tokens`` tokens: 6 · params · tokens FLOPs (forward + backward)
    at ``mfu`` of the GPU's peak (:data:`PEAK_TFLOPS`, matched by name). None for an unknown GPU;
    on a CPU, 20 GFLOP/s per core, an order of magnitude only."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((tflops * 1e12 for key, tflops in PEAK_TFLOPS.items() if key in name), None)
        return None if peak is None else 6 * n_params * tokens / (peak * mfu)
    return 6 * n_params * tokens / (20e9 * (os.cpu_count() or 1))
