"""Checkpoints a run resumes from: a run killed with SIGKILL and resumed equals one never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sft_utils import load_tokenizer
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


@pytest.mark.slow  # three CLI processes; the in-process resume tests below stay fast
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
    # save_total_limit 2: the last two of checkpoint-4, -8, -12, -16 (the end is saved too)
    assert [p.name for p in checkpoints(whole)] == ["checkpoint-12", "checkpoint-16"]


def test_a_kill_while_saving_leaves_the_previous_checkpoint_the_latest(tmp_path, toy_data, monkeypatch, run_toy):
    config = TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path))
    run_toy(config, toy_data)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4"]

    from accelerate import Accelerator

    def dies_halfway(self, folder):  # the weights are written, then the process dies
        (tmp_path / ".checkpoint-6.tmp" / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Accelerator, "save_state", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(Accelerator(cpu=True), tmp_path, 6, {"run": {}}, keep=2)
    assert find_checkpoint("latest", tmp_path).name == "checkpoint-4"


def test_resuming_with_other_settings_is_refused_naming_them(tmp_path, toy_data, run_toy):
    run_toy(TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path)), toy_data)
    changed = TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path), lr=3e-3, batch_size=8)
    with pytest.raises(ValueError, match=r"batch_size: 16 -> 8; lr: 0.001 -> 0.003"):
        run_toy(changed, toy_data, resume_from="latest")


def test_nothing_to_resume_from_says_where_it_looked(tmp_path, toy_data, run_toy):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint-<step> folder in"):
        run_toy(TrainConfig.toy(steps=2, output_dir=str(tmp_path)), toy_data, resume_from="latest")
    with pytest.raises(FileNotFoundError, match="is not a checkpoint folder"):
        run_toy(TrainConfig.toy(steps=2, output_dir=str(tmp_path)), toy_data, resume_from=tmp_path)


def test_save_every_needs_a_folder():
    with pytest.raises(ValueError, match="save_every needs an output_dir"):
        TrainConfig.toy(save_every=10)


def test_resuming_with_other_data_or_steps_is_refused(tmp_path, toy_data, run_toy):
    run_toy(TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path)), toy_data)
    fewer = toy_data[0][:100], toy_data[1]
    with pytest.raises(
        ValueError, match=r"these settings differ from its run: data: '[0-9a-f]{16}' -> '[0-9a-f]{16}'$"
    ):
        run_toy(TrainConfig.toy(steps=4, save_every=2, output_dir=str(tmp_path)), fewer, resume_from="latest")
    with pytest.raises(ValueError, match=r"steps: 4 -> 6; warmup_steps: 4 -> 6"):
        run_toy(TrainConfig.toy(steps=6, save_every=2, output_dir=str(tmp_path)), toy_data, resume_from="latest")


def test_a_refused_resume_leaves_the_model_untouched(tmp_path, toy_data, run_toy):
    run_toy(TrainConfig.toy(steps=2, save_every=2, output_dir=str(tmp_path)), toy_data)
    model = load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False)
    before = {n: p.clone() for n, p in model.state_dict().items()}
    lora = TrainConfig.toy(steps=2, save_every=2, output_dir=str(tmp_path), lora_r=8, gradient_checkpointing=True)
    with pytest.raises(ValueError, match="lora_r: None -> 8"):
        train(lora, model, load_tokenizer(verbose=False), *toy_data, progress=False, resume_from="latest")
    assert model.state_dict().keys() == before.keys()  # no adapters
    assert all(p.requires_grad for p in model.parameters()) and model.config.use_cache


def test_resuming_a_finished_run_trains_nothing_more(tmp_path, toy_data, run_toy):
    config = TrainConfig.toy(steps=4, save_every=3, output_dir=str(tmp_path))
    _, first = run_toy(config, toy_data)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-4"]
    _, again = run_toy(config, toy_data, resume_from="latest")
    assert again["resumed_at"] == 4 and again["step"] == first["step"] == [1, 2, 3, 4]
    assert again["train_loss"] == first["train_loss"]


def test_a_new_run_into_a_folder_of_checkpoints_or_a_file_is_refused(tmp_path, toy_data, run_toy):
    run_toy(TrainConfig.toy(steps=2, save_every=2, output_dir=str(tmp_path)), toy_data)
    with pytest.raises(ValueError, match=r"already holds checkpoints of a run \(checkpoint-2\): continue it with"):
        run_toy(TrainConfig.toy(steps=2, output_dir=str(tmp_path)), toy_data)
    file = tmp_path / "notes.txt"
    file.write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        run_toy(TrainConfig.toy(steps=2, output_dir=str(file)), toy_data)


def test_a_damaged_state_file_is_named(tmp_path, toy_data, run_toy):
    run_toy(TrainConfig.toy(steps=2, save_every=2, output_dir=str(tmp_path)), toy_data)
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{")
    with pytest.raises(ValueError, match="trainer_state.json is damaged"):
        run_toy(TrainConfig.toy(steps=2, output_dir=str(tmp_path)), toy_data, resume_from="latest")
    with pytest.raises(TypeError, match="resume_from must be 'latest' or a checkpoint folder, got int"):
        run_toy(TrainConfig.toy(steps=2, output_dir=str(tmp_path)), toy_data, resume_from=123)


def test_a_checkpoint_folder_is_not_loaded_as_a_model(tmp_path, toy_data, run_toy):
    run_toy(TrainConfig.toy(steps=2, save_every=2, output_dir=str(tmp_path)), toy_data)
    with pytest.raises(ValueError, match="is a checkpoint to resume training from .* not a saved model"):
        load_model(str(tmp_path / "checkpoint-2"))
    assert load_model(str(tmp_path), verbose=False).sft_pretrained  # the run's output folder is the model


class Folder:
    """A folder path that is neither a str nor a pathlib.Path: any os.PathLike."""

    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return str(self.path)


def test_an_output_dir_given_as_a_path_or_any_path_like_keeps_checkpoints(tmp_path, toy_data, run_toy):
    """Before: a pathlib.Path output_dir crashed at the first checkpoint (not JSON), leaving a .tmp folder."""
    folder = tmp_path / "run"
    _, first = run_toy(TrainConfig.toy(steps=4, batch_size=4, save_every=2, output_dir=folder), toy_data)
    assert [p.name for p in checkpoints(folder)] == ["checkpoint-2", "checkpoint-4"]
    assert not list(folder.glob(".checkpoint-*")) and (folder / "model.safetensors").is_file()
    saved = json.loads((folder / "checkpoint-4" / "trainer_state.json").read_text())["settings"]
    assert saved["output_dir"] == str(folder) and saved == json.loads(json.dumps(first["config"]))
    resumed_config = TrainConfig.toy(steps=4, batch_size=4, save_every=2, output_dir=Folder(folder))
    _, resumed = run_toy(resumed_config, toy_data, resume_from=Folder(folder / "checkpoint-2"))
    assert resumed["resumed_at"] == 2 and resumed["step"] == first["step"]
    assert resumed["train_loss"] == pytest.approx(first["train_loss"], abs=1e-6)


def test_a_state_json_cannot_hold_leaves_no_half_written_checkpoint(tmp_path):
    from accelerate import Accelerator

    with pytest.raises(TypeError, match="not JSON serializable"):
        save_training_state(Accelerator(cpu=True), tmp_path, 2, {"settings": {"when": object()}}, keep=2)
    assert list(tmp_path.iterdir()) == []
