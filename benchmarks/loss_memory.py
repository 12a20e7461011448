"""Peak memory and time of the masked loss: full logits vs select-then-project in chunks.

    python benchmarks/loss_memory.py            # pythia-70m head, batch 8 x seq 1024 and 2048, 30% and 60% trained
    python benchmarks/loss_memory.py --quick    # batch 1 x seq 512 and 1024: 2-3 minutes on 2 CPU cores
    python benchmarks/loss_memory.py --sizes 8x1024     # chosen sizes (8 x 2048 needs about 10 GB on a CPU)

Each case runs forward + backward of the loss alone, from the final hidden states ``[B, T, 512]`` (which
require grad) through a ``50304 x 512`` head (a parameter) to the loss sum, in a fresh process:

* ``full + memo loss``: ``logits = head(hidden)`` ``[B, T, V]``, then ``MaskedCrossEntropyLoss`` (step 6);
* ``full + F.cross_entropy``: the same logits, ``F.cross_entropy(…, ignore_index=-100, reduction="sum")``;
* ``chunked (ours)``: :func:`sft_utils.scale.chunked_loss.chunked_masked_cross_entropy`, ``--chunk-rows`` rows at once;
* ``TRL fused head``: TRL's ``ChunkedLogProbFunction`` called as ``add_fused_lm_head`` (what
  ``SFTTrainer(loss_type="nll")``, formerly ``"chunked_nll"``, uses) calls it on this device: on CUDA only
  the trained rows, elsewhere every row (its "compact" switch needs Triton);
* ``TRL kernel, trained rows``: the same kernel given only the trained rows (its CUDA route), for comparison.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` above what the inputs hold; on a CPU the process's
peak resident set (``getrusage``) above its resident set before the case, after a small warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HIDDEN, VOCAB = 512, 50304  # pythia-70m
CASES = ("full + memo loss", "full + F.cross_entropy", "chunked (ours)", "TRL fused head", "TRL kernel, trained rows")


def make_inputs(batch, seq, share, device, seed=0):
    """hidden [B, T, H] (requires grad), head weight [V, H] (a parameter), targets with -100 off the mask, mask."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    hidden = torch.randn(batch, seq, HIDDEN, generator=generator).to(device).requires_grad_()
    weight = torch.nn.Parameter(torch.randn(VOCAB, HIDDEN, generator=generator).mul_(0.02).to(device))
    mask = (torch.rand(batch, seq, generator=generator) < share).to(device)
    targets = torch.randint(0, VOCAB, (batch, seq), generator=generator).to(device).masked_fill(~mask, -100)
    return hidden, weight, targets, mask


def loss_sum(case, hidden, weight, targets, mask, chunk_rows):
    """The case's loss sum (nats), ready for backward."""
    import torch.nn.functional as F

    if case == "full + memo loss":
        from sft_utils import MaskedCrossEntropyLoss

        return MaskedCrossEntropyLoss("sum")(F.linear(hidden, weight), targets, mask)
    if case == "full + F.cross_entropy":
        logits = F.linear(hidden, weight)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100, reduction="sum")
    if case == "chunked (ours)":
        from sft_utils.scale.chunked_loss import chunked_masked_cross_entropy

        return chunked_masked_cross_entropy(hidden, weight, targets, mask, chunk_rows=chunk_rows)[0]
    from trl.kernels import ChunkedLogProbFunction
    from trl.kernels.chunked_logprob import _use_triton
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    # As trl.trainer.utils.add_fused_lm_head does (labels already shifted here).
    compact = case == "TRL kernel, trained rows" or _use_triton(hidden.device)
    rows = hidden[mask] if compact else hidden.reshape(-1, HIDDEN)
    labels = targets[mask] if compact else targets.clamp(min=0).reshape(-1)
    log_probs = ChunkedLogProbFunction.apply(rows, weight, None, labels, 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE)[0]
    if not compact:
        log_probs = log_probs.view(mask.shape).masked_fill(~mask, 0)
    return -log_probs.sum()


def current_rss() -> int:
    """Resident set of this process now, bytes (Linux /proc; elsewhere 0, so the peak counts in full)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak resident set of this process so far, bytes (getrusage: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def child(case, batch, seq, share, chunk_rows) -> dict:
    """One case, in this (fresh) process: peak extra memory (bytes), time (s), mean loss (nats)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Warm-up on 2 x 8 tokens: loads kernels and libraries without raising the memory high-water mark.
    loss_sum(case, *make_inputs(2, 8, 0.5, device), chunk_rows).backward()
    hidden, weight, targets, mask = make_inputs(batch, seq, share, device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = current_rss()
    start = time.perf_counter()
    total = loss_sum(case, hidden, weight, targets, mask, chunk_rows)
    total.backward()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else peak_rss()
    grad_norm = (hidden.grad.norm() ** 2 + weight.grad.norm() ** 2).sqrt().item()
    mean = total.item() / int(mask.sum())
    return {"peak": peak - before, "seconds": seconds, "loss": mean, "grad_norm": grad_norm, "device": device}


def run(case, batch, seq, share, chunk_rows) -> dict | None:
    """Run one case in a fresh Python process; None when it cannot run (TRL absent)."""
    args = json.dumps([case, batch, seq, share, chunk_rows])
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, __file__, "--child", args], capture_output=True, text=True, check=False, cwd=root
    )
    if result.returncode != 0:
        if "No module named 'trl'" in result.stderr:
            return None
        raise RuntimeError(f"{case} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 x seq 512 and 1024 (2-3 minutes on 2 cores)")
    parser.add_argument("--sizes", help="comma-separated BATCHxSEQ, e.g. 8x1024,8x2048 (the default)")
    parser.add_argument("--chunk-rows", type=int, default=1024, help="rows projected at once by the chunked loss")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return
    sizes = [(1, 512), (1, 1024)] if args.quick else [(8, 1024), (8, 2048)]
    if args.sizes:
        sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    print(
        f"head {VOCAB} x {HIDDEN} (pythia-70m), float32, chunk_rows={args.chunk_rows}; forward + backward of the loss"
    )
    header = (
        f"{'batch x seq':>11} {'trained':>7}  {'case':<25} {'peak MB':>8} {'time s':>7} {'loss':>8}  vs F.cross_entropy"
    )
    print(header + "\n" + "-" * len(header))
    checks = []
    for batch, seq in sizes:
        for share in (0.3, 0.6):
            results = {case: run(case, batch, seq, share, args.chunk_rows) for case in CASES}
            full = results["full + F.cross_entropy"]
            for case, r in results.items():
                if r is None:
                    print(f"{f'{batch} x {seq}':>11} {share:>7.0%}  {case:<25} {'(trl not installed)':>26}")
                    continue
                ratio = f"peak {r['peak'] / full['peak']:5.1%}, time {r['seconds'] / full['seconds']:4.2f}x"
                print(
                    f"{f'{batch} x {seq}':>11} {share:>7.0%}  {case:<25} {r['peak'] / 2**20:8.0f} "
                    f"{r['seconds']:7.2f} {r['loss']:8.4f}  {ratio}"
                )
            checks.append((batch, seq, share, results))
        print()
    print(f"device: {full['device']}")
    print("targets: chunked peak <= trained share of the full-logits peak + 10 points; <= TRL; time <= full logits")
    for batch, seq, share, results in checks:
        ours, full, trl = results["chunked (ours)"], results["full + F.cross_entropy"], results["TRL fused head"]
        verdicts = [
            f"peak {ours['peak'] / full['peak']:.1%} of full (limit {share + 0.1:.0%})",
            f"vs TRL {ours['peak'] / trl['peak']:.2f}x" if trl else "TRL absent",
            f"time {ours['seconds'] / full['seconds']:.2f}x of full",
        ]
        print(f"  {batch} x {seq}, {share:.0%} trained: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
