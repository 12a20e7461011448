"""The toy-trained model: trained once, cached on disk, the same weights from the same seed, and it has learned."""

import pytest
import torch

from sft_utils.data.toy import toy_conversations
from sft_utils.train import held_out_losses, reply_tokens, toy_model, toy_trained_model


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_second_call_loads_the_cache_without_training(tokenizer, tmp_path, monkeypatch, capsys):
    first, record = toy_trained_model("facts", steps=2, tokenizer=tokenizer, cache=tmp_path, progress=False)
    assert not record["from_cache"] and record["steps"] == 2 and len(record["train_loss"]) == 2
    assert "trained now" in capsys.readouterr().out
    (folder,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert folder.name.startswith("facts-masked-2steps-seed0-") and (folder / "record.json").exists()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model was trained again")

    monkeypatch.setattr(toy_model, "toy_run", no_training)
    again, cached = toy_trained_model("facts", steps=2, tokenizer=tokenizer, cache=tmp_path, progress=False)
    assert cached["from_cache"] and "loaded from the cache" in capsys.readouterr().out
    assert _same_weights(first, again)
    assert {k: v for k, v in cached.items() if k != "from_cache"} == {
        k: v for k, v in record.items() if k != "from_cache"
    }
    assert again.sft_source.startswith("toy-trained: pythia-14m-shaped") and again.sft_pretrained is False
    with pytest.raises(AssertionError, match="trained again"):  # another seed is another model
        toy_trained_model("facts", steps=2, seed=1, tokenizer=tokenizer, cache=tmp_path, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "nope"}, "unknown toy task"),
        ({"loss": "w=0.1"}, "loss must be one of"),
        ({"steps": 0}, "steps must be an int >= 1"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"task": "copy"}, "toy task 'copy' has no default steps: masked SFT did not learn it"),
        ({"task": "reverse"}, "toy task 'reverse' has no default steps"),
    ],
)
def test_bad_arguments_are_named_before_any_work(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        toy_trained_model(**kwargs, cache=tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights(tokenizer, tmp_path):
    a, _ = toy_trained_model("facts", steps=3, tokenizer=tokenizer, cache=tmp_path / "a", progress=False)
    b, _ = toy_trained_model("facts", steps=3, tokenizer=tokenizer, cache=tmp_path / "b", progress=False)
    c, _ = toy_trained_model("facts", steps=3, seed=1, tokenizer=tokenizer, cache=tmp_path / "c", progress=False)
    assert _same_weights(a, b) and not _same_weights(a, c)


@pytest.mark.slow
def test_the_models_have_learned_and_each_loss_favours_its_own(tokenizer, tmp_path):
    """What notebooks 04-06 and 08 read off these models: the masked one answers held-out questions and stops;
    on held-out conversations, each model scores better on the loss it was trained on."""
    masked, record = toy_trained_model("facts", tokenizer=tokenizer, cache=tmp_path, progress=False)
    assert record["exact_match"] >= 0.9 and record["stop_rate"] == 1.0 and record["valid_loss"] < 0.3
    plain, _ = toy_trained_model("facts", loss="plain", tokenizer=tokenizer, cache=tmp_path, progress=False)
    held_out = toy_conversations("facts", "held-out", 40)
    on_masked, on_plain = (held_out_losses(m, tokenizer, held_out) for m in (masked, plain))
    assert on_masked["assistant-only"] < on_plain["assistant-only"]
    assert on_plain["full sequence"] < on_masked["full sequence"]
    reply = reply_tokens(masked, tokenizer, held_out[0]["messages"][0]["text"])
    assert reply.reply == held_out[0]["messages"][1]["text"] and reply.stop_reason == "end of message"
    assert min(reply.probabilities) > 0.5
