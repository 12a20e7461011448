"""The learning-rate schedule, weight decay, clipping and accelerate's state, as the loop uses them."""

import copy
import itertools

import pytest
import torch

from sft_utils.models.pythia import load_model
from sft_utils.train import TrainConfig, train_step
from sft_utils.train import loop as loop_module
from sft_utils.train.loop import decay_parameter_names, make_optimizer


def test_each_step_records_the_rate_it_trained_at_and_the_first_is_not_zero(toy_data, monkeypatch, run_toy):
    used = []
    real = loop_module.train_step

    def spy(model, batches, optimizer, **kwargs):
        used.append(optimizer.param_groups[0]["lr"])
        return real(model, batches, optimizer, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", spy)
    _, history = run_toy(TrainConfig.toy(steps=6, warmup_steps=4, lr=1e-3), toy_data)
    assert history["lr"] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert used == pytest.approx(history["lr"])


def test_cosine_decays_towards_zero_without_reaching_it_on_a_trained_step(toy_data, run_toy):
    _, history = run_toy(TrainConfig.toy(steps=5, warmup_steps=1, lr=1e-3, lr_schedule="cosine"), toy_data)
    lrs = history["lr"]
    assert lrs[0] == pytest.approx(1e-3)
    assert all(a > b > 0 for a, b in itertools.pairwise(lrs))


def test_a_warm_up_longer_than_the_run_is_refused():
    with pytest.raises(ValueError, match=r"warmup_steps \(30\) is longer than the run \(steps=10\)"):
        TrainConfig(steps=10, warmup_steps=30)
    assert TrainConfig(steps=10).warmup == 1  # by default a tenth of the run
    assert TrainConfig.toy(steps=5).warmup == 5
    assert TrainConfig.toy().warmup == 20


def test_weight_decay_skips_biases_and_layer_norms():
    model = load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False)
    names = decay_parameter_names(model)
    shapes = dict(model.named_parameters())
    # GPT-NeoX: every matrix decays; every vector is a bias or a LayerNorm weight or bias
    assert names == {n for n, p in shapes.items() if p.dim() == 2}
    assert "gpt_neox.layers.0.attention.query_key_value.weight" in names
    assert "gpt_neox.layers.0.input_layernorm.weight" not in names
    optimizer = make_optimizer(model, 1e-3, 0.1)
    decayed, kept = optimizer.param_groups
    assert (decayed["weight_decay"], kept["weight_decay"]) == (0.1, 0.0)
    assert {id(p) for p in decayed["params"]} == {id(shapes[n]) for n in names}
    assert len(decayed["params"]) + len(kept["params"]) == len(shapes)


def test_no_clipping_when_max_grad_norm_is_none(tiny_model, tokenizer):
    from sft_utils import AssistantOnlyCollator, tokenize_conversation

    example = tokenize_conversation(
        [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello there"}], tokenizer
    )
    batch = AssistantOnlyCollator(tokenizer.pad_token_id)([example])
    unclipped, by_hand = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    train_step(unclipped, batch, torch.optim.SGD(unclipped.parameters(), lr=1.0), max_grad_norm=None)
    clipped = copy.deepcopy(tiny_model)
    train_step(clipped, batch, torch.optim.SGD(clipped.parameters(), lr=1.0), max_grad_norm=1e-3)
    from sft_utils.train import masked_loss_sum

    loss_sum, count = masked_loss_sum(by_hand.train(), batch)
    (loss_sum / count).backward()
    torch.optim.SGD(by_hand.parameters(), lr=1.0).step()
    for a, b, c in zip(unclipped.parameters(), by_hand.parameters(), clipped.parameters()):
        torch.testing.assert_close(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(unclipped.parameters(), clipped.parameters()))
    with pytest.raises(ValueError, match="max_grad_norm must be a positive number or None, got True"):
        train_step(clipped, batch, torch.optim.SGD(clipped.parameters(), lr=1.0), max_grad_norm=True)


def test_a_run_without_clipping_trains(toy_data, run_toy):
    _, history = run_toy(TrainConfig.toy(steps=4, max_grad_norm=None), toy_data)
    assert history["valid_loss"][-1] < history["valid_loss"][0]


def test_two_runs_with_different_precisions_in_one_process(toy_data, run_toy):
    _, first = run_toy(TrainConfig.toy(steps=2, precision="fp32"), toy_data)
    _, second = run_toy(TrainConfig.toy(steps=2, precision="bf16"), toy_data)
    assert (first["precision"], second["precision"]) == ("fp32", "bf16")


@pytest.mark.parametrize(
    ("settings", "error", "problem"),
    [
        ({"lr": True}, ValueError, "lr must be a positive number, got True"),
        ({"lora_r": 8, "lora_alpha": True}, ValueError, "lora_alpha must be a positive number, got True"),
        ({"weight_decay": float("inf")}, ValueError, "weight_decay must be a number >= 0, got inf"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0, got -1"),
        ({"seed": 1.5}, ValueError, "seed must be an int >= 0, got 1.5"),
        ({"output_dir": 123}, TypeError, "output_dir must be a folder path or None, got int"),
        ({"lora_r": 8, "lora_target_modules": {"dense": 1}}, ValueError, "lora_target_modules must be a list"),
        ({"lora_r": 8, "lora_target_modules": iter(["dense"])}, ValueError, "lora_target_modules must be a list"),
        ({"lora_alpha": 32}, ValueError, "lora_alpha and lora_target_modules apply with lora_r"),
        ({"lora_target_modules": ("dense",)}, ValueError, "lora_alpha and lora_target_modules apply with lora_r"),
        ({"gradient_checkpointing": "yes"}, TypeError, "gradient_checkpointing must be True or False, got 'yes'"),
    ],
)
def test_a_setting_of_the_wrong_kind_is_named(settings, error, problem):
    with pytest.raises(error, match=problem):
        TrainConfig(**settings)


def test_lora_target_modules_may_be_a_list():
    assert TrainConfig(lora_r=8, lora_target_modules=["dense"]).lora_target_modules == ("dense",)
