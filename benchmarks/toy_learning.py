"""How fast a random-weight pythia-14m learns the toy tasks, with the masked loss, plain SFT and prompt weights.

    python benchmarks/toy_learning.py                    # the grid of notebook 07: masked, w=0.1, plain (~15 min)
    python benchmarks/toy_learning.py --json data/toy_experiment.json   # also save it for notebook 07
    python benchmarks/toy_learning.py --tasks facts --losses masked --seeds 0   # one run
    python benchmarks/toy_learning.py --timing           # seconds per step only, masked vs plain (1 min)

Each run: ``sft_utils.train.toy_run`` (``TrainConfig.toy``: batch 16, lr 1e-3 constant after 20 warm-up
steps, fp32, fused AdamW), evaluated every 50 steps on 64 held-out prompts (greedy replies, exact match).
A loss is ``masked`` (prompt weight 0, the memo's), ``w=0.1`` or ``w=0.5`` (the prompt's tokens weighted by
w) or ``plain`` (every token, labels = inputs). The seed picks the initial weights and the data order.
Seconds include the evaluations; seconds per step do not. Exact match is measured only every 50 steps, so
"steps to 90%" is the first evaluation at or above it. Run on idle cores: other jobs slow every step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import sft_utils
from sft_utils.train.toy_run import EXPERIMENT_LOSSES as LOSSES
from sft_utils.train.toy_run import toy_record, toy_run


def seconds_at(record: dict, step: int | None) -> float | None:
    """Training seconds up to ``step`` (median step time x steps; evaluations left out)."""
    return None if step is None else step * record["seconds_per_step"]


def table(records: list[dict]) -> str:
    head = "| task | loss | seeds | steps to 50% / 90% | s to 90% | final exact match | held-out loss | s/step |"
    lines = [head, "|" + "---|" * 8]
    groups = {}
    for r in records:
        groups.setdefault((r["task"], r["loss"]), []).append(r)
    for (task, loss), runs in groups.items():
        fmt = lambda xs: "/".join("–" if x is None else f"{x:.0f}" for x in xs)
        em = [r["exact_match"][-1] for r in runs]
        lines.append(
            f"| {task} | {loss} | {len(runs)} | {fmt([r['to_50'] for r in runs])} ; {fmt([r['to_90'] for r in runs])} "
            f"| {fmt([seconds_at(r, r['to_90']) for r in runs])} | "
            f"{statistics.mean(em):.0%} (min {min(em):.0%}) | "
            f"{statistics.mean(r['valid_loss'][-1] for r in runs):.3f} | "
            f"{statistics.median(r['seconds_per_step'] for r in runs):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["last_word", "facts"])
    parser.add_argument("--losses", nargs="+", default=["masked", "w=0.1", "plain"], choices=list(LOSSES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="override the steps of every task")
    parser.add_argument("--json", type=Path, help="write the records here")
    parser.add_argument("--timing", action="store_true", help="only seconds per step, masked vs plain, 30 steps")
    args = parser.parse_args()
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    if args.timing:
        for task in args.tasks:
            times = {}
            for loss in ("masked", "plain"):
                _, history = toy_run(task, tokenizer, steps=30, eval_every=1000, **LOSSES[loss])
                times[loss] = statistics.median(history["step_seconds"][5:])
            print(
                f"{task}: masked {times['masked']:.3f} s/step, plain {times['plain']:.3f} s/step, "
                f"ratio {times['masked'] / times['plain']:.2f}"
            )
        return
    records = []
    for task in args.tasks:
        for loss in args.losses:
            for seed in args.seeds:
                start = time.perf_counter()
                records.append(toy_record(task, loss, seed, tokenizer, args.steps))
                r = records[-1]
                print(
                    f"{task} {loss} seed {seed}: exact match {r['exact_match'][-1]:.0%}, to 90% at step "
                    f"{r['to_90']}, {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
                if args.json:
                    args.json.write_text(json.dumps({"records": records}, indent=1) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
