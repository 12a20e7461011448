"""One toy-world run: a random-weight model trained on a toy task, scored on its held-out prompts.

Introduced in notebook 07_train_it_yourself, whose masked-versus-plain experiment is a grid of these runs
(also ``benchmarks/toy_learning.py`` and ``python -m sft_utils.train --data toy:TASK``); notebook
06b_chat_templates reads a second grid, which tokens of a reply to train (``benchmarks/which_tokens.py``).
"""

from __future__ import annotations

import dataclasses
import statistics
from types import MappingProxyType

from ..chat_format import CHATML, OPEN_ASSISTANT, ChatFormat
from ..data.toy import toy_conversations
from ..models.pythia import load_model
from .config import TrainConfig
from .generate import reply_metrics
from .loop import train

TRAIN_CONVERSATIONS, HELD_OUT_CONVERSATIONS = 4000, 64

# The masked-versus-plain experiment of notebook 07: the losses compared, and the steps given to each task
# (enough for masked SFT to pass 90% held-out exact match with every seed tried).
EXPERIMENT_LOSSES = {
    "masked": {"loss": "masked"},
    "w=0.1": {"prompt_loss_weight": 0.1},
    "w=0.5": {"prompt_loss_weight": 0.5},
    "plain": {"loss": "plain"},
}
EXPERIMENT_STEPS = {"last_word": 450, "facts": 200, "copy": 600, "reverse": 600, "remember": 600}

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


def toy_run(
    task: str, tokenizer, *, progress: bool = False, chat_format: ChatFormat = OPEN_ASSISTANT, **settings
) -> tuple:
    """Train a random-weight model on toy task ``task`` with :meth:`TrainConfig.toy` and ``settings`` (any
    :class:`TrainConfig` field: ``steps``, ``loss``, ``prompt_loss_weight``, ``seed`` …); the seed picks
    both the initial weights and the data order. ``chat_format`` decides which tokens of a reply are trained
    (``dataclasses.replace(OPEN_ASSISTANT, train_end=False)`` leaves ``<|endoftext|>`` untrained: notebook 04).

    Returns ``(model, history)``: the history of :func:`sft_utils.train.train`, whose every evaluation
    also holds the held-out ``exact_match`` and ``stop_rate`` (:func:`reply_metrics` on
    ``HELD_OUT_CONVERSATIONS`` held-out prompts).
    """
    config = TrainConfig.toy(**settings)
    train_set = toy_conversations(task, "train", TRAIN_CONVERSATIONS)
    held_out = toy_conversations(task, "held-out", HELD_OUT_CONVERSATIONS)
    model = load_model(config.model, seed=config.seed, verbose=False, random_weights=True)
    return train(
        config,
        model,
        tokenizer,
        train_set,
        held_out,
        progress=progress,
        chat_format=chat_format,
        eval_metrics=lambda m: reply_metrics(m, tokenizer, held_out, chat_format=chat_format),
    )


def first_step_reaching(history: dict, level: float, key: str = "exact_match") -> int | None:
    """The first evaluation step whose ``key`` is at least ``level``; None if no evaluation reached it."""
    return next((s for s, v in zip(history["eval_step"], history[key], strict=True) if v >= level), None)


def toy_record(
    task: str,
    loss: str,
    seed: int,
    tokenizer,
    steps: int | None = None,
    *,
    chat_format: ChatFormat = OPEN_ASSISTANT,
) -> dict:
    """One cell of the experiment: :func:`toy_run` with the loss named ``loss`` (a key of
    ``EXPERIMENT_LOSSES``) in ``chat_format`` (``tokenizer`` must hold its tokens), as a JSON-ready record:
    ``chat_format`` (its name), the evaluations (``eval_step``, ``exact_match``, ``stop_rate``,
    ``valid_loss``), ``train_loss``, ``seconds`` (evaluations included), ``seconds_per_step`` (median, the
    step alone) and ``to_50`` / ``to_90`` (first evaluation step at that exact match, or None)."""
    steps = steps or EXPERIMENT_STEPS[task]
    _, history = toy_run(task, tokenizer, steps=steps, seed=seed, chat_format=chat_format, **EXPERIMENT_LOSSES[loss])
    return {
        "task": task,
        "loss": loss,
        "chat_format": chat_format.name,
        "seed": seed,
        "steps": steps,
        **{k: history[k] for k in ("eval_step", "exact_match", "stop_rate", "valid_loss", "train_loss", "seconds")},
        "seconds_per_step": statistics.median(history["step_seconds"]),
        "to_50": first_step_reaching(history, 0.5),
        "to_90": first_step_reaching(history, 0.9),
    }
