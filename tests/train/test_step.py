"""The first fine-tuning loop: the masked loss goes down."""

import pytest
import torch

from sft_utils import AssistantOnlyCollator, MaskedCrossEntropyLoss, tokenize_conversation
from sft_utils.train import evaluate, masked_loss_sum, train_step


@pytest.fixture
def batches(tokenizer, course_conversations):
    collate = AssistantOnlyCollator(tokenizer.pad_token_id)
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations]
    return [collate(examples[:5]), collate(examples[5:8])]


def test_evaluate_weights_by_trained_tokens_not_by_batch(tiny_model, batches):
    sums, counts = zip(*(masked_loss_sum(tiny_model, b) for b in batches))
    assert counts[0] != counts[1]
    expected = sum(s.item() for s in sums) / sum(counts)
    assert evaluate(tiny_model, batches) == pytest.approx(expected, rel=1e-6)
    means = [s.item() / c for s, c in zip(sums, counts)]
    assert evaluate(tiny_model, batches) != pytest.approx(sum(means) / 2, rel=1e-7)


def test_masked_loss_sum_matches_the_loss_module(tiny_model, batches):
    batch = batches[0]
    total, count = masked_loss_sum(tiny_model, batch)
    with torch.no_grad():
        logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert count == int(batch["label_masks"].sum())
    assert total.item() / count == pytest.approx(
        MaskedCrossEntropyLoss()(logits, batch["targets"], batch["label_masks"]).item(), rel=1e-6
    )


def test_training_steps_lower_the_assistant_only_loss(batches):
    from transformers import GPTNeoXForCausalLM

    from sft_utils import pythia_config

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(pythia_config("pythia-14m"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = evaluate(model, batches)
    losses = [train_step(model, batches[step % 2], optimizer) for step in range(20)]
    after = evaluate(model, batches)
    assert before > 10.0 and after < before - 2.0, (before, after)
    assert losses[-1] < losses[0]


def test_a_labels_batch_or_a_raw_example_is_refused_clearly(tiny_model, tokenizer, course_conversations):
    examples = [tokenize_conversation(c["messages"], tokenizer) for c in course_conversations[:2]]
    labels_batch = AssistantOnlyCollator(tokenizer.pad_token_id, convention="labels")(examples)
    optimizer = torch.optim.AdamW(tiny_model.parameters())
    with pytest.raises(ValueError, match="expected a batch from AssistantOnlyCollator"):
        train_step(tiny_model, labels_batch, optimizer)
    with pytest.raises(ValueError, match="expected a batch from AssistantOnlyCollator"):
        evaluate(tiny_model, [examples[0]])
    with pytest.raises(TypeError, match="not one batch"):
        evaluate(tiny_model, AssistantOnlyCollator(tokenizer.pad_token_id)(examples))


def test_no_trained_token(tokenizer, tiny_model):
    messages = [{"role": "prompter", "text": "Hello there"}, {"role": "assistant", "text": "Hi"}]
    with pytest.warns(UserWarning, match="left no trained token"):  # the reply is cut off entirely
        only_prompt = tokenize_conversation(messages, tokenizer, max_length=4)
    assert only_prompt["label_mask"] == [False] * 4
    batch = AssistantOnlyCollator(tokenizer.pad_token_id)([only_prompt])
    with pytest.raises(ValueError, match="no trained token in the evaluation batches"):
        evaluate(tiny_model, [batch])
    before = [p.detach().clone() for p in tiny_model.parameters()]
    optimizer = torch.optim.AdamW(tiny_model.parameters(), lr=1.0, weight_decay=0.5)
    assert train_step(tiny_model, batch, optimizer) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))
    tiny_model.eval()


@pytest.mark.parametrize(
    "call, problem",
    [
        (lambda m, b, o: __import__("sft_utils").train.train_step(m, [], o), "needs a batch"),
        (lambda m, b, o: __import__("sft_utils").train.train_step(m, b, o, max_grad_norm=0), "max_grad_norm must be"),
        (lambda m, b, o: __import__("sft_utils").train.evaluate(m, []), "no batches to evaluate"),
        (
            lambda m, b, o: __import__("sft_utils").train.train_step(m, {k: v.tolist() for k, v in b.items()}, o),
            "collate examples into a batch first",
        ),
    ],
    ids=["empty-list", "zero-clip", "evaluate-nothing", "lists-not-tensors"],
)
def test_bad_steps_are_refused_before_any_work(tiny_model, batches, call, problem):
    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in tiny_model.parameters()]
    with pytest.raises(ValueError, match=problem):
        call(tiny_model, batches[0], optimizer)
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))
