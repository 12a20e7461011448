"""The GPU check: notebook 08 in GPU mode cell by cell against the memory estimate, then training throughput and MFU
of our loop's step beside TRL's SFTTrainer; one markdown report.

    python benchmarks/gpu_check.py --out gpu_check.md                  # on one GPU, sized for 8 minutes at most
    python benchmarks/gpu_check.py --cpu-rehearsal --out rehearsal.md   # the same code on a CPU, toy sizes

1. **Notebook 08, cell by cell.** The notebook runs top to bottom in a fresh kernel (GPU mode on a GPU: pythia-160m,
   batches of 8 × up to 1024 tokens; smoke mode on a CPU); before each cell the GPU's peak counter is reset, after it
   ``torch.cuda.max_memory_allocated`` is read and set beside :func:`sft_utils.course.finetune.notebook_memory`'s
   worst-case estimate of that cell. A CPU has no per-cell peak counter: the rehearsal reports the estimate only.
2. **Throughput.** For each model, length and precision: tokens/s and MFU (6 · parameters without the input
   embedding · tokens/s over the device's peak, :data:`sft_utils.train.estimate.PEAK_TFLOPS` or ``--peak-tflops``)
   of three routes on the same random token rows, a quarter of each row an untrained prompt:
   * ``ours``: ``benchmarks/train_throughput.py``'s step (the loop's per-micro-batch step: chunked masked loss,
     clipping, fused AdamW; fp16 with a gradient scaler), gradient checkpointing off;
   * ``TRL, same settings``: ``trl.SFTTrainer`` on the same rows (its ``assistant_masks`` column, what
     ``assistant_only_loss=True`` makes from a chat template), same batch, same precision, gradient checkpointing
     off;
   * ``TRL defaults``: the same trainer with ``SFTConfig``'s own defaults (TRL 1.16: gradient checkpointing on,
     bf16), the run a user gets without choosing.
   Peak memory beside :func:`sft_utils.scale.memory_estimate.estimate_training_memory` for our step.

No model hub is needed: every model has Pythia's architecture with **random weights**, and the report says so;
speed and memory do not depend on the weights' values. The rehearsal (``--cpu-rehearsal``) runs pythia-14m on short
rows for a few steps in fp32 and, where the loop supports it on a CPU, fp16 with torch's CPU gradient scaler (else
fp32 with the scaler, said so): it checks that the code runs, its numbers are not a CPU benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import run as our_run

from sft_utils.course.finetune import CELL_IDS, T4_BUDGET, notebook_config, notebook_memory
from sft_utils.course.notebooks import NOTEBOOK_DIR, notebook_client
from sft_utils.models.pythia import pythia_config
from sft_utils.scale.memory_estimate import estimate_training_memory
from sft_utils.train.estimate import PEAK_TFLOPS
from sft_utils.train.precision import resolve_precision

NOTEBOOK = NOTEBOOK_DIR / "08_finetune_pythia.ipynb"
PROMPT_SHARE = 0.25  # untrained share of each row's targets, on both routes
MARK = "GPU_CHECK_PEAK "
# The rehearsal's nominal CPU peak, as estimate_run_seconds assumes: 20 GFLOP/s per core.
CPU_PEAK_TFLOPS_PER_CORE = 0.02


# ---------------------------------------------------------------- notebook 08, cell by cell
def _probe(cell_id: str | None) -> str:
    """Code run after a cell (and once first): prints that cell's GPU peak, then resets the counter."""
    return (
        "import json as _j, torch as _t\n"
        "if _t.cuda.is_available():\n"
        "    _t.cuda.synchronize()\n"
        f"    print({MARK!r} + _j.dumps([{cell_id!r}, _t.cuda.max_memory_allocated()]))\n"
        "    _t.cuda.reset_peak_memory_stats()\n"
    )


def notebook_cells(timeout_s: int) -> tuple[list[dict], float, str | None]:
    """Run notebook 08 in a fresh kernel with a probe after each code cell: ([{cell, peak}], seconds, None or where
    and why it stopped). ``peak`` is None on a CPU, and for a cell that did not finish."""
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [nbformat.v4.new_code_cell(_probe(None))]
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(_probe(cell.get("id"))))
    nb.cells = cells
    start, failure = time.perf_counter(), None
    try:
        notebook_client(nb, NOTEBOOK.parent, timeout_s=timeout_s).execute()
    except CellExecutionError as error:  # the report says where it stopped, and the check goes on
        failure = f"{error.ename}: {error.evalue}"[:300]
    except CellTimeoutError:
        failure = f"a cell ran over {timeout_s} s"
    seconds = time.perf_counter() - start
    peaks = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(MARK):
                    cell_id, peak = json.loads(line.removeprefix(MARK))
                    if cell_id is not None:
                        peaks[cell_id] = peak
    ran = [c for c in cells if c.cell_type == "code" and c.get("execution_count") is not None]
    stopped = next((c.get("id") for c in reversed(ran) if c.get("id") not in peaks), None) if failure else None
    rows = [{"cell": c.get("id"), "peak": peaks.get(c.get("id"))} for c in cells if c.cell_type == "code"]
    return rows, seconds, (f"stopped at cell `{stopped}`: {failure}" if failure else None)


def notebook_section(device: torch.device, timeout_s: int) -> list[str]:
    smoke = device.type != "cuda"
    config = notebook_config(smoke, None)
    loop, step = resolve_precision(config.precision, device), resolve_precision(config.precision, device, scaler=False)
    estimates = {CELL_IDS[c.cell]: c for c in notebook_memory(config, loop_precision=loop, step_precision=step)}
    measured, seconds, failure = notebook_cells(timeout_s)
    mode = (
        "smoke mode (pythia-14m, CPU)"
        if smoke
        else f"GPU mode ({config.model}, {config.batch_size} × {config.max_length})"
    )
    lines = [
        "## Notebook 08, cell by cell",
        "",
        (
            f"{mode}; training in {loop}, the step in view in {step}; ran top to bottom in {seconds:.0f} s. Estimate: "
            f"the course's worst case (every conversation {config.max_length} tokens, every target trained); "
            "measured: `torch.cuda.max_memory_allocated` during the cell (the CUDA context not included in either). "
            "Without the hub the data are the course's short conversations, so measured peaks sit below the worst case."
        ),
        "",
        *([f"**The notebook failed**: {failure}.", ""] if failure else []),
        "| cell | estimated peak (GB) | measured peak (GB) | under the 12 GB budget |",
        "|---|---:|---:|---|",
    ]
    for row in measured:
        estimate = estimates.get(row["cell"])
        if estimate is None and row["peak"] is None:
            continue
        est = f"{estimate.total / 1e9:.2f}" if estimate else "—"
        got = f"{row['peak'] / 1e9:.2f}" if row["peak"] is not None else "— (CPU: no per-cell counter)"
        worst = max(estimate.total if estimate else 0, row["peak"] or 0)
        name = f"`{row['cell']}`" + (f" ({estimate.cell})" if estimate else "")
        lines.append(f"| {name} | {est} | {got} | {'yes' if worst <= T4_BUDGET else 'NO'} |")
    return lines


# ---------------------------------------------------------------- throughput: ours and TRL's
def trl_run(name, seq_len, batch_size, steps, warmup, device, precision, *, defaults: bool) -> dict:
    """Tokens/s and peak memory of ``trl.SFTTrainer`` over ``steps`` timed steps after ``warmup`` ones."""
    import datasets
    from transformers import GPTNeoXForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from sft_utils import load_tokenizer

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(pythia_config(name))
    params = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    prompt = int(PROMPT_SHARE * seq_len) + 1  # TRL's labels are shifted inside the model: one more untrained
    rows = [
        {
            "input_ids": torch.randint(0, 50000, (seq_len,)).tolist(),
            "assistant_masks": [0] * prompt + [1] * (seq_len - prompt),
        }
        for _ in range(batch_size * (steps + warmup))
    ]
    times = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter())

    settings = {"max_length": seq_len, "per_device_train_batch_size": batch_size, "max_steps": steps + warmup}
    settings |= {"report_to": "none", "save_strategy": "no", "logging_steps": 10**6, "learning_rate": 1e-5}
    settings |= {"use_cpu": device.type == "cpu", "dataloader_num_workers": 0, "seed": 0}
    if not defaults:
        settings |= {"gradient_checkpointing": False, "bf16": precision == "bf16", "fp16": precision == "fp16"}
    elif device.type == "cpu":
        settings |= {"bf16": False}  # TRL's default bf16 needs a GPU
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="gpu-check-trl-") as output_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' renamings, seen through TRL's config
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(output_dir=output_dir, disable_tqdm=True, log_level="error", **settings),
            train_dataset=datasets.Dataset.from_list(rows),
            processing_class=load_tokenizer(),
            callbacks=[Clock()],
        )
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        trainer.train()
        used = "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32"
        checkpointing = trainer.args.gradient_checkpointing
    seconds = times[-1] - times[warmup - 1] if warmup else times[-1] - times[0]
    timed = steps if warmup else steps - 1
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del trainer, model
    return {
        "params": params,
        "tokens_per_s": batch_size * seq_len * timed / seconds,
        "peak_gib": peak,
        "precision": used,
        "checkpointing": checkpointing,
    }


def _free(device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def throughput_section(device, models, seq_lens, precisions, batch_size, steps, warmup, peak_tflops) -> list[str]:
    lines = [
        "## Training throughput: our step beside TRL's SFTTrainer",
        "",
        (
            f"Batch {batch_size}, random token rows of the full length, {PROMPT_SHARE:.0%} of each an untrained "
            f"prompt; {steps} timed steps after {warmup}; MFU at a peak of {peak_tflops:g} TFLOP/s. Gradient "
            "checkpointing off except in TRL's defaults. Estimated peak: `estimate_training_memory` for our step."
        ),
        "",
        "| model | tokens | precision | route | tokens/s | MFU | peak memory (GiB) | estimated (GiB) |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    shape = {"batch_size": batch_size, "steps": steps, "warmup": warmup, "device": device}
    for name in models:
        for seq_len in seq_lens:
            for precision in precisions:
                compute, scaler = precision, precision == "fp16"
                label = "fp16 + scaler" if scaler else precision
                if device.type == "cpu" and precision == "fp16":
                    try:
                        resolve_precision("fp16", device)
                    except ValueError:  # the loop runs fp16 on a GPU only: the CPU scaler path in fp32
                        compute, label = "fp32", "fp32 + CPU scaler (no fp16 on a CPU)"
                run = {"name": name, "seq_len": seq_len, "precision": compute, **shape}
                estimate = estimate_training_memory(
                    name, seq_len, batch_size, precision=compute, padding_mask=False, trained_fraction=1 - PROMPT_SHARE
                ).total
                ours = {**run, "prompt_share": PROMPT_SHARE, "scaler": scaler}
                lines.append(_row(label, "ours", our_run, ours, peak_tflops, estimate / 2**30))
                if compute == precision:  # (TRL has no CPU scaler path to set beside ours)
                    lines.append(_row(label, "TRL, same settings", trl_run, {**run, "defaults": False}, peak_tflops))
        for seq_len in seq_lens:  # TRL as a user gets it: its own defaults
            run = {"name": name, "seq_len": seq_len, "precision": "fp32", "defaults": True, **shape}
            lines.append(_row("TRL's default", "TRL defaults", trl_run, run, peak_tflops))
    return lines


DEADLINE = [float("inf")]  # perf_counter time after which no further run starts (set by main)


def _row(label, route, fn, run, peak_tflops, estimate=None) -> str:
    """One table row: ``fn(**run)``'s tokens/s, MFU and peak memory; a route that cannot run here says why."""
    start = f"| {run['name']} | {run['seq_len']} | {label} | {route} |"
    if time.perf_counter() > DEADLINE[0]:
        return f"{start} not run: the check's time limit was reached | | | |"
    try:
        r = fn(**run)
    except torch.cuda.OutOfMemoryError:
        return f"{start} out of memory | | | |"
    except (RuntimeError, ValueError, TypeError, ImportError) as error:
        return f"{start} not run: {type(error).__name__}: {str(error).splitlines()[0][:80]} | | | |"
    finally:
        _free(run["device"])
    if route == "TRL defaults":
        start = start.replace(label, r["precision"] + (", checkpointing" if r["checkpointing"] else ""))
    mfu = 6 * r["params"] * r["tokens_per_s"] / (peak_tflops * 1e12)
    peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None and run["device"].type == "cuda" else "—"
    est = f"{estimate:.2f}" if estimate is not None else ""
    return f"{start} {r['tokens_per_s']:,.0f} | {mfu:.1%} | {peak} | {est} |"


# ---------------------------------------------------------------- the report
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.md"), help="the markdown report")
    parser.add_argument("--cpu-rehearsal", action="store_true", help="the same code on a CPU at toy sizes")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense 16-bit peak; default: from its name")
    parser.add_argument("--skip-notebook", action="store_true", help="throughput only")
    parser.add_argument("--notebook-timeout", type=int, default=600, help="seconds per notebook cell at most")
    parser.add_argument(
        "--time-limit", type=float, help="seconds after which no new run starts (default: 450 on a GPU, none on a CPU)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    DEADLINE[0] = start + (args.time_limit or (float("inf") if args.cpu_rehearsal else 450))
    if args.cpu_rehearsal:
        device, models, seq_lens, precisions = torch.device("cpu"), ["pythia-14m"], [32, 64], ["fp32", "fp16"]
        batch_size, steps, warmup = 2, 2, 1
        peak = args.peak_tflops or CPU_PEAK_TFLOPS_PER_CORE * torch.get_num_threads()
        card = f"CPU ({torch.get_num_threads()} threads; nominal peak {peak * 1e3:.0f} GFLOP/s)"
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA GPU here: run with --cpu-rehearsal")
        device, models, seq_lens, precisions = (
            torch.device("cuda"),
            ["pythia-160m", "pythia-410m"],
            [1024, 2048],
            ["bf16", "fp16"],
        )
        batch_size, steps, warmup = 8, 8, 3
        card = torch.cuda.get_device_name(device)
        peak = args.peak_tflops or next((t for k, t in PEAK_TFLOPS.items() if k in card), None)
        if peak is None:
            parser.error(f"unknown GPU {card!r}: give --peak-tflops")
        card += f" ({torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB; peak {peak:g} TFLOP/s)"
    import transformers
    import trl

    lines = [
        "# GPU check" + (" (CPU rehearsal: toy sizes, not a benchmark)" if args.cpu_rehearsal else ""),
        "",
        (
            f"Device: {card}. torch {torch.__version__}, transformers {transformers.__version__}, "
            f"trl {trl.__version__}, Python {platform.python_version()}. **Random weights**: no model hub is reachable "
            "here, every model has Pythia's architecture with random weights (speed and memory do not depend on "
            "them; the notebook's losses and replies mean nothing)."
        ),
        "",
    ]
    if not args.skip_notebook:
        lines += notebook_section(device, args.notebook_timeout) + [""]
    lines += throughput_section(device, models, seq_lens, precisions, batch_size, steps, warmup, peak)
    lines += ["", f"Whole check: {time.perf_counter() - start:.0f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
