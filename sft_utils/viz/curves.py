"""Loss curves of fine-tuning runs (matplotlib). Introduced in notebook 08_finetune_pythia.

The trainer reports numbers (``history`` of :func:`sft_utils.train.train`); this draws them.
"""

from __future__ import annotations

from collections.abc import Mapping

from .palette import run_style


def plot_loss_curves(histories: dict, *, title: str = "Fine-tuning"):
    """Training and validation loss against optimizer steps (left) and trained tokens (right).

    Args:
        histories: ``{label: history}``, e.g. ``{"masked": h1, "plain": h2}``; each run draws its training
            loss (thin line: the loss it optimises, nats per trained token) and its validation
            assistant-only loss (markers), so runs with different training losses compare on the second. A
            label whose first word is masked, plain or prompt-weighted gets that run's colour, marker and line
            style (:func:`sft_utils.viz.palette.run_style`).
        title: the figure's title.

    Returns the ``matplotlib.figure.Figure`` (two axes, shared y). Raises TypeError for ``histories`` that are not
    a dict of label -> history (one history alone: pass ``{"run": history}``), ValueError for a history without
    the keys :func:`sft_utils.train.train` reports.
    """
    import matplotlib.pyplot as plt

    _check_histories(histories)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for index, (label, history) in enumerate(histories.items()):
        style = run_style(str(label), index)  # masked blue, plain vermillion: the same in every notebook
        for ax, x, x_eval in (
            (axes[0], history["step"], history["eval_step"]),
            (axes[1], history["trained_tokens"], history["eval_trained_tokens"]),
        ):
            ax.plot(x, history["train_loss"], color=style["color"], alpha=0.45, lw=1, label=f"{label}: training loss")
            ax.plot(x_eval, history["valid_loss"], **style, label=f"{label}: validation, assistant-only")
    axes[0].set_xlabel("optimizer step")
    axes[1].set_xlabel("trained tokens (cumulative)")
    axes[0].set_ylabel("loss (nats / token)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


KEYS = ("step", "eval_step", "trained_tokens", "eval_trained_tokens", "train_loss", "valid_loss")


def _check_histories(histories) -> None:
    """Raise as :func:`plot_loss_curves` documents."""
    if not isinstance(histories, Mapping):
        raise TypeError(f"histories must be a dict of label -> history, got {type(histories).__name__}")
    if "step" in histories:
        raise TypeError("histories must be a dict of label -> history, got one history; pass {'run': history}")
    for label, history in histories.items():
        if not isinstance(history, Mapping):
            raise TypeError(f"history {label!r} must be a dict (train()'s history), got {type(history).__name__}")
        missing = [k for k in KEYS if k not in history]
        if missing:
            raise ValueError(f"history {label!r} has no {', '.join(missing)}; expected the history train() returns")
