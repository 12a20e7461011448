"""fp16 with a gradient scaler, run on a CPU with torch's CPU scaler: a skipped update is retried, not counted.

Overflows are forced: a first scale of 2**127 (any gradient overflows), or a loss made non-finite on purpose.
"""

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from sft_utils import pythia_config
from sft_utils.data.toy import toy_conversations
from sft_utils.train import TrainConfig, train
from sft_utils.train import loop as loop_module
from sft_utils.train import step as step_module
from sft_utils.train.loop import MAX_SKIPS_IN_A_ROW


@pytest.fixture(scope="module")
def data():
    return toy_conversations("facts", "train", 64), toy_conversations("facts", "held-out", 4)


def _model():
    """A 2-layer GPT-NeoX with Pythia's vocabulary, seeded: fp16 matrix products are slow on a CPU."""
    config = pythia_config("pythia-14m")
    config.update({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64})
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(config)
    model.sft_pretrained = False
    return model


def _config(**overrides):
    settings = {"steps": 3, "warmup_steps": 2, "batch_size": 4, "max_length": 64, "eval_every": 3}
    return TrainConfig.toy(**{**settings, **overrides})


def _scaler(monkeypatch, **kwargs):
    """The run's gradient scaler becomes ``GradScaler("cpu", **kwargs)``; returns a list that gets the accelerator."""
    made, real = [], loop_module.make_accelerator

    def with_scaler(*args):
        accelerator = real(*args)
        accelerator.scaler = torch.amp.GradScaler("cpu", **kwargs)
        made.append(accelerator)
        return accelerator

    monkeypatch.setattr(loop_module, "make_accelerator", with_scaler)
    return made


def test_skipped_updates_move_neither_weights_nor_schedule_nor_the_step_count(tokenizer, data, monkeypatch):
    _, fp32 = train(_config(precision="fp32"), _model(), tokenizer, *data, progress=False)
    # 2**127 overflows any gradient; halving by 2**-56 twice brings it to 2**15, where these gradients fit
    _scaler(monkeypatch, init_scale=2.0**127, backoff_factor=2.0**-56)
    attempts, real = [], loop_module.train_step

    def spy(model, batches, optimizer, **kwargs):
        before = [p.detach().clone() for p in model.parameters()]
        loss = real(model, batches, optimizer, **kwargs)
        moved = any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
        adam_steps = max((int(state["step"]) for state in optimizer.state.values()), default=0)
        attempts.append((optimizer.param_groups[0]["lr"], moved, adam_steps))
        return loss

    monkeypatch.setattr(loop_module, "train_step", spy)
    _, fp16 = train(_config(precision="fp16"), _model(), tokenizer, *data, progress=False)
    assert fp16["precision"] == "fp16" and fp16["skipped_steps"] == [1, 1] and fp32["skipped_steps"] == []
    # two attempts at step 1 changed no weight nor AdamW's step count; the third trained, at the same rate
    assert attempts == [(5e-4, False, 0), (5e-4, False, 0), (5e-4, True, 1), (1e-3, True, 2), (1e-3, True, 3)]
    assert fp16["step"] == fp32["step"] == [1, 2, 3]
    assert fp16["lr"] == fp32["lr"] == pytest.approx([5e-4, 1e-3, 1e-3])
    assert fp16["trained_tokens"] == fp32["trained_tokens"]
    assert fp16["train_loss"] == pytest.approx(fp32["train_loss"], rel=1e-4)  # fp16 products, float32 weights
    assert fp16["valid_loss"] == pytest.approx(fp32["valid_loss"], rel=1e-4)


def test_gradients_that_never_fit_stop_the_run_naming_the_step(tokenizer, data, monkeypatch):
    real = step_module.masked_loss_sum

    def never_finite(*args, **kwargs):
        loss_sum, count = real(*args, **kwargs)
        return loss_sum * float("nan"), count

    monkeypatch.setattr(step_module, "masked_loss_sum", never_finite)
    made = _scaler(monkeypatch)  # torch's default: 2**16
    with pytest.raises(FloatingPointError, match=f"step 1: the fp16 gradient scaler skipped {MAX_SKIPS_IN_A_ROW} "):
        train(_config(precision="fp16", batch_size=1), _model(), tokenizer, *data, progress=False)
    assert made[0].scaler.get_scale() == 2.0 ** (16 - MAX_SKIPS_IN_A_ROW)


def test_a_resumed_fp16_run_skips_where_the_uninterrupted_one_did(tokenizer, data, monkeypatch, tmp_path):
    """The scaler's state travels in the checkpoint: an update is made to overflow whenever the scale exceeds
    2**17, which it reaches by doubling after every 2 clean updates (2**16 at the start)."""
    made = _scaler(monkeypatch, growth_interval=2)
    real = step_module.masked_loss_sum

    def overflows_above_2_17(*args, **kwargs):
        loss_sum, count = real(*args, **kwargs)
        return loss_sum * (float("inf") if made[-1].scaler.get_scale() > 2**17 else 1.0), count

    monkeypatch.setattr(step_module, "masked_loss_sum", overflows_above_2_17)
    config = _config(precision="fp16", steps=6, eval_every=3, save_every=3, output_dir=str(tmp_path))
    _, whole = train(config, _model(), tokenizer, *data, progress=False)
    assert whole["skipped_steps"] == [5]  # 2**17 after step 2, 2**18 after step 4: step 5's first try overflows
    _, resumed = train(config, _model(), tokenizer, *data, progress=False, resume_from=tmp_path / "checkpoint-3")
    assert resumed["resumed_at"] == 3 and resumed["skipped_steps"] == [5]
    assert resumed["step"] == whole["step"] and resumed["trained_tokens"] == whole["trained_tokens"]
    assert resumed["lr"] == whole["lr"]
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], abs=1e-6)
    assert resumed["valid_loss"] == pytest.approx(whole["valid_loss"], abs=1e-6)
