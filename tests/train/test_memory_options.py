"""The memory options of the loop: LoRA through peft, and gradient (activation) checkpointing."""

import copy
import json

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from sft_utils import AssistantOnlyCollator, load_tokenizer, tokenize_conversation
from sft_utils.models.pythia import load_model
from sft_utils.train import TrainConfig, masked_loss_sum, train
from sft_utils.train.loop import apply_lora

R = 8


@pytest.fixture(scope="module")
def lora_run(toy_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    model = load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False)
    before = copy.deepcopy(model)
    config = TrainConfig.toy(steps=20, lr=1e-2, lora_r=R, eval_every=10, output_dir=str(folder))
    trained, history = train(config, model, load_tokenizer(verbose=False), *toy_data, progress=False)
    return before, trained, history, folder


def test_lora_trains_only_its_adapters_and_the_loss_falls(lora_run):
    before, trained, history, _ = lora_run
    # 6 layers x (qkv 128->384, dense 128->128, h_to_4h 128->512, 4h_to_h 512->128): r x (in + out) each
    assert history["trainable_parameters"] == 6 * R * ((128 + 384) + (128 + 128) + (128 + 512) + (512 + 128))
    assert history["valid_loss"][-1] < history["valid_loss"][0] - 1.0
    assert isinstance(trained, GPTNeoXForCausalLM)  # adapters merged: no peft wrapper left
    weights, old = dict(trained.named_parameters()), dict(before.named_parameters())
    for name, value in weights.items():
        delta = value.detach() - old[name].detach()
        if any(f".{t}.weight" in name for t in TrainConfig().lora_target_modules):
            assert 0 < torch.linalg.matrix_rank(delta) <= R, name  # a low-rank update, merged in
        else:
            assert torch.equal(delta, torch.zeros_like(delta)), name  # embeddings, head, norms, biases: frozen


def test_lora_trains_the_same_tokens_as_full_fine_tuning(lora_run, toy_data):
    _, _, lora_history, _ = lora_run
    model = load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False)
    _, full = train(
        TrainConfig.toy(steps=20, eval_every=10), model, load_tokenizer(verbose=False), *toy_data, progress=False
    )
    assert lora_history["trained_tokens"] == full["trained_tokens"]
    assert full["trainable_parameters"] == sum(p.numel() for p in model.parameters())


def test_the_merged_model_reloads_with_equal_logits(lora_run):
    _, trained, _, folder = lora_run
    reloaded = GPTNeoXForCausalLM.from_pretrained(folder).eval()
    ids = torch.tensor([[50279, 3650, 1057, 20148, 3153, 275, 32, 0, 50280]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, trained(ids).logits, rtol=0, atol=1e-5)


def test_the_chunked_loss_goes_through_the_peft_wrapper(tokenizer):
    model = apply_lora(load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False), TrainConfig(lora_r=R))
    for module in model.modules():  # adapters start at B = 0, i.e. no change: move them so that they count
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
    example = tokenize_conversation(
        [{"role": "prompter", "text": "Where is Paris?"}, {"role": "assistant", "text": "In France."}], tokenizer
    )
    batch = AssistantOnlyCollator(tokenizer.pad_token_id)([example])
    chunked, count = masked_loss_sum(model, batch)
    full, _ = masked_loss_sum(model, batch, full_logits=True)
    assert count == int(batch["label_masks"].sum()) == 5
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)
    chunked.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"lora_target_modules": ("q_proj", "dense")}, "'q_proj' is not a module of this model"),
        ({"lora_target_modules": ("dense", "HEAD")}, "'HEAD' is the output head, which the loss reads directly"),
        ({"lora_target_modules": ("input_layernorm",)}, "'input_layernorm' is a LayerNorm, not a linear layer"),
        ({"lora_r": 200}, "lora_r=200 is larger than the smaller side of 'query_key_value' \\(128\\)"),
    ],
)
def test_a_lora_target_that_would_not_train_is_named_before_the_model_changes(settings, problem):
    model = load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False)
    # the head's name: lm_head in transformers 5, embed_out in 4.x
    head = next(name for name, module in model.named_modules() if module is model.get_output_embeddings())
    settings = {
        k: tuple(head if t == "HEAD" else t for t in v) if k == "lora_target_modules" else v
        for k, v in settings.items()
    }
    keys = model.state_dict().keys()
    with pytest.raises(ValueError, match=problem.replace("HEAD", head)):
        apply_lora(model, TrainConfig(**{"lora_r": R, **settings}))
    assert model.state_dict().keys() == keys


def test_gradient_checkpointing_changes_memory_not_the_numbers(toy_data, tmp_path):
    histories = []
    for on in (False, True):
        model = load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False)
        config = TrainConfig.toy(steps=4, eval_every=2, gradient_checkpointing=on, output_dir=str(tmp_path / str(on)))
        trained, history = train(config, model, load_tokenizer(verbose=False), *toy_data, progress=False)
        histories.append(history)
        assert trained.config.use_cache is True  # generation gets its cache back, in the saved config too
        assert json.loads((tmp_path / str(on) / "config.json").read_text())["use_cache"] is True
        assert not any(getattr(m, "gradient_checkpointing", False) for m in trained.modules())
        assert not trained.get_input_embeddings()._forward_hooks  # transformers 5 hooks them for checkpointing
    assert histories[1]["train_loss"] == pytest.approx(histories[0]["train_loss"], abs=1e-6)


def test_after_lora_the_model_is_plain_trainable_and_free_of_peft_hooks(toy_data, tokenizer):
    """Before: merge_and_unload left every weight frozen and, with gradient checkpointing, peft's hook on the input
    embeddings in place: a second train() failed with "optimizer got an empty parameter list"."""
    model = load_model("EleutherAI/pythia-14m", random_weights=True, verbose=False)
    model.gpt_neox.embed_in.weight.requires_grad_(False)  # frozen by the caller: it stays so
    config = TrainConfig.toy(steps=2, batch_size=4, lora_r=R, gradient_checkpointing=True)
    trained, _ = train(config, model, tokenizer, *toy_data, progress=False)
    assert type(trained) is GPTNeoXForCausalLM and not any("lora_" in n for n, _ in trained.named_parameters())
    frozen = {n for n, p in trained.named_parameters() if not p.requires_grad}
    assert frozen == {"gpt_neox.embed_in.weight"}
    embeddings = trained.get_input_embeddings()
    assert not embeddings._forward_hooks and not getattr(trained, "_require_grads_hooks", None)
    trained.requires_grad_(False)  # with every weight frozen, a forward outside no_grad builds no graph
    assert trained(torch.tensor([[50279, 3650, 0]])).logits.grad_fn is None
    trained.requires_grad_(True)
    before = {n: p.detach().clone() for n, p in trained.named_parameters()}
    again, history = train(TrainConfig.toy(steps=2, batch_size=4), trained, tokenizer, *toy_data, progress=False)
    assert history["trainable_parameters"] == sum(p.numel() for p in again.parameters())
    assert all(not torch.equal(before[n], p) for n, p in again.named_parameters() if n.endswith("dense.weight"))
