"""The toy world: deterministic tasks, a split held out by construction, words of one token each."""

import pytest

from sft_utils.data.toy import CITIES, PEOPLE, TASKS, WORDS, held_out_size, toy_conversations
from sft_utils.steps.format import normalize_messages
from sft_utils.steps.mask import tokenize_conversation


def prompt_list(conversations):
    return ["\n".join(m["text"] for m in c["messages"] if m["role"] == "prompter") for c in conversations]


def prompts(conversations):
    return set(prompt_list(conversations))


@pytest.mark.parametrize("task", list(TASKS))
def test_held_out_prompts_never_occur_in_training(task):
    n = 200 if task != "facts" else 40  # facts has exactly 40: one phrasing per person
    train, held_out = toy_conversations(task, "train", 3000), toy_conversations(task, "held-out", n)
    assert not prompts(train) & prompts(held_out)
    assert len(prompts(held_out)) == n


@pytest.mark.parametrize(
    ("task", "size"), [("last_word", 64), ("copy", 64), ("reverse", 64), ("remember", 64), ("facts", 40)]
)
def test_the_evaluated_held_out_set_asks_each_prompt_once(task, size):
    assert held_out_size(task) == size
    for seed in (0, 1):
        held_out = prompt_list(toy_conversations(task, "held-out", size, seed=seed))
        assert len(held_out) == len(set(held_out)) == size


def test_facts_held_out_set_is_every_held_out_question_once():
    held_out = toy_conversations("facts", "held-out", 40)
    people = [c["messages"][1]["text"].split(" lives in ")[0] for c in held_out]
    assert sorted(people) == sorted(PEOPLE)  # each person's held-out question exactly once
    other_seed = toy_conversations("facts", "held-out", 40, seed=7)
    assert prompts(other_seed) == prompts(held_out) and prompt_list(other_seed) != prompt_list(held_out)
    with pytest.raises(ValueError, match="'facts' has 40 held-out prompts.*at most 40, got 41"):
        toy_conversations("facts", "held-out", 41)
    assert len(toy_conversations("facts", "train", 500)) == 500  # training conversations may repeat


@pytest.mark.parametrize("task", list(TASKS))
def test_same_arguments_same_conversations_other_seed_others(task):
    first = toy_conversations(task, "train", 20, seed=3)
    assert first == toy_conversations(task, "train", 20, seed=3)
    assert first != toy_conversations(task, "train", 20, seed=4)
    for conversation in first:  # every conversation is valid in the course's format
        normalize_messages(conversation["messages"], conversation_id=conversation["id"])


def test_every_word_is_one_token(tokenizer):
    for word in WORDS + PEOPLE + CITIES:
        assert len(tokenizer(" " + word)["input_ids"]) == 1, word
    for word in WORDS:
        assert len(tokenizer(word)["input_ids"]) == 1, word


def test_last_word_reply_and_mask(tokenizer):
    (conversation,) = toy_conversations("last_word", "train", 1)
    prompt, reply = (m["text"] for m in conversation["messages"])
    words = prompt.removeprefix("Words: ").removesuffix(". Which word came last?").split()
    assert 8 <= len(words) <= 16
    assert reply == f"The last word was {words[-1]}."
    example = tokenize_conversation(conversation["messages"], tokenizer)
    trained = [i for i, m in zip(example["input_ids"], example["label_mask"], strict=True) if m]
    # <|assistant|>, the reply's tokens, <|endoftext|>: the course's convention
    assert trained == [50280, *tokenizer(reply)["input_ids"], 0]


def test_copy_reverse_remember_replies():
    (copy,) = toy_conversations("copy", "train", 1)
    (reverse,) = toy_conversations("reverse", "train", 1)
    (remember,) = toy_conversations("remember", "held-out", 1)
    assert copy["messages"][1]["text"] == copy["messages"][0]["text"].removeprefix("Repeat these words: ")
    words = reverse["messages"][0]["text"].removeprefix("Reverse these words: ").split()
    assert reverse["messages"][1]["text"] == " ".join(words[::-1])
    first, _, second, answer = (m["text"] for m in remember["messages"])
    word = first.removeprefix("Remember this word: ").removesuffix(".")
    assert answer == f"The word was {word}." and word not in second.split(": ", 1)[0]


def test_facts_hold_out_one_phrasing_per_person():
    held_out = toy_conversations("facts", "held-out", 40)
    train = toy_conversations("facts", "train", 3000)
    assert len(prompts(held_out)) == len(PEOPLE)
    assert len(prompts(train)) == 4 * len(PEOPLE)
    # every held-out fact is taught in training, in other words
    assert {c["messages"][1]["text"] for c in held_out} <= {c["messages"][1]["text"] for c in train}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "train", 1), "unknown toy task 'nope'"),
        (("copy", "test", 1), "split must be one of train, held-out"),
        (("copy", "train", 0), "n must be an int >= 1"),
        (("copy", "train", True), "n must be an int >= 1"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        toy_conversations(*args)


@pytest.mark.parametrize(("args", "kwargs"), [((["copy"], "train", 1), {}), (("copy", "train", 1), {"seed": None})])
def test_names_and_seeds_of_the_wrong_kind(args, kwargs):
    with pytest.raises((TypeError, ValueError), match="unknown toy task|seed must be an int"):
        toy_conversations(*args, **kwargs)
