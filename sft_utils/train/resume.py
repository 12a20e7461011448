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

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..models.pythia import RESUME_STATE_FILE

STATE_FILE = RESUME_STATE_FILE  # load_model refuses a folder holding it: a checkpoint is not a saved model
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")

# Settings that change what a step computes, the data included: a resumed run must keep them (evaluation,
# saving and logging may change). Steps too: the schedule's shape depends on them.
RESUME_KEEPS = (
    "model",
    "steps",
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
    "data",
)


def checkpoints(output_dir) -> list[Path]:
    """The complete checkpoints ``output_dir/checkpoint-<step>/`` (holding ``trainer_state.json``), by step.
    Temporary folders of a save that was interrupted are not among them."""
    folder = Path(output_dir)
    found = [p for p in folder.glob("checkpoint-*") if _CHECKPOINT.fullmatch(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def find_checkpoint(resume_from, output_dir) -> Path:
    """The folder to resume from: ``"latest"`` is the last complete checkpoint under ``output_dir``, anything
    else a checkpoint folder. Raises FileNotFoundError saying what is missing, TypeError for anything but a
    string or a path."""
    if not isinstance(resume_from, (str, os.PathLike)):
        raise TypeError(f"resume_from must be 'latest' or a checkpoint folder, got {type(resume_from).__name__}")
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
    text = json.dumps(state)  # before any folder is made: a value JSON cannot hold leaves no half-written save
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
        (temporary / STATE_FILE).write_text(text)
        shutil.rmtree(final, ignore_errors=True)  # the same step of an earlier run into this folder
        temporary.rename(final)
        for old in checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def read_training_state(folder, settings: dict) -> dict:
    """The ``trainer_state.json`` of a checkpoint written by :func:`save_training_state`, once its run is known
    to be this one. ``settings`` are this run's (the history's ``config``, as the checkpoint's ``settings``).
    Raises ValueError naming every setting in :data:`RESUME_KEEPS` that differs from the checkpoint's (the
    resumed steps would then not continue the same run; ``data`` is a fingerprint of the tokenized
    conversations), or for a state file that cannot be read."""
    path = Path(folder) / STATE_FILE
    try:
        state = json.loads(path.read_text())
        saved = state["settings"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"cannot resume from {folder}: {path.name} is damaged ({error})") from None
    changed = [
        f"{k}: {saved.get(k)!r} -> {settings.get(k)!r}"
        for k in RESUME_KEEPS
        if _comparable(saved.get(k)) != _comparable(settings.get(k))
    ]
    if changed:
        raise ValueError(f"cannot resume from {folder}: these settings differ from its run: {'; '.join(changed)}")
    return state


def check_output_dir(output_dir, *, resuming: bool) -> None:
    """Raise before any work: ValueError when ``output_dir`` is a file, or, for a new run, already holds
    checkpoints (a new run's would mix with them, and ``resume_from="latest"`` would find the old run's)."""
    if output_dir is None:
        return
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output_dir {output_dir} is a file, not a folder")
    found = checkpoints(folder) if folder.is_dir() else []
    if found and not resuming:
        names = ", ".join(p.name for p in found)
        raise ValueError(
            f"output_dir {output_dir} already holds checkpoints of a run ({names}): continue it with "
            "resume_from='latest' (--resume latest), or write this run to another folder"
        )


def data_fingerprint(*example_lists) -> str:
    """A short hash of tokenized examples (``input_ids`` and ``label_mask``), so that a resumed run can tell
    whether it trains on the same data as its checkpoint's."""
    digest = hashlib.sha256()
    for examples in example_lists:
        digest.update(len(examples).to_bytes(8, "little"))
        for example in examples:
            digest.update(np.asarray(example["input_ids"], dtype=np.int64).tobytes())
            digest.update(np.asarray(example["label_mask"], dtype=bool).tobytes())
    return digest.hexdigest()[:16]


def _comparable(value):
    return list(value) if isinstance(value, tuple) else value  # JSON gives lists back for tuples
