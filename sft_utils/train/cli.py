"""``python -m sft_utils.train``: fine-tune a Pythia model with the assistant-only loss from the command line.

Introduced in notebook 08_finetune_pythia (the notebook calls the same :func:`sft_utils.train.train`).
Runs unchanged under ``accelerate launch``: DDP on several GPUs, or FSDP with ``configs/fsdp.yaml``::

    python -m sft_utils.train --model EleutherAI/pythia-160m --steps 300 --batch-size 8 --grad-accum 4
    accelerate launch --multi_gpu --num_processes 2 -m sft_utils.train --steps 300
    accelerate launch --config_file configs/fsdp.yaml -m sft_utils.train --model EleutherAI/pythia-1.4b
    SFT_SMOKE=1 python -m sft_utils.train          # CPU smoke run: pythia-14m, 40 steps
    python -m sft_utils.train --data toy:last_word # a toy task, learned from random weights on a CPU

Two processes on a CPU (DDP over gloo, to rehearse a multi-GPU run): ``--multi_gpu`` picks accelerate's
torchrun launcher, and each process, finding no GPU, runs on the CPU. (``accelerate launch --cpu
--num_processes 2`` starts a single process: accelerate leaves several CPU processes to MPI.)::

    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no -m sft_utils.train --smoke

Data: oasst1 from the hub (one best-ranked thread per tree, ``--lang``), or ``--data file.jsonl``; offline,
the course's ``data/conversations.jsonl`` (and it says so). ``--data toy:TASK`` trains a random-weight model
on a task of the toy world (:mod:`sft_utils.data.toy`) with :meth:`TrainConfig.toy`'s defaults and the task's
own steps (``EXPERIMENT_STEPS``: measured to pass 90% held-out exact match; ``copy`` and ``reverse``, which
masked SFT did not learn within 3000 steps, need ``--steps``), and adds the held-out exact match and stop rate to every evaluation. Writes the checkpoint (``save_pretrained``),
``history.json`` and ``loss_curves.png`` into ``--output-dir``; ``--history-json`` elsewhere too.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from pathlib import Path

import torch

from ..chat_format import COURSE_FORMATS
from ..data.conversations import load_conversations
from ..data.oasst import load_oasst1_conversations, split_by_tree
from ..data.toy import TASKS, held_out_size, toy_conversations
from ..models.pythia import load_model
from ..steps.tokenize import load_tokenizer
from .checkpoint import transformers_bars_off
from .config import LR_SCHEDULES, REPORT_TO, TrainConfig
from .generate import reply_metrics
from .loop import train
from .precision import PRECISIONS
from .toy_run import EXPERIMENT_STEPS, NOT_LEARNED, NOT_LEARNED_WHY, TRAIN_CONVERSATIONS

FORMATS = {f.name: f for f in COURSE_FORMATS.values()}  # "open-assistant", "chatml", "llama-3"
NO_CLIPPING = "none"


def smoke_mode() -> bool:
    """True with ``SFT_SMOKE=1`` or without a GPU: tiny model, few steps, CPU."""
    return os.environ.get("SFT_SMOKE") == "1" or not torch.cuda.is_available()


def make_parser() -> argparse.ArgumentParser:
    """The command line's options: one ``--name-with-dashes`` per :class:`TrainConfig` field, plus the data's."""
    defaults = TrainConfig()
    summary = __doc__.splitlines()[0].replace("``", "")  # the docstring's reST quotes read as noise in --help
    parser = argparse.ArgumentParser(prog="python -m sft_utils.train", description=summary)
    parser.add_argument("--model", help=f"hub name or folder (default {defaults.model}; smoke: pythia-14m)")
    parser.add_argument("--steps", type=int, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, help="conversations per micro-batch and process")
    parser.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step (per process)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: 2e-5 pretrained, 1e-3 random)")
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up steps before the schedule")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="after warm-up (default cosine; toy: constant)")
    parser.add_argument(
        "--weight-decay", type=float, help="AdamW's decoupled weight decay on weight matrices (default 0)"
    )
    parser.add_argument(
        "--max-grad-norm",
        type=_max_grad_norm,
        metavar="NORM|none",
        help="clip gradients to this global norm (default 1.0; none: no clipping)",
    )
    parser.add_argument("--max-length", type=int, help="tokens per conversation (longer ones are cut)")
    parser.add_argument("--precision", choices=PRECISIONS, help="auto: bf16 / fp16 on a GPU, fp32 on a CPU")
    parser.add_argument("--seed", type=int, help="data order, and the weights when they are random (default 0)")
    parser.add_argument("--eval-every", type=int, help="optimizer steps between validations")
    parser.add_argument("--loss", choices=("masked", "plain"), help="assistant tokens only, or every token")
    parser.add_argument(
        "--prompt-loss-weight", type=float, help="masked: weight of the other tokens, 0 (default) to 1 (= plain)"
    )
    parser.add_argument("--output-dir", help="checkpoint folder ('' to save nothing)")
    parser.add_argument(
        "--save-every", type=int, help="write a checkpoint to resume from every N steps, and at the end"
    )
    parser.add_argument("--save-total-limit", type=int, help="checkpoints kept (default 2, the latest)")
    parser.add_argument(
        "--resume",
        metavar="PATH|latest",
        help="continue a run from a checkpoint folder, or the latest in --output-dir; every setting and the data "
        "must be the run's (evaluation, saving and logging may change)",
    )
    parser.add_argument("--lora-r", type=int, help="train rank-r LoRA adapters instead of every weight (e.g. 8)")
    parser.add_argument("--lora-alpha", type=float, help="LoRA scale numerator: updates are scaled by alpha/r (16)")
    parser.add_argument(
        "--lora-target-modules",
        type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
        help="comma-separated (default: query_key_value,dense,dense_h_to_4h,dense_4h_to_h)",
    )
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", default=None, help="recompute activations: less memory"
    )
    parser.add_argument(
        "--chat-format",
        choices=FORMATS,
        default="open-assistant",
        help="the conversations' format (default open-assistant)",
    )
    parser.add_argument("--report-to", choices=REPORT_TO, help="log every step for TensorBoard (output-dir/runs)")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (also with SFT_SMOKE=1 or no GPU)")
    parser.add_argument(
        "--data", type=Path, help=f"a JSONL of conversations instead of oasst1, or toy:TASK ({', '.join(TASKS)})"
    )
    parser.add_argument("--lang", help="oasst1 language (default en; '' for all)")
    parser.add_argument(
        "--validation-fraction", type=float, help="share of trees held out (default 0.05; offline fallback 0.25)"
    )
    parser.add_argument("--max-conversations", type=int, help="use at most this many training conversations")
    parser.add_argument("--history-json", type=Path, help="also write the loss history here")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """The options of ``argv`` (None: ``sys.argv``), with ``args.config`` the :class:`TrainConfig` they give;
    exits with status 2 and the option's name for a bad value."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.max_conversations is not None and args.max_conversations < 1:
        parser.error(f"--max-conversations must be >= 1, got {args.max_conversations}")
    if args.validation_fraction is not None and not 0 < args.validation_fraction < 1:
        parser.error(f"--validation-fraction must be between 0 and 1, got {args.validation_fraction}")
    task = toy_task_name(args.data)
    if task == "":
        parser.error(f"--data toy: names no task; give one of {', '.join(TASKS)} (--data toy:facts)")
    if task is not None and task not in TASKS:
        parser.error(f"--data toy:{task}: unknown toy task; tasks: {', '.join(TASKS)}")
    if task is not None and task not in EXPERIMENT_STEPS and args.steps is None:
        assert task in NOT_LEARNED, f"toy task {task!r} was never measured"  # a test keeps every task measured
        parser.error(
            f"--data toy:{task}: this task has no default steps ({NOT_LEARNED_WHY}; "
            f"{', '.join(EXPERIMENT_STEPS)} have them): give --steps N to try it"
        )
    if args.resume is not None and args.resume != "latest" and not Path(args.resume).is_dir():
        parser.error(f"--resume {args.resume}: no such folder (give a checkpoint-<step> folder, or latest)")
    for option, given, why in (
        ("--smoke", args.smoke, "the toy world has its own model and steps"),
        ("--lang", args.lang is not None, "the toy world has no languages; --lang picks oasst1's"),
    ):
        if task is not None and given:
            parser.error(f"{option} does not apply to --data toy:TASK ({why})")
    if args.data is not None and task is None and args.lang is not None:
        parser.error("--lang applies to oasst1; a --data file is used as it is")
    if task is not None and args.validation_fraction is not None:
        parser.error(
            "--validation-fraction does not apply to --data toy:TASK: its held-out prompts are separate by construction"
        )
    try:
        args.config = config_from_args(args)
    except (TypeError, ValueError) as error:  # TrainConfig.check: name the option as it is typed
        name = str(error).split(" ", 1)[0]
        parser.error(f"--{name.replace('_', '-')}{str(error)[len(name) :]}")
    return args


def _max_grad_norm(text: str) -> float | str:
    """``--max-grad-norm``: a number, or ``none`` (kept as the word: None means "not given" to the options)."""
    if text.strip().lower() == NO_CLIPPING:
        return NO_CLIPPING
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or 'none' (no clipping), got {text!r}") from None


def toy_task_name(data) -> str | None:
    """``"last_word"`` for ``--data toy:last_word``; None for a file or oasst1."""
    text = str(data) if data is not None else ""
    return text.removeprefix("toy:") if text.startswith("toy:") else None


def config_from_args(args) -> TrainConfig:
    """The options given, over the toy, smoke or full defaults."""
    task = toy_task_name(args.data)
    if task is not None:  # each task its own steps, measured to pass 90% held-out exact match
        defaults = functools.partial(TrainConfig.toy, steps=EXPERIMENT_STEPS.get(task))  # --steps still wins
    else:
        defaults = TrainConfig.smoke if (args.smoke or smoke_mode()) else TrainConfig
    given = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    if given.get("output_dir") == "":
        given["output_dir"] = None
    if given.get("max_grad_norm") == NO_CLIPPING:
        given["max_grad_norm"] = None
    return defaults(**given)


def load_data(args):
    """(train, validation, source) conversations from ``--data`` or oasst1 (hub, else offline fallback)."""
    fraction = args.validation_fraction
    task = toy_task_name(args.data)
    if task is not None:  # held-out prompts never occur in training: no fraction to choose
        train_set = toy_conversations(task, "train", args.max_conversations or TRAIN_CONVERSATIONS)
        valid_set = toy_conversations(task, "held-out", held_out_size(task))  # each held-out prompt once
        return train_set, valid_set, f"toy task {task}: {TASKS[task].description}"
    if args.data is None:
        # A fraction given on the command line holds for the offline fallback too (else it was silently ignored).
        given = {} if fraction is None else {"validation_fraction": fraction, "fallback_validation_fraction": fraction}
        lang = "en" if args.lang is None else args.lang or None
        return load_oasst1_conversations(lang=lang, max_conversations=args.max_conversations, **given)
    conversations = load_conversations(args.data)
    train_set, valid_set = split_by_tree(conversations, 0.05 if fraction is None else fraction)
    return train_set[: args.max_conversations], valid_set, f"{args.data.name}: {len(conversations)} conversations"


def main(argv=None) -> int:
    args = parse_args(argv)
    with transformers_bars_off() if args.no_progress else contextlib.nullcontext():  # the checkpoint's bar too
        return run(args)


def run(args) -> int:
    """Train as the parsed options ``args`` say (:func:`parse_args`); 0 on success, 2 on bad data or model."""
    from accelerate import PartialState

    config = args.config
    main_process = PartialState(cpu=not torch.cuda.is_available()).is_main_process
    say = print if main_process else (lambda *a, **k: None)
    try:  # a bad --data file, --model name or data without trained tokens: one line, no traceback
        train_set, valid_set, source = load_data(args)
        say(f"data: {source}\n{len(train_set)} training, {len(valid_set)} validation conversations")
        chat_format = FORMATS[args.chat_format]
        tokenizer = load_tokenizer(verbose=main_process, chat_format=chat_format)
        toy = toy_task_name(args.data) is not None
        model = load_model(config.model, seed=config.seed, verbose=main_process, random_weights=toy)
        metrics = (lambda m: reply_metrics(m, tokenizer, valid_set, chat_format=chat_format)) if toy else None
        model, history = train(
            config,
            model,
            tokenizer,
            train_set,
            valid_set,
            progress=not args.no_progress,
            eval_metrics=metrics,
            resume_from=args.resume,
            chat_format=chat_format,
        )
    except (ValueError, OSError, FloatingPointError) as error:  # ConversationError is a ValueError
        print(f"python -m sft_utils.train: error: {error}", file=sys.stderr)
        return 2
    resumed = f" (resumed after step {history['resumed_at']})" if history["resumed_at"] is not None else ""
    skipped = len(history["skipped_steps"])  # fp16: updates the gradient scaler skipped, then retried
    say(
        f"{config.steps} steps{resumed}, {history['processes']} process(es), {history['precision']}"
        + (f" ({skipped} overflowing updates skipped and retried)" if skipped else "")
        + f", {history['seconds']:.1f} s; padding {history['padding_share']:.1%}; "
        f"validation assistant-only loss {history['valid_loss'][0]:.3f} -> {history['valid_loss'][-1]:.3f} "
        f"(perplexity {history['valid_ppl'][-1]:.1f})"
        + (f"; held-out exact match {history['exact_match'][-1]:.0%}" if "exact_match" in history else "")
        + (f"; LoRA r={config.lora_r}: {history['trainable_parameters']:,} trained parameters" if config.lora_r else "")
    )
    if main_process:
        paths = [args.history_json] + ([Path(config.output_dir) / "history.json"] if config.output_dir else [])
        for path in filter(None, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(history, indent=1))
        if config.output_dir:
            from ..viz.curves import plot_loss_curves

            plot_loss_curves({config.loss: history}).savefig(Path(config.output_dir) / "loss_curves.png", dpi=100)
            say(f"checkpoint, history.json and loss_curves.png in {config.output_dir}")
    return 0
