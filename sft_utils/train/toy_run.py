"""One toy-world run: a random-weight model trained on a toy task, scored on its held-out prompts.

Introduced in notebook 07_train_it_yourself, whose masked-versus-plain experiment is a grid of these runs
(also ``benchmarks/toy_learning.py`` and ``python -m sft_utils.train --data toy:TASK``); notebook
06b_chat_templates reads a second grid, which tokens of a reply to train (``benchmarks/which_tokens.py``).
"""

from __future__ import annotations

import dataclasses
import statistics
from types import MappingProxyType

import torch

from ..chat_format import CHATML, OPEN_ASSISTANT, ChatFormat
from ..data.toy import held_out_size, toy_conversations
from ..models.pythia import load_model
from .config import TrainConfig
from .generate import reply_metrics
from .loop import make_collator, train
from .step import SHIFTED_KEYS, masked_loss_sum

TRAIN_CONVERSATIONS = 4000

# Steps with which masked SFT passes 90% held-out exact match, measured with seeds 0 and 1 (last_word first at
# step 450 and 400, facts at 150 and 150, remember at 300 and 300), with one evaluation (50 steps) to spare: the
# default of `python -m sft_utils.train --data toy:TASK` and notebook 07's run (docs/performance.md, "Learning
# the toy tasks"; `benchmarks/toy_learning.py --budgets`).
EXPERIMENT_STEPS = {"last_word": 500, "facts": 200, "remember": 350}
# The toy tasks masked SFT did not learn: 0% held-out exact match after BUDGET_CAP steps with seeds 0 and 1.
# They have no default; the command line asks for --steps there and says why.
BUDGET_CAP = 3000
NOT_LEARNED = ("copy", "reverse")
NOT_LEARNED_WHY = f"masked SFT did not learn it: 0% held-out exact match after {BUDGET_CAP} steps, seeds 0 and 1"

# The masked-versus-plain experiment of notebook 07. Every run stops at its first evaluation at or above
# REACH held-out exact match, or at its task's cap: four times the steps masked SFT was given when this
# experiment was first published (last_word 450, facts 200), the same cap for every loss and learning rate.
EXPERIMENT_LOSSES = {
    "masked": {"loss": "masked"},
    "w=0.1": {"prompt_loss_weight": 0.1},
    "w=0.5": {"prompt_loss_weight": 0.5},
    "plain": {"loss": "plain"},
}
REACH = 0.9
EXPERIMENT_CAPS = {"last_word": 1800, "facts": 800}
EXPERIMENT_EVAL_EVERY = {"last_word": 50, "facts": 25}
PROBE_CONVERSATIONS, PROBE_SEED = 16, 1000  # one fixed batch of training conversations for loss_split
# The runs, most telling first, as (task, loss, seed, learning-rate scale): each loss at the default rate, then
# plain SFT at 0.3x and 3x on one seed (the learning-rate check).
EXPERIMENT_RUNS = (
    ("last_word", "masked", 0, 1.0),
    ("last_word", "plain", 0, 1.0),
    ("last_word", "plain", 0, 3.0),
    ("facts", "masked", 0, 1.0),
    ("facts", "plain", 0, 1.0),
    ("facts", "w=0.1", 0, 1.0),
    ("facts", "plain", 0, 3.0),
    ("facts", "plain", 0, 0.3),
    ("last_word", "w=0.1", 0, 1.0),
    ("last_word", "plain", 0, 0.3),
    ("facts", "masked", 1, 1.0),
    ("facts", "plain", 1, 1.0),
    ("facts", "w=0.1", 1, 1.0),
    ("last_word", "masked", 1, 1.0),
    ("last_word", "plain", 1, 1.0),
)

# Notebook 06b's question, which tokens of a reply to train, measured on ``facts`` (benchmarks/which_tokens.py):
# each choice is a chat format whose label mask trains those tokens (the reply's text always).
TOKEN_CHOICES = MappingProxyType(
    {
        "marker + text + end": OPEN_ASSISTANT,
        "text + end": dataclasses.replace(OPEN_ASSISTANT, name="open-assistant, marker untrained", train_marker=False),
        "marker + text": dataclasses.replace(OPEN_ASSISTANT, name="open-assistant, end untrained", train_end=False),
        "ChatML: text + end": CHATML,
    }
)


def loss_split(model, batch: dict) -> dict:
    """Where plain SFT's loss and gradient come from, at ``model``'s current weights (notebook 07).

    ``batch``: a prompt-weighted batch of :func:`sft_utils.train.loop.make_collator` (``label_masks`` bool
    ``[B, T]`` the reply's targets, ``prompt_masks`` every other real target). Plain SFT's loss on it is the sum
    of both parts' cross-entropy over the count of both; each part's gradient is taken alone (same
    denominator, so the two add up to plain SFT's gradient). Returns floats: ``prompt_loss_share`` (the prompt
    targets' share of that loss, 0 to 1), ``prompt_grad_norm`` and ``reply_grad_norm`` (global L2 norms of the
    two parts' gradients over every trainable weight) and ``grad_cosine`` (the cosine between them). The
    model's weights and ``.grad`` are left untouched (``torch.autograd.grad``).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    base = {k: batch[k] for k in SHIFTED_KEYS}
    count = int(batch["label_masks"].sum()) + int(batch["prompt_masks"].sum())
    sums, grads = {}, {}
    with torch.enable_grad():
        for part, mask in (("reply", batch["label_masks"]), ("prompt", batch["prompt_masks"])):
            total, _ = masked_loss_sum(model, base | {"label_masks": mask})
            part_grads = torch.autograd.grad(total / count, params, allow_unused=True)
            sums[part] = total.item()
            grads[part] = torch.cat(
                [(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, part_grads, strict=True)]
            )
    prompt, reply = grads["prompt"], grads["reply"]
    return {
        "prompt_loss_share": sums["prompt"] / (sums["prompt"] + sums["reply"]),
        "prompt_grad_norm": prompt.norm().item(),
        "reply_grad_norm": reply.norm().item(),
        "grad_cosine": torch.nn.functional.cosine_similarity(prompt, reply, dim=0).item(),
    }


def probe_batch(task: str, tokenizer, chat_format: ChatFormat = OPEN_ASSISTANT) -> dict:
    """The fixed batch :func:`loss_split` measures on: ``PROBE_CONVERSATIONS`` training conversations of ``task``
    (seed ``PROBE_SEED``, the same in every run), collated with their reply and prompt masks."""
    from ..scale.truncation import tokenize_conversations

    conversations = toy_conversations(task, "train", PROBE_CONVERSATIONS, seed=PROBE_SEED)
    examples, _ = tokenize_conversations(conversations, tokenizer, max_length=256, chat_format=chat_format)
    return make_collator("masked", tokenizer, prompt_loss_weight=1.0)(examples)


def toy_run(
    task: str,
    tokenizer,
    *,
    progress: bool = False,
    chat_format: ChatFormat = OPEN_ASSISTANT,
    stop_at: float | None = None,
    probe: bool = False,
    **settings,
) -> tuple:
    """Train a random-weight model on toy task ``task`` with :meth:`TrainConfig.toy` and ``settings`` (any
    :class:`TrainConfig` field: ``steps``, ``loss``, ``prompt_loss_weight``, ``seed``, ``lr`` …); the seed picks
    both the initial weights and the data order. ``chat_format`` decides which tokens of a reply are trained
    (``dataclasses.replace(OPEN_ASSISTANT, train_end=False)`` leaves ``<|endoftext|>`` untrained: notebook 04).
    ``stop_at``: end the run at the first evaluation whose held-out exact match is at least this (0 to 1);
    None runs every step. ``probe``: also record :func:`loss_split` on :func:`probe_batch` at every evaluation.

    Returns ``(model, history)``: the history of :func:`sft_utils.train.train`, whose every evaluation
    also holds the held-out ``exact_match`` and ``stop_rate`` (:func:`reply_metrics` on the task's
    :func:`sft_utils.data.toy.held_out_size` held-out prompts, each once: 64, ``facts`` 40), and with
    ``probe`` the four numbers of :func:`loss_split`.
    """
    config = TrainConfig.toy(**settings)
    train_set = toy_conversations(task, "train", TRAIN_CONVERSATIONS)
    held_out = toy_conversations(task, "held-out", held_out_size(task))
    model = load_model(config.model, seed=config.seed, verbose=False, random_weights=True)
    split = probe_batch(task, tokenizer, chat_format) if probe else None

    def metrics(m):
        return reply_metrics(m, tokenizer, held_out, chat_format=chat_format) | (loss_split(m, split) if probe else {})

    return train(
        config,
        model,
        tokenizer,
        train_set,
        held_out,
        progress=progress,
        chat_format=chat_format,
        eval_metrics=metrics,
        stop_when=None if stop_at is None else (lambda history: history["exact_match"][-1] >= stop_at),
    )


def first_step_reaching(history: dict, level: float, key: str = "exact_match") -> int | None:
    """The first evaluation step whose ``key`` is at least ``level``; None if no evaluation reached it."""
    return next((s for s, v in zip(history["eval_step"], history[key], strict=True) if v >= level), None)


PROBED = ("prompt_loss_share", "prompt_grad_norm", "reply_grad_norm", "grad_cosine")


def toy_record(
    task: str,
    loss: str,
    seed: int,
    tokenizer,
    steps: int | None = None,
    *,
    chat_format: ChatFormat = OPEN_ASSISTANT,
    stop_at: float | None = None,
    lr_scale: float = 1.0,
    eval_every: int | None = None,
    probe: bool = False,
) -> dict:
    """One cell of an experiment: :func:`toy_run` with the loss named ``loss`` (a key of
    ``EXPERIMENT_LOSSES``) in ``chat_format`` (``tokenizer`` must hold its tokens) for at most ``steps``
    (None: ``EXPERIMENT_STEPS[task]``), stopping early at ``stop_at`` held-out exact match when given, at
    ``lr_scale`` times :meth:`TrainConfig.toy`'s learning rate, as a JSON-ready record: ``chat_format`` (its
    name), ``cap`` (the steps allowed), ``steps`` (the steps run), ``lr``, ``eval_every``, the evaluations
    (``eval_step``, ``exact_match``, ``stop_rate``, ``valid_loss``, and with ``probe`` those of
    :func:`loss_split`), ``train_loss``, ``seconds`` (evaluations included), ``seconds_per_step`` (median, the
    step alone) and ``to_50`` / ``to_90`` (first evaluation step at that exact match, or None)."""
    if steps is None and task not in EXPERIMENT_STEPS:
        raise ValueError(f"toy task {task!r} has no measured steps (EXPERIMENT_STEPS): give steps")
    cap = steps or EXPERIMENT_STEPS[task]
    config = TrainConfig.toy(steps=cap, **({"eval_every": eval_every} if eval_every else {}))
    lr = config.lr * lr_scale
    _, history = toy_run(
        task,
        tokenizer,
        steps=cap,
        seed=seed,
        lr=lr,
        eval_every=config.eval_every,
        chat_format=chat_format,
        stop_at=stop_at,
        probe=probe,
        **EXPERIMENT_LOSSES[loss],
    )
    keys = ("eval_step", "exact_match", "stop_rate", "valid_loss", *(PROBED if probe else ()), "train_loss", "seconds")
    return {
        "task": task,
        "loss": loss,
        "chat_format": chat_format.name,
        "seed": seed,
        "cap": cap,
        "steps": history["step"][-1],
        "lr": lr,
        "eval_every": config.eval_every,
        **{k: history[k] for k in keys},
        "seconds_per_step": statistics.median(history["step_seconds"]),
        "to_50": first_step_reaching(history, 0.5),
        "to_90": first_step_reaching(history, 0.9),
    }


def experiment_record(task: str, loss: str, seed: int, tokenizer, *, lr_scale: float = 1.0) -> dict:
    """One run of notebook 07's masked-versus-plain experiment: :func:`toy_record` capped at
    ``EXPERIMENT_CAPS[task]``, stopped at ``REACH`` held-out exact match, evaluated every
    ``EXPERIMENT_EVAL_EVERY[task]`` steps, with :func:`loss_split` recorded at every evaluation."""
    return toy_record(
        task,
        loss,
        seed,
        tokenizer,
        EXPERIMENT_CAPS[task],
        stop_at=REACH,
        lr_scale=lr_scale,
        eval_every=EXPERIMENT_EVAL_EVERY[task],
        probe=True,
    )


def _seeds(values) -> str:
    return " / ".join(values)


def _row_order(group) -> tuple:
    (task, loss, lr), _ = group
    return task != "last_word", task, list(EXPERIMENT_LOSSES).index(loss), lr


def experiment_table(records: list[dict]) -> str:
    """Notebook 07's experiment as a Markdown table, one row per task, loss and learning rate (seeds in order):
    the cap, the steps to 90% held-out exact match of each seed (``–``: not within the cap), each seed's final
    exact match, and the median seconds per step over the masked run's of the same task (a ratio, which holds
    on a loaded machine better than the seconds themselves). docs/performance.md shows the committed one."""
    groups = {}
    for r in records:
        groups.setdefault((r["task"], r["loss"], r["lr"]), []).append(r)
    masked = {
        task: statistics.median(r["seconds_per_step"] for r in rs)
        for (task, loss, _), rs in groups.items()
        if loss == "masked"
    }
    lines = [
        "| task | loss | lr | seeds | cap | steps to 90% | final exact match | s/step ÷ masked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, loss, lr), rs in sorted(groups.items(), key=_row_order):
        rs = sorted(rs, key=lambda r: r["seed"])
        to_90 = _seeds("–" if r["to_90"] is None else str(r["to_90"]) for r in rs)
        final = _seeds(f"{r['exact_match'][-1]:.0%}" for r in rs)
        ratio = statistics.median(r["seconds_per_step"] for r in rs) / masked[task] if task in masked else None
        lines.append(
            f"| {task} | {loss} | {lr:g} | {_seeds(str(r['seed']) for r in rs)} | {rs[0]['cap']} | {to_90} | {final} "
            f"| {'' if ratio is None else f'{ratio:.2f}'} |"
        )
    return "\n".join(lines)
