"""Prompt-loss weights, learning-rate schedules and batched replies: the pieces the toy world's loop adds."""

import copy

import pytest
import torch

from sft_utils import tokenize_conversation
from sft_utils.data.toy import toy_conversations
from sft_utils.steps.loss import per_token_nll
from sft_utils.train import TrainConfig, masked_loss_sum
from sft_utils.train.generate import generate_replies, reply_metrics
from sft_utils.train.loop import make_collator
from sft_utils.train.step import accumulate_gradients


@pytest.fixture(scope="module")
def examples(tokenizer):
    conversations = toy_conversations("remember", "train", 2) + toy_conversations("copy", "train", 2)
    return [tokenize_conversation(c["messages"], tokenizer) for c in conversations]


@pytest.mark.parametrize("full_logits", [False, True])
@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_prompt_loss_weight_against_per_token_losses(tiny_model, tokenizer, examples, weight, full_logits):
    batch = make_collator("masked", tokenizer, prompt_loss_weight=weight)(examples)
    loss_sum, count = masked_loss_sum(tiny_model, batch, full_logits=full_logits)
    # Reference: per-token cross-entropy of the full logits, weighted by hand.
    plain = make_collator("plain", tokenizer)(examples)
    with torch.no_grad():
        nll = per_token_nll(
            tiny_model(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"]).logits, plain["targets"]
        )
    assistant, real = batch["label_masks"], plain["label_masks"]
    weights = assistant.float() + weight * (real & ~assistant).float()
    assert count == pytest.approx(float(weights.sum()))
    assert float(loss_sum.detach()) == pytest.approx(float((nll * weights).sum()), rel=1e-5)
    if weight == 1.0:  # prompt weight 1 is plain SFT: the same targets, the same loss
        plain_sum, plain_count = masked_loss_sum(tiny_model, plain, full_logits=full_logits)
        assert count == plain_count
        assert float(loss_sum.detach()) == pytest.approx(float(plain_sum.detach()), rel=1e-5)


def test_weighted_accumulation_divides_by_weighted_count(tiny_model, tokenizer, examples):
    collate = make_collator("masked", tokenizer, prompt_loss_weight=0.5)
    micro = [collate(examples[:2]), collate(examples[2:])]
    loss, count = accumulate_gradients(copy.deepcopy(tiny_model), micro)
    sums = [masked_loss_sum(tiny_model, b) for b in micro]
    assert count == pytest.approx(sum(n for _, n in sums))
    assert loss == pytest.approx(sum(float(s.detach()) for s, _ in sums) / count, rel=1e-5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prompt_loss_weight": 1.5}, "prompt_loss_weight must be a number from 0 to 1"),
        ({"prompt_loss_weight": True}, "prompt_loss_weight must be a number from 0 to 1"),
        ({"prompt_loss_weight": 0.5, "loss": "plain"}, "already trains every token"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of cosine, linear, constant"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_toy_defaults_keep_the_rate_at_its_peak():
    config = TrainConfig.toy()
    assert (config.lr, config.lr_schedule, config.batch_size, config.precision) == (1e-3, "constant", 16, "fp32")


def test_padded_batch_replies_equal_one_by_one(tiny_model, tokenizer):
    conversations = toy_conversations("last_word", "held-out", 3) + toy_conversations("remember", "held-out", 2)
    together = generate_replies(tiny_model, tokenizer, conversations, max_new_tokens=6)
    alone = [generate_replies(tiny_model, tokenizer, [c], max_new_tokens=6)[0] for c in conversations]
    assert together == alone
    assert [r["expected"] for r in together] == [c["messages"][-1]["text"] for c in conversations]
    metrics = reply_metrics(tiny_model, tokenizer, conversations, max_new_tokens=6)
    assert metrics == {"exact_match": 0.0, "stop_rate": sum(r["stopped"] for r in alone) / 5}


def test_replies_need_a_final_reply(tiny_model, tokenizer):
    with pytest.raises(ValueError, match="no conversations"):
        generate_replies(tiny_model, tokenizer, [])
    prompt_only = {"id": "q", "messages": [{"role": "prompter", "text": "Hi"}]}
    with pytest.raises(ValueError, match="conversation 'q': the last message must be the assistant's reply"):
        generate_replies(tiny_model, tokenizer, [prompt_only])


def test_the_command_line_trains_a_toy_task(tmp_path, capsys):
    import json

    from sft_utils.train.cli import load_data, main, parse_args

    args = parse_args(["--data", "toy:facts", "--steps", "3"])
    assert (args.config.lr, args.config.lr_schedule, args.config.batch_size, args.config.steps) == (
        1e-3,
        "constant",
        16,
        3,
    )
    train_set, valid_set, source = load_data(args)
    assert source.startswith("toy task facts") and len(train_set) == 4000 and len(valid_set) == 40  # each once
    argv = ["--data", "toy:facts", "--steps", "3", "--eval-every", "3", "--output-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["eval_step"] == [0, 3] and len(history["exact_match"]) == len(history["stop_rate"]) == 2
    assert history["config"]["lr_schedule"] == "constant"
    assert "held-out exact match" in capsys.readouterr().out


def test_the_command_line_names_an_unknown_toy_task(capsys):
    from sft_utils.train.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", "toy:nope"])
    assert (
        "--data toy:nope: unknown toy task; tasks: last_word, copy, reverse, remember, facts" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("weight", "loss", "message"),
    [
        (float("nan"), "masked", "prompt_loss_weight must be a number from 0 to 1"),
        (-1.0, "masked", "prompt_loss_weight must be a number from 0 to 1"),
        ("0.5", "masked", "prompt_loss_weight must be a number from 0 to 1"),
        (0.5, "plain", "already trains every token"),
    ],
)
def test_make_collator_checks_the_weight(tokenizer, weight, loss, message):
    with pytest.raises(ValueError, match=message):
        make_collator(loss, tokenizer, prompt_loss_weight=weight)


def test_masked_loss_sum_refuses_inconsistent_weighted_batches(tiny_model, tokenizer, examples):
    batch = make_collator("masked", tokenizer, prompt_loss_weight=0.5)(examples)
    with pytest.raises(ValueError, match="prompt_masks overlap label_masks"):
        masked_loss_sum(tiny_model, batch | {"prompt_masks": batch["prompt_masks"] | batch["label_masks"]})
    without = {k: v for k, v in batch.items() if k != "prompt_masks"}
    with pytest.raises(ValueError, match="needs prompt_masks"):
        masked_loss_sum(tiny_model, without)
    with pytest.raises(ValueError, match="from 0 to 1"):
        masked_loss_sum(tiny_model, batch | {"prompt_loss_weight": 2.0})


def test_replies_refuse_the_wrong_kind_of_input(tiny_model, tokenizer):
    (conversation,) = toy_conversations("copy", "train", 1)
    with pytest.raises(TypeError, match="must be a list of conversations, got one dict"):
        generate_replies(tiny_model, tokenizer, conversation)
    with pytest.raises(ValueError, match="conversation 0: expected a dict with a 'messages' list"):
        generate_replies(tiny_model, tokenizer, [{"id": "x", "msgs": []}])
    for setting in ({"batch_size": -1}, {"max_new_tokens": 0}, {"max_new_tokens": 2.5}):
        with pytest.raises(ValueError, match="must be an int >= 1"):
            generate_replies(tiny_model, tokenizer, [conversation], **setting)
    with pytest.raises(TypeError, match="chat_format must be a ChatFormat"):
        generate_replies(tiny_model, tokenizer, [conversation], chat_format="open_assistant")
