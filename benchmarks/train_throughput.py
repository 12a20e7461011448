"""Training throughput of Pythia sizes: tokens/s, MFU and peak memory of full optimizer steps.

    python benchmarks/train_throughput.py --models pythia-160m pythia-410m --seq-lens 1024 2048 --peak-tflops 989
    python benchmarks/train_throughput.py --models pythia-14m --seq-lens 128 --batch-size 2 --peak-tflops 0.1  # CPU

Each step is what ``sft_utils.train.train`` does per micro-batch: forward under the chosen autocast,
:func:`sft_utils.train.masked_loss_sum` (every target trained), backward, gradient clipping, AdamW. The
model is built from Pythia's config (random weights, no hub needed); the batch is random token ids.

MFU = 6 · params · tokens/s / peak FLOP/s (``--peak-tflops``: the device's dense bf16 peak from its data
sheet, e.g. 989 for an H100/H200 SXM, 312 for an A100, 65 (fp16) for a T4). params excludes the input
embedding (a table lookup, no matmul); attention's own FLOPs (quadratic in the length) are not counted,
so MFU reads a little low at long sequences. Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU,
the process's peak resident set on a CPU.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from sft_utils.models.pythia import pythia_config
from sft_utils.train import masked_loss_sum, resolve_precision


def run(
    name: str,
    seq_len: int,
    batch_size: int,
    steps: int,
    warmup: int,
    device,
    precision: str,
    *,
    prompt_share: float = 0.0,
    scaler: bool | None = None,
) -> dict:
    """Tokens/s, params and peak memory of ``steps`` timed optimizer steps after ``warmup`` untimed ones.

    ``prompt_share``: the first share of each row's targets is left untrained (a prompt), the rest trained.
    ``scaler``: use a gradient scaler (``torch.amp.GradScaler`` of the device); None: with fp16 only."""
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(pythia_config(name)).to(device).train()
    params = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" if scaler is None else scaler)
    ids = torch.randint(0, 50000, (batch_size, seq_len + 1), device=device)
    label_masks = torch.ones_like(ids[:, 1:], dtype=torch.bool)
    label_masks[:, : int(prompt_share * seq_len)] = False
    batch = {
        "input_ids": ids[:, :-1],
        "attention_mask": torch.ones_like(ids[:, :-1]),
        "targets": ids[:, 1:],
        "label_masks": label_masks,
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        loss_sum, count = masked_loss_sum(model, batch, precision=precision)
        scaler.scale(loss_sum / count).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    tokens_per_s = batch_size * seq_len * steps / seconds
    if device.type == "cuda":
        peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"params": params, "tokens_per_s": tokens_per_s, "peak_gib": peak_gib}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["pythia-160m", "pythia-410m"])
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[1024, 2048])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, kernels)")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    parser.add_argument("--peak-tflops", type=float, required=True, help="device peak, TFLOP/s, for MFU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; precision {precision}; peak {args.peak_tflops} TFLOP/s; batch {args.batch_size}")
    print("| model | seq length | batch | tokens/s | MFU | peak memory (GiB) |\n|---|---:|---:|---:|---:|---:|")
    for model in args.models:
        for seq_len in args.seq_lens:
            try:
                r = run(model, seq_len, args.batch_size, args.steps, args.warmup, device, precision)
            except torch.cuda.OutOfMemoryError:
                print(f"| {model} | {seq_len} | {args.batch_size} | out of memory | | |")
                torch.cuda.empty_cache()
                continue
            mfu = 6 * r["params"] * r["tokens_per_s"] / (args.peak_tflops * 1e12)
            print(
                f"| {model} | {seq_len} | {args.batch_size} | {r['tokens_per_s']:,.0f} | {mfu:.1%} | {r['peak_gib']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
