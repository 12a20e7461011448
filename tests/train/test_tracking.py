"""Logging a run for TensorBoard through accelerate's trackers."""

import pytest

from sft_utils import load_tokenizer
from sft_utils.data.toy import toy_conversations
from sft_utils.models.pythia import load_model
from sft_utils.train import TrainConfig, train


def test_tensorboard_gets_every_step_and_every_evaluation(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is in the lab extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig.toy(steps=4, eval_every=2, report_to="tensorboard", output_dir=str(tmp_path))
    model = load_model(config.model, random_weights=True, verbose=False)
    data = toy_conversations("facts", "train", 50), toy_conversations("facts", "held-out", 8)
    _, history = train(config, model, load_tokenizer(verbose=False), *data, progress=False)
    events = EventAccumulator(str(tmp_path / "runs" / "sft")).Reload()  # the run's scalars (hparams beside them)
    losses = events.Scalars("train_loss")
    assert [e.step for e in losses] == [1, 2, 3, 4]
    assert [e.value for e in losses] == pytest.approx(history["train_loss"], rel=1e-6)
    assert [e.value for e in events.Scalars("lr")] == pytest.approx(history["lr"], rel=1e-6)
    valid = events.Scalars("valid_loss")
    assert [e.step for e in valid] == history["eval_step"] == [0, 2, 4]  # step 0: before training
    assert [e.value for e in valid] == pytest.approx(history["valid_loss"], rel=1e-6)


def test_report_to_needs_a_folder_and_a_known_tracker():
    with pytest.raises(ValueError, match="report_to needs an output_dir"):
        TrainConfig.toy(report_to="tensorboard")
    with pytest.raises(ValueError, match="report_to must be None or one of tensorboard, got 'wandb'"):
        TrainConfig(report_to="wandb")
