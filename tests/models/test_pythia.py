"""Step 5: the model and its vocabulary projection."""

import re

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

import sft_utils
from sft_utils.models.pythia import pythia_config
from sft_utils.steps.project import logits_nbytes, output_head


@pytest.mark.parametrize("name, params", [("EleutherAI/pythia-70m", 70_426_624), ("pythia-160m-deduped", 162_322_944)])
def test_config_reproduces_the_published_parameter_counts(name, params):
    with torch.device("meta"):  # shapes only, no memory
        model = GPTNeoXForCausalLM(pythia_config(name))
    assert sum(p.numel() for p in model.parameters()) == params


def test_config_fixes_eos_and_keeps_pythia_details():
    config = pythia_config("pythia-410m")
    assert (config.eos_token_id, config.bos_token_id) == (0, 0)  # GPTNeoXConfig alone defaults eos to 2
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (1024, 24, 16)
    assert config.vocab_size == 50304 and config.intermediate_size == 4096
    assert config.use_parallel_residual and not config.tie_word_embeddings


@pytest.mark.parametrize("name", ["gpt2", "pythia-70m-v0-deduped", "pythia-7m", None, "checkpoints/pythia-160m"])
def test_unknown_size_is_an_error(name):
    with pytest.raises(ValueError, match="is not a Pythia name"):
        pythia_config(name)


@pytest.mark.parametrize("name", ["EleutherAI/pythia-70m-deduped-v0", "pythia-70m-v0", "PYTHIA-70M-DEDUPED"])
def test_hub_name_variants_share_the_architecture(name):
    assert pythia_config(name).to_dict() == pythia_config("pythia-70m").to_dict()


def test_offline_a_folder_name_that_is_not_there_is_not_built_at_random(no_hub_no_cache):
    with pytest.raises(ValueError, match="'checkpoints/pythia-160m' is not a Pythia name"):
        sft_utils.load_model("checkpoints/pythia-160m", verbose=False)


@pytest.mark.parametrize("path", ["/nonexistent/checkpoints/pythia-160m", "./runs/pythia-160m", "a/b/pythia-160m"])
def test_a_missing_checkpoint_folder_is_an_error_not_random_weights(path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sft_utils.load_model(path, verbose=False)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sft_utils.load_tokenizer(path, verbose=False)


def test_output_head_projects_hidden_states_to_the_vocabulary(tiny_model):
    head = output_head(tiny_model)
    assert isinstance(head, torch.nn.Linear) and head.bias is None
    assert head.weight.shape == (50304, 128)
    ids = torch.tensor([[50279, 42, 1053, 0, 50280]])
    with torch.no_grad():
        out = tiny_model(input_ids=ids, output_hidden_states=True)
    assert out.logits.shape == (1, 5, 50304)
    # logits are exactly the head applied to the last hidden state (after the final layer norm)
    assert torch.allclose(head(out.hidden_states[-1]), out.logits, atol=1e-5)


def test_logits_nbytes():
    assert logits_nbytes(8, 2048, 50304) == 3_296_722_944  # float32 logits of batch 8 x 2048: 3.3 GB
    assert logits_nbytes(1, 10, 100, torch.bfloat16) == 2000


@pytest.fixture
def no_hub_no_cache(monkeypatch):
    """As on a machine that never reached the hub (the env var HF_HOME is read once, at import: patch instead)."""
    from sft_utils.models import pythia as modeling

    monkeypatch.setattr(modeling, "load_local_hub_or_cache", lambda name, load: (None, "hub unreachable"))


def test_load_model_offline_builds_random_weights_and_says_so(no_hub_no_cache, capsys):
    model = sft_utils.load_model("EleutherAI/pythia-14m", seed=3)
    printed = capsys.readouterr().out
    assert "RANDOM weights" in printed and "pythia-14m" in printed
    assert model.sft_pretrained is False and not model.training
    assert (model.config.pad_token_id, model.config.eos_token_id) == (1, 0)
    torch.manual_seed(3)
    again = GPTNeoXForCausalLM(pythia_config("pythia-14m"))
    assert torch.equal(output_head(model).weight, output_head(again).weight)  # seeded, reproducible


def test_a_saved_float16_checkpoint_loads_as_float32(tmp_path, capsys):
    torch.manual_seed(0)
    saved = GPTNeoXForCausalLM(pythia_config("pythia-14m")).half()
    saved.save_pretrained(tmp_path / "ckpt")
    model = sft_utils.load_model(str(tmp_path / "ckpt"))
    assert model.sft_pretrained and "local folder" in capsys.readouterr().out
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.equal(output_head(model).weight, output_head(saved).weight.float())


def test_a_folder_of_another_architecture_is_refused_before_loading(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="holds a 'gpt2' model, not GPT-NeoX"):
        sft_utils.load_model(str(tmp_path / "gpt2"), verbose=False)


@pytest.mark.parametrize(
    "name, size",
    [
        ("EleutherAI/pythia-1.4b-deduped", "pythia-1.4b"),
        ("pythia-7m", None),
        ("pythia-1.2.3b", None),
        ("gpt2/pythia-70m", None),
        (None, None),
    ],
)
def test_pythia_size(name, size):
    assert sft_utils.models.pythia.pythia_size(name) == size


def test_seed_none_does_not_reseed(no_hub_no_cache):
    """Before: torch.manual_seed(None) failed inside torch."""
    torch.manual_seed(5)
    model = sft_utils.load_model("EleutherAI/pythia-14m", seed=None, verbose=False)
    torch.manual_seed(5)
    again = GPTNeoXForCausalLM(pythia_config("pythia-14m"))
    assert torch.equal(output_head(model).weight, output_head(again).weight)  # torch's generator, as it stood
    seeded = sft_utils.load_model("EleutherAI/pythia-14m", seed=np.int64(5), verbose=False)
    assert torch.equal(output_head(seeded).weight, output_head(again).weight)


@pytest.mark.parametrize("seed, shown", [("3", "'3' (str)"), (3.0, "3.0 (float)"), (True, "True (bool)")])
def test_a_seed_that_is_not_an_int_is_named_before_anything_loads(seed, shown):
    with pytest.raises(TypeError, match=re.escape(f"seed must be an int or None (do not reseed), got {shown}")):
        sft_utils.load_model("/nonexistent/checkpoints/pythia-14m", seed=seed, verbose=False)


def test_the_models_package_exports_what_its_docstring_names():
    """Before: `from sft_utils.models import load_model` failed, though the docstring lists it."""
    from sft_utils import models
    from sft_utils.models import hub_is_reachable, load_local_hub_or_cache, load_model, pythia_config

    named = set(re.findall(r"(?<![.\w])[a-z]+(?:_[a-z]+)+(?![.\w])", models.__doc__))
    assert (
        named == set(models.__all__) == {"hub_is_reachable", "load_local_hub_or_cache", "load_model", "pythia_config"}
    )
    assert (load_model, pythia_config) == (sft_utils.load_model, sft_utils.pythia_config)
    assert (hub_is_reachable, load_local_hub_or_cache) == (
        models.hub.hub_is_reachable,
        models.hub.load_local_hub_or_cache,
    )
