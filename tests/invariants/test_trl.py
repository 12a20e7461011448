"""TRL's SFT preprocessing with assistant-only loss trains the same tokens as sft_utils.

TRL (``SFTConfig(assistant_only_loss=True)``) tokenizes each conversation with the tokenizer's chat
template and ``return_assistant_tokens_mask=True``, sets ``labels`` to -100 outside the mask, and lets
the model shift. With the template that ``load_tokenizer`` installs (sft_utils/chat_template.jinja) that
is exactly the ``"labels"`` convention of ``AssistantOnlyCollator``. Where they differ, precisely:

* typed markers: TRL renders a string and tokenizes it, so ``<|assistant|>`` typed by a user becomes a
  role id (see test_chat_template.py); sft_utils keeps it as text;
* truncation: both keep the first ``max_length`` tokens (TRL's ``truncation_mode="keep_start"``), so
  the ids and labels agree. An example whose trained tokens are all cut: TRL 1.16 drops it from the
  data set (a ``dataset.filter``; only its progress bar says so, no count); sft_utils warns naming it,
  and ``tokenize_conversations(…, drop_untrained=True)`` drops it and lists it in its report;
* no assistant message at all: TRL raises RuntimeError, sft_utils ConversationError.

The same comparison for ChatML and Llama 3, on every course and shared conversation: test_formats.py.
"""

import pytest

# skip (saying why) where trl cannot import (a mismatched dependency)
for module in ("trl", "datasets", "trl.trainer.sft_trainer"):
    pytest.importorskip(module, exc_type=ImportError)

import torch

from sft_utils import AssistantOnlyCollator, tokenize_conversation, tokenize_conversations
from sft_utils.scale.trl_route import chat_rows, trl_trainer

NAMES = ["memo-hello", "capital-single", "haiku-system", "python-code", "chinese-tea"]


def trl_batch(tokenizer, conversations, max_length=None, kept=None):
    """TRL's own preprocessing and collator on these conversations, as the ecosystem's ``messages``."""
    rows = chat_rows([{"messages": c} for c in conversations])
    trainer = trl_trainer(rows, tokenizer, assistant_only_loss=True, max_length=max_length)
    assert len(trainer.train_dataset) == (len(conversations) if kept is None else kept)
    return trainer.data_collator(list(trainer.train_dataset))


@pytest.fixture(scope="module")
def named(course_conversations):
    by_id = {c["id"]: c["messages"] for c in course_conversations}
    return [by_id[n] for n in NAMES]


def test_trl_trains_the_same_tokens(tokenizer, named):
    examples = [tokenize_conversation(m, tokenizer) for m in named]
    ours = AssistantOnlyCollator(tokenizer.pad_token_id, convention="labels")(examples)
    theirs = trl_batch(tokenizer, named)
    assert torch.equal(theirs["input_ids"], ours["input_ids"])  # both pad with <|padding|> (1), on the right
    assert torch.equal(theirs["labels"], ours["labels"])
    assert int((theirs["labels"] != -100).sum()) == sum(sum(e["label_mask"]) for e in examples)


def test_trl_truncates_like_sft_utils_and_drops_an_emptied_example(tokenizer, named):
    max_length = 23  # cuts four replies in the middle; haiku-system (system + prompt = 23 tokens) loses its reply
    conversations = [{"id": n, "messages": m} for n, m in zip(NAMES, named)]
    examples, report = tokenize_conversations(conversations, tokenizer, max_length=max_length, drop_untrained=True)
    assert report.dropped == ["haiku-system"] and len(report.replies_cut) == 4
    ours = AssistantOnlyCollator(tokenizer.pad_token_id, convention="labels")(examples)
    theirs = trl_batch(tokenizer, named, max_length=max_length, kept=4)  # TRL kept 4 of the 5 as well
    assert torch.equal(theirs["input_ids"], ours["input_ids"])
    assert torch.equal(theirs["labels"], ours["labels"])
