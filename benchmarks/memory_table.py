"""Peak training memory of Pythia sizes, estimated: full fine-tuning vs LoRA, with and without gradient checkpointing.

    python benchmarks/memory_table.py                          # GB, bf16 on a GPU, 6 sizes x 3 lengths x 3 batches
    python benchmarks/memory_table.py --seq-lens 1024 2048 --batch-sizes 8 1   # the subset in docs/performance.md
    python benchmarks/memory_table.py --precision fp32          # float32 throughout, as on a CPU
    python benchmarks/memory_table.py --measure                 # CPU measurements vs the estimate (about a minute)
    python benchmarks/memory_table.py --measure --measure-precision bf16   # the same under CPU bf16 autocast

The estimate is :func:`sft_utils.scale.memory_estimate.estimate_training_memory` (AdamW, the chunked masked loss,
sdpa attention, LoRA r=8 on all four linear layers of each block). ``--measure`` runs real steps on the CPU:
pythia-14m and pythia-70m (random weights, from Pythia's configs) at 128 and 256 tokens, batch 1 and 4; full, and
LoRA through peft, each with and without transformers' ``gradient_checkpointing_enable()``. A step is what the
loop does per micro-batch, clipping aside: :func:`sft_utils.train.masked_loss_sum` (about a third of the targets
trained; in a batch of 4 the last three rows end with a quarter of padding), backward, a fused AdamW step. One step
runs first so that AdamW's state exists; the second is measured with :func:`sft_utils.scale.memory.peak_memory`
(the profiler's allocations), and measured = weights + optimizer state (their exact bytes) + that peak.
"""

from __future__ import annotations

import argparse
import time

import torch

from sft_utils.models.pythia import pythia_config
from sft_utils.scale.memory import peak_memory
from sft_utils.scale.memory_estimate import estimate_training_memory
from sft_utils.train import TrainConfig
from sft_utils.train.loop import apply_lora, set_gradient_checkpointing

SIZES = ("pythia-70m", "pythia-160m", "pythia-410m", "pythia-1b", "pythia-1.4b", "pythia-2.8b")
VARIANTS = (("full", False), ("lora", False), ("full", True), ("lora", True))  # (method, gradient checkpointing)
HEADERS = ("full", "LoRA", "full + ckpt", "LoRA + ckpt")
TRAINED_FRACTION = 1 / 3
MEASURE_HEADER = "| model | tokens | batch | variant | measured MB | estimated MB | ratio | step: measured MB | estimated MB | ratio |"


def estimate_table(sizes, seq_lens, batch_sizes, precision: str, lora_r: int) -> str:
    """Markdown: one row per size x length x batch, estimated peak GB (10^9 bytes) per variant."""
    lines = ["| model | tokens | batch | " + " | ".join(HEADERS) + " |", "|---|---:|---:|" + "---:|" * len(HEADERS)]
    for size in sizes:
        for seq_len in seq_lens:
            for batch_size in batch_sizes:
                cells = [
                    estimate_training_memory(
                        size, seq_len, batch_size, method=method, lora_r=lora_r, gradient_checkpointing=checkpointing,
                        precision=precision,
                    ).total / 1e9
                    for method, checkpointing in VARIANTS
                ]  # fmt: skip
                lines.append(f"| {size} | {seq_len} | {batch_size} | " + " | ".join(f"{g:.1f}" for g in cells) + " |")
    return "\n".join(lines)


def random_batch(seq_len: int, batch_size: int, seed: int = 0) -> dict:
    """A shifted batch of random ids: rows after the first end with a quarter of padding (as a collator pads to the
    longest); about a third of the real targets trained."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 50000, (batch_size, seq_len + 1), generator=generator)
    attention = torch.ones(batch_size, seq_len, dtype=torch.long)
    attention[1:, seq_len - seq_len // 4 :] = 0
    trained = (torch.rand(batch_size, seq_len, generator=generator) < TRAINED_FRACTION) & attention.bool()
    return {"input_ids": ids[:, :-1], "attention_mask": attention, "targets": ids[:, 1:], "label_masks": trained}


def build(size: str, method: str, checkpointing: bool, lora_r: int):
    """``GPTNeoXForCausalLM`` of ``size`` (random weights), wrapped by peft for LoRA, in train mode."""
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(pythia_config(size))
    if checkpointing:  # what train() does, in its order
        set_gradient_checkpointing(model, True)
    if method == "lora":
        model = apply_lora(model, TrainConfig(lora_r=lora_r))
    return model.train()


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def measure(size: str, seq_len: int, batch_size: int, method: str, checkpointing: bool, *, lora_r: int, precision: str):
    """(bytes of the weights and AdamW's state, the peak bytes a steady-state training step allocates above them on
    the CPU, the batch's trained share of its targets); the step as in the module's docstring."""
    from sft_utils.train import masked_loss_sum

    model = build(size, method, checkpointing, lora_r)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=True)
    batch = random_batch(seq_len, batch_size)

    def step():
        loss_sum, count = masked_loss_sum(model, batch, precision=precision)
        (loss_sum / count).backward()
        optimizer.step()

    step()
    optimizer.zero_grad(set_to_none=True)
    peak, _ = peak_memory(step)
    state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    share = float(batch["label_masks"].float().mean())
    return tensor_bytes(model.parameters()) + tensor_bytes(state), peak, share


def measure_row(size: str, seq_len: int, batch_size: int, variant: int, lora_r: int, precision: str) -> str:
    """One markdown row: measured and estimated peak, whole and the step's own, in MB (10^6 bytes), and ratios."""
    method, checkpointing = VARIANTS[variant]
    fixed, step, share = measure(size, seq_len, batch_size, method, checkpointing, lora_r=lora_r, precision=precision)
    estimate = estimate_training_memory(
        size, seq_len, batch_size, method=method, lora_r=lora_r, gradient_checkpointing=checkpointing,
        precision=precision, trained_fraction=share,
    )  # fmt: skip
    step_estimate = estimate.total - estimate.weights - estimate.optimizer
    cells = (fixed + step, estimate.total, (fixed + step) / estimate.total, step, step_estimate, step / step_estimate)
    shown = " | ".join(f"{c / 1e6:.1f}" if i % 3 != 2 else f"{c:.2f}" for i, c in enumerate(cells))
    return f"| {size} | {seq_len} | {batch_size} | {HEADERS[variant]} | {shown} |"


def measure_table(lora_r: int, precision: str) -> None:
    """Print measured vs estimated peaks of small configurations on the CPU, a row at a time: the whole peak, and the
    step's own allocations above the weights and optimizer state (where activations and gradients show)."""
    print(MEASURE_HEADER + "\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for size in ("pythia-14m", "pythia-70m"):
        for seq_len in (128, 256):
            for batch_size in (1, 4):
                for variant in range(len(VARIANTS)):
                    print(measure_row(size, seq_len, batch_size, variant, lora_r, precision), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[512, 1024, 2048])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--measure", action="store_true", help="measure small configurations on the CPU")
    parser.add_argument(
        "--measure-precision", default="fp32", choices=("fp32", "bf16"), help="--measure: float32, or CPU bf16 autocast"
    )
    args = parser.parse_args(argv)
    if args.measure:
        precision = args.measure_precision
        print(f"CPU, {precision}, {torch.get_num_threads()} threads; estimated with each batch's trained share, sdpa")
        start = time.perf_counter()
        measure_table(args.lora_r, precision)
        print(f"\n{time.perf_counter() - start:.0f} s")
        return 0
    where = "on a GPU (autocast, float32 weights)" if args.precision != "fp32" else "(float32 throughout)"
    print(f"Estimated peak training memory, GB (10^9 bytes); {args.precision} {where}; AdamW, LoRA r={args.lora_r}")
    print(estimate_table(args.sizes, args.seq_lens, args.batch_sizes, args.precision, args.lora_r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
