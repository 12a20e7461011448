"""Checkpoints a run resumes from: a run killed with SIGKILL and resumed equals one never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sft_utils import load_tokenizer
from sft_utils.data.toy import toy_conversations
from sft_utils.models.pythia import load_model
from sft_utils.train import TrainConfig, train
from sft_utils.train.resume import checkpoints, find_checkpoint, save_training_state

TOY = ["--data", "toy:facts", "--max-conversations", "200", "--steps", "16", "--eval-every", "8", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}  # the same threads: the same float sums

# The run to kill: every step from step 6 on sleeps for a second (the numbers are untouched), so the kill,
# sent as soon as checkpoint-4 is complete, lands between checkpoint-4 and checkpoint-8.
SLOW_FROM_STEP_6 = """
import sys, time
import sft_utils.train.loop as loop
from sft_utils.train.cli import main
real, calls = loop.train_step, [0]
def slow(*args, **kwargs):
    calls[0] += 1
    if calls[0] >= 6:
        time.sleep(1.0)
    return real(*args, **kwargs)
loop.train_step = slow
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args):
    command = [sys.executable, "-m", "sft_utils.train", *TOY, *args]
    return subprocess.run(command, env=ENV, check=True, capture_output=True)


def test_a_killed_run_resumed_from_its_checkpoint_equals_an_uninterrupted_one(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _cli("--output-dir", str(whole), "--save-every", "4")
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_FROM_STEP_6, *TOY, "--output-dir", str(killed), "--save-every", "4"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint-4" / "trainer_state.json").exists():
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert [p.name for p in checkpoints(killed)] == ["checkpoint-4"]
    assert not (killed / "history.json").exists()

    _cli("--output-dir", str(killed), "--save-every", "4", "--resume", "latest")
    uninterrupted = json.loads((whole / "history.json").read_text())
    resumed = json.loads((killed / "history.json").read_text())
    assert resumed["resumed_at"] == 4 and uninterrupted["resumed_at"] is None
    assert resumed["step"] == uninterrupted["step"] == list(range(1, 17))
    assert resumed["trained_tokens"] == uninterrupted["trained_tokens"]
    assert resumed["lr"] == uninterrupted["lr"]
    assert resumed["train_loss"] == pytest.approx(uninterrupted["train_loss"], abs=1e-6)
    assert resumed["eval_step"] == [0, 8, 16]
    assert resumed["valid_loss"] == pytest.approx(uninterrupted["valid_loss"], abs=1e-6)
    assert resumed["exact_match"] == uninterrupted["exact_match"]
    # save_total_limit 2: the last two of checkpoint-4, -8, -12 (the final model is saved apart, not as one)
    assert [p.name for p in checkpoints(whole)] == ["checkpoint-8", "checkpoint-12"]


@pytest.fixture(scope="module")
def toy_data():
    return toy_conversations("facts", "train", 200), toy_conversations("facts", "held-out", 16)


def _run(config, toy_data, **kwargs):
    model = load_model(config.model, random_weights=True, verbose=False)
    return train(config, model, load_tokenizer(verbose=False), *toy_data, progress=False, **kwargs)


def test_a_kill_while_saving_leaves_the_previous_checkpoint_the_latest(tmp_path, toy_data, monkeypatch):
    config = TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path))
    _run(config, toy_data)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-2"]

    from accelerate import Accelerator

    def dies_halfway(self, folder):  # the weights are written, then the process dies
        (tmp_path / ".checkpoint-6.tmp" / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Accelerator, "save_state", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(Accelerator(cpu=True), tmp_path, 6, {"run": {}}, keep=2)
    assert find_checkpoint("latest", tmp_path).name == "checkpoint-2"


def test_resuming_with_other_settings_is_refused_naming_them(tmp_path, toy_data):
    _run(TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path)), toy_data)
    changed = TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path), lr=3e-3, batch_size=8)
    with pytest.raises(ValueError, match=r"batch_size: 16 -> 8; lr: 0.001 -> 0.003"):
        _run(changed, toy_data, resume_from="latest")


def test_nothing_to_resume_from_says_where_it_looked(tmp_path, toy_data):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint-<step> folder in"):
        _run(TrainConfig.toy(steps=2, output_dir=str(tmp_path)), toy_data, resume_from="latest")
    with pytest.raises(FileNotFoundError, match="is not a checkpoint folder"):
        _run(TrainConfig.toy(steps=2, output_dir=str(tmp_path)), toy_data, resume_from=tmp_path)


def test_save_every_needs_a_folder():
    with pytest.raises(ValueError, match="save_every needs an output_dir"):
        TrainConfig.toy(save_every=10)
