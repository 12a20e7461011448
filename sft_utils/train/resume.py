"""Checkpoints a run can continue from: written every ``save_every`` steps, atomically, the last few kept.

Introduced in notebook 08_finetune_pythia (a Colab session that disconnects resumes where it stopped).
A checkpoint ``checkpoint-<step>/`` under the run's ``output_dir`` holds what accelerate's ``save_state``
writes (model, optimizer, the registered learning-rate scheduler, the fp16 gradient scaler, every process's
random states) plus ``trainer_state.json``: the step, the position in the data stream and the history so far.
It is written into a hidden temporary folder first and renamed when complete, so a run killed while saving
leaves the previous checkpoint as the latest usable one (a rename within a folder is atomic on POSIX).
The model of a finished run is saved apart, with ``save_pretrained`` (:mod:`sft_utils.train.checkpoint`).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")

# Settings that change what a step computes: a resumed run must keep them (steps, evaluation, saving and
# logging may change).
RESUME_KEEPS = (
    "model",
    "batch_size",
    "grad_accum",
    "lr",
    "warmup_steps",
    "lr_schedule",
    "weight_decay",
    "max_grad_norm",
    "max_length",
    "precision",
    "seed",
    "loss",
    "prompt_loss_weight",
    "lora_r",
    "lora_alpha",
    "lora_target_modules",
    "chat_format",
    "processes",
)


def checkpoints(output_dir) -> list[Path]:
    """The complete checkpoints ``output_dir/checkpoint-<step>/`` (holding ``trainer_state.json``), by step.
    Temporary folders of a save that was interrupted are not among them."""
    folder = Path(output_dir)
    found = [p for p in folder.glob("checkpoint-*") if _CHECKPOINT.fullmatch(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def find_checkpoint(resume_from, output_dir) -> Path:
    """The folder to resume from: ``"latest"`` is the last complete checkpoint under ``output_dir``, anything
    else a checkpoint folder. Raises FileNotFoundError saying what is missing."""
    if resume_from == "latest":
        if not output_dir:
            raise FileNotFoundError("resume_from='latest' needs an output_dir to look for checkpoints in")
        found = checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(f"no complete checkpoint-<step> folder in {output_dir} to resume from")
        return found[-1]
    folder = Path(resume_from)
    if not (folder / STATE_FILE).is_file():
        raise FileNotFoundError(f"{resume_from} is not a checkpoint folder (no {STATE_FILE}): nothing to resume")
    return folder


def save_training_state(accelerator, output_dir, step: int, state: dict, *, keep: int) -> Path:
    """Write ``checkpoint-<step>/`` atomically and delete all but the last ``keep`` checkpoints; returns its
    folder. Every process must call it (accelerate saves each process's random states); ``state`` (JSON-able:
    step, data position, history) is written by the main process, last, so its presence marks a whole save."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    temporary = output_dir / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)  # left by a run killed while saving
        temporary.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (temporary / STATE_FILE).write_text(json.dumps(state))
        shutil.rmtree(final, ignore_errors=True)  # the same step of an earlier run into this folder
        temporary.rename(final)
        for old in checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_training_state(accelerator, folder, settings: dict) -> dict:
    """Restore what :func:`save_training_state` wrote into the prepared model, optimizer, scheduler and
    random states, and return its ``trainer_state.json``. ``settings`` are this run's (the history's
    ``config``, as the checkpoint's ``settings``); raises ValueError naming every setting in :data:`RESUME_KEEPS` that differs from the
    checkpoint's, since the resumed steps would then not continue the same run."""
    folder = Path(folder)
    state = json.loads((folder / STATE_FILE).read_text())
    saved = state["settings"]
    changed = [
        f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}"
        for k in RESUME_KEEPS
        if _comparable(saved.get(k)) != _comparable(settings.get(k))
    ]
    if changed:
        raise ValueError(f"cannot resume from {folder}: these settings differ from its run: {'; '.join(changed)}")
    accelerator.load_state(str(folder))
    return state


def _comparable(value):
    return list(value) if isinstance(value, tuple) else value  # JSON gives lists back for tuples
