"""How fast a random-weight pythia-14m learns the toy tasks: masked SFT, plain SFT and prompt weights, fairly.

    python benchmarks/toy_learning.py --json data/toy_experiment.json   # notebook 07's experiment (EXPERIMENT_RUNS)
    python benchmarks/toy_learning.py --workers 1 --threads 2 --json data/toy_experiment.json   # 62 min, 2 idle cores
    python benchmarks/toy_learning.py --defaults     # each task with the command line's default steps, seed 0
    python benchmarks/toy_learning.py --budgets      # masked SFT's steps to 90% on every toy task, seeds 0 and 1
    python benchmarks/toy_learning.py --timing       # seconds per step only, masked vs plain (1 min)

The experiment (``sft_utils.train.toy_run.experiment_record``): each run trains ``TrainConfig.toy`` (batch 16,
lr 1e-3 constant after 20 warm-up steps, fp32, fused AdamW) with one loss, evaluates every 50 steps (``facts``:
25) on the task's held-out prompts, each once (64; ``facts`` 40), and stops at the first evaluation at or above
90% exact match, or at the cap (4x the steps masked SFT was first given: last_word 1800, facts 800), the same for
every loss. A loss is ``masked`` (the memo's), ``w=0.1`` (prompt tokens weighted 0.1) or ``plain`` (every
token); plain also runs at 0.3x and 3x the learning rate on one seed. At every evaluation it also records where
plain SFT's loss and gradient come from (``loss_split``: prompt vs reply tokens on a fixed training batch).
With ``--json`` an existing file's ``published`` records (the first, fixed-budget experiment) are kept.
Seconds depend on the machine and its load: compare seconds per step as ratios (plain / masked).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import statistics
import time
from pathlib import Path

import torch

import sft_utils
from sft_utils.train.toy_run import (
    BUDGET_CAP,
    EXPERIMENT_RUNS,
    EXPERIMENT_STEPS,
    REACH,
    experiment_record,
    experiment_table,
    first_step_reaching,
    toy_run,
)
from sft_utils.train.toy_run import EXPERIMENT_LOSSES as LOSSES


def write(path: Path, records: list[dict]) -> None:
    """The records in plan order, beside the published ones already in ``path``."""
    published = json.loads(path.read_text()).get("published") if path.exists() else None
    records = sorted(records, key=lambda r: r["run"])
    path.write_text(json.dumps({"records": records} | ({"published": published} if published else {}), indent=1) + "\n")


def one_run(index: int, threads: int | None) -> dict:
    """Run ``EXPERIMENT_RUNS[index]`` (in a worker process)."""
    if threads:
        torch.set_num_threads(threads)
    task, loss, seed, lr_scale = EXPERIMENT_RUNS[index]
    start = time.perf_counter()
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    record = {"run": index} | experiment_record(task, loss, seed, tokenizer, lr_scale=lr_scale)
    record["wall_seconds"] = time.perf_counter() - start
    return record


def experiment(workers: int, threads: int | None, path: Path | None) -> list[dict]:
    """Every run of ``EXPERIMENT_RUNS``, ``workers`` at a time, handed out in the plan's order; the records are
    written to ``path`` as each run ends, so that a stopped experiment keeps the runs it finished."""
    records = []
    with multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
        for r in pool.imap_unordered(functools.partial(one_run, threads=threads), range(len(EXPERIMENT_RUNS))):
            records.append(r)
            print(
                f"run {r['run']}: {r['task']} {r['loss']} lr {r['lr']:g} seed {r['seed']}: to 90% at step "
                f"{r['to_90']} (cap {r['cap']}), exact match {r['exact_match'][-1]:.0%}, {r['wall_seconds']:.0f} s",
                flush=True,
            )
            if path:
                write(path, records)
    return records


def defaults(tasks) -> None:
    """Each toy task as ``python -m sft_utils.train --data toy:TASK`` runs it by default (seed 0)."""
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    print("| task | default steps | steps to 90% | final held-out exact match | held-out prompts |")
    print("|---|---|---|---|---|")
    for task in tasks:  # tasks with a measured default
        _, history = toy_run(task, tokenizer, steps=EXPERIMENT_STEPS[task], eval_every=50)
        prompts = sft_utils.data.toy.held_out_size(task)
        reach = first_step_reaching(history, REACH)
        print(
            f"| {task} | {EXPERIMENT_STEPS[task]} | {'–' if reach is None else reach} "
            f"| {history['exact_match'][-1]:.0%} | {prompts} |",
            flush=True,
        )


def budgets(tasks, seeds=(0, 1)) -> None:
    """Masked SFT's steps to 90% held-out exact match on each toy task and seed, stopping there (capped at
    ``BUDGET_CAP``), with the stop rate and held-out loss (assistant-only, nats per token) where it stopped: the
    measurement behind ``EXPERIMENT_STEPS``, the command line's defaults, and ``NOT_LEARNED``. The learning rate
    is constant after warm-up, so a run stopped at step N follows the same path as a run given N steps."""
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    print("| task | seed | steps to 90% | exact match there | stop rate | held-out loss | held-out prompts | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for task in tasks:
        for seed in seeds:
            start = time.perf_counter()
            _, history = toy_run(task, tokenizer, steps=BUDGET_CAP, seed=seed, stop_at=REACH, eval_every=50)
            reach = first_step_reaching(history, REACH)
            print(
                f"| {task} | {seed} | {f'not within {BUDGET_CAP}' if reach is None else reach} "
                f"| {history['exact_match'][-1]:.0%} | {history['stop_rate'][-1]:.0%} "
                f"| {history['valid_loss'][-1]:.2f} | {sft_utils.data.toy.held_out_size(task)} "
                f"| {time.perf_counter() - start:.0f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the records here (keeping its published ones)")
    parser.add_argument("--workers", type=int, default=1, help="runs at a time, each in its own process")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's)")
    parser.add_argument(
        "--defaults",
        nargs="*",
        choices=EXPERIMENT_STEPS,
        metavar="TASK",
        help="the command line's defaults (default: all)",
    )
    parser.add_argument(
        "--budgets",
        nargs="*",
        choices=sft_utils.data.toy.TASKS,
        metavar="TASK",
        help="masked SFT's steps to 90%% (default: all)",
    )
    parser.add_argument("--timing", action="store_true", help="only seconds per step, masked vs plain, 30 steps")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.defaults is not None:
        defaults(args.defaults or EXPERIMENT_STEPS)
    elif args.budgets is not None:
        budgets(args.budgets or sft_utils.data.toy.TASKS)
    elif args.timing:
        tokenizer = sft_utils.load_tokenizer(verbose=False)
        for task in ("last_word", "facts"):
            times = {}
            for loss in ("masked", "plain"):
                _, history = toy_run(task, tokenizer, steps=30, eval_every=1000, **LOSSES[loss])
                times[loss] = statistics.median(history["step_seconds"][5:])
            print(
                f"{task}: masked {times['masked']:.3f} s/step, plain {times['plain']:.3f} s/step, "
                f"ratio {times['masked'] / times['plain']:.2f}"
            )
    else:
        print(experiment_table(experiment(args.workers, args.threads, args.json)))


if __name__ == "__main__":
    main()
