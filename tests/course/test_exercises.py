"""The notebooks' exercises: solutions accepted, typical mistakes rejected with the matching hint."""

import importlib.util
import math
import re

import nbformat
import pytest
import torch

import sft_utils
from sft_utils import course_data_path, exercises, load_conversations, shift_for_next_token, tokenize_conversation
from sft_utils.course.exercises import CORRECT, UNANSWERED, WRONG, verdict
from sft_utils.course.notebooks import NOTEBOOK_DIR, course_notebooks
from sft_utils.train import masked_loss_sum

SOLUTIONS = NOTEBOOK_DIR / "solutions"
CHECK_CALL = re.compile(r"exercises\.check\(\s*[\"'](\d\d[a-z]?\.\d+)[\"']")


def solution(exercise_id: str):
    notebook, number = exercise_id.split(".")
    spec = importlib.util.spec_from_file_location(f"s{notebook}", SOLUTIONS / f"s{notebook}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, f"ex_{notebook}_{number}")()


def hint(exercise_id, answer) -> str:
    result = verdict(exercise_id, answer)
    assert result.status == WRONG, result
    return result.message


def checked_ids(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [m for cell in nb.cells if cell.cell_type == "code" for m in CHECK_CALL.findall(cell.source)]


@pytest.mark.parametrize("exercise_id", sorted(exercises.EXERCISES))
def test_solution_is_accepted(exercise_id):
    result = verdict(exercise_id, solution(exercise_id))
    assert result.status == CORRECT, result


@pytest.mark.parametrize("exercise_id", sorted(exercises.EXERCISES))
def test_placeholder_is_not_answered_yet_and_odd_answers_do_not_raise(exercise_id, capsys):
    assert verdict(exercise_id, None).status == UNANSWERED
    exercises.check(exercise_id, None)
    assert capsys.readouterr().out.startswith(f"{exercise_id} … not answered yet")
    for odd in ("text", 3.5, [1, "a"], {"a": 1}, torch.zeros(2, 2)):
        assert verdict(exercise_id, odd).status == WRONG


@pytest.mark.parametrize("exercise_id", sorted(exercises.EXERCISES))
def test_the_solution_is_never_printed(exercise_id, capsys):
    answer = solution(exercise_id)
    for attempt in (None, "text", 0, [0]):
        exercises.check(exercise_id, attempt)
    printed = capsys.readouterr().out
    if isinstance(answer, str) or (isinstance(answer, list) and len(answer) > 3):
        assert str(answer) not in printed and repr(answer) not in printed


def test_every_notebook_has_two_or_three_exercises_and_every_check_exists():
    used = []
    for path in course_notebooks():
        ids = checked_ids(path)
        assert 2 <= len(ids) <= 3, (path.name, ids)
        assert all(i.startswith(path.name.split("_")[0] + ".") for i in ids), (path.name, ids)
        used += ids
    assert sorted(used) == sorted(exercises.EXERCISES)


def test_unknown_id_is_a_clear_error():
    with pytest.raises(KeyError, match="no exercise '3.1'"):
        verdict("3.1", [1])


def test_01_mistakes(tokenizer):
    right = solution("01.1")
    assert "missing" in hint("01.1", right.replace("<|system|>Answer in one sentence.<|endoftext|>", ""))
    assert "<|user|>" in hint("01.1", right.replace("<|prompter|>", "<|user|>"))
    assert "the prompter's too" in hint("01.1", right.replace("Hi!<|endoftext|>", "Hi!"))
    assert "learns to stop" in hint("01.1", right.removesuffix("<|endoftext|>"))
    prompt = solution("01.2")
    assert "whose turn" in hint("01.2", prompt.removesuffix("<|assistant|>"))
    assert "writes the reply" in hint("01.2", prompt + "<|endoftext|>")


def test_02_mistakes(tokenizer):
    assert "50280" in hint("02.1", tokenizer(exercises.TEXT_02_1)["input_ids"])
    assert "only the text" in hint("02.1", [50279, *solution("02.1"), 0])
    assert "swapped" in hint("02.2", (1, 0))
    assert "padding with <|endoftext|>" in hint("02.2", (0, 0))


def test_03_mistakes(tokenizer):
    mask = solution("03.1")
    assert mask == [0] * 8 + [1] * 6 + [0] * 7 + [1] * 7  # memo-hello: 4 messages
    assert "trains the prompter" in hint("03.1", [1 - m for m in mask])
    assert "shifted by one" in hint("03.1", [0, *mask[:-1]])
    assert "shifted by one" in hint("03.1", [*mask[1:], 0])
    assert "step 4" in hint("03.1", mask[1:])
    assert "plain causal-LM SFT" in hint("03.1", [True] * len(mask))
    no_marker = mask.copy()
    no_marker[8] = no_marker[21] = 0  # the two <|assistant|> markers
    assert "start and to stop" in hint("03.1", no_marker)
    assert "expected 28 values" in hint("03.1", mask + [0, 0])
    assert verdict("03.1", torch.tensor(mask, dtype=torch.bool)).status == CORRECT
    trained = solution("03.2")
    riddle = next(c for c in sft_utils.load_conversations(sft_utils.course_data_path()) if c["id"] == "memo-riddle")
    total = len(sft_utils.tokenize_conversation(riddle["messages"], tokenizer)["input_ids"])
    assert "untrained" in hint("03.2", total - trained)
    assert "every token" in hint("03.2", total)
    assert "start and to stop" in hint("03.2", trained - 2 * 3)  # 3 replies, marker and <|endoftext|> each


def test_04_mistakes(tokenizer):
    targets, labels = solution("04.1"), solution("04.3")
    hello = tokenize_conversation(load_conversations(course_data_path())[1]["messages"], tokenizer)
    label_masks = hello["label_mask"][1:]
    input_ids = [50279, *targets]
    assert "copy its input" in hint("04.1", input_ids)
    assert "input side" in hint("04.1", input_ids[:-1])
    assert "shifted twice" in hint("04.3", [t if m else -100 for t, m in zip(targets, label_masks)])
    assert "0 is <|endoftext|>" in hint("04.3", [0 if x == -100 else x for x in labels])
    assert "plain SFT" in hint("04.3", input_ids)
    assert labels.count(-100) == 15 and len(labels) == 28
    assert "expected 27 targets" in hint("04.1", targets[:5])
    assert "expected 28 labels (one per token: not shifted)" in hint("04.3", [1, 2])


def test_05_mistakes():
    assert solution("05.1") == (4, 37, 50304)
    assert "padded beyond len(tokenizer)" in hint("05.1", (4, 37, 50282))
    assert "hidden state" in hint("05.1", (4, 37, 128))
    assert verdict("05.1", torch.Size([4, 37, 50304])).status == CORRECT
    assert solution("05.2") == pytest.approx(3.2967, abs=1e-4)
    assert "bfloat16" in hint("05.2", 1.648)
    assert "4 bytes" in hint("05.2", 0.824)
    assert "GiB" in hint("05.2", 3.07)


def test_06_mistakes():
    batch = exercises.inputs("06.1")
    logits, targets, mask = batch["logits"], batch["targets"], batch["label_masks"]
    # An independent reference: transformers' convention with -100 where not trained.
    reference = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.where(mask, targets, -100).flatten())
    assert solution("06.1") == pytest.approx(reference.item(), rel=1e-6)
    assert verdict("06.1", reference).status == CORRECT
    unmasked = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert "padding and prompt included" in hint("06.1", unmasked.item())
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(2, 7)
    real = batch["attention_mask"].bool()
    assert "plain SFT" in hint("06.1", nll[real].mean().item())
    assert "the sum" in hint("06.1", nll[mask].sum().item())
    assert "dilute" in hint("06.1", (nll * mask).sum().item() / 14)
    assert "short replies" in hint("06.1", (nll * mask).sum(1).div(mask.sum(1)).mean().item())
    shifted = torch.zeros_like(mask)
    shifted[:, 1:] = mask[:, :-1]
    assert "shifted by one" in hint("06.1", nll[shifted].mean().item())
    assert solution("06.2") == pytest.approx(50304)
    assert "exp(loss)" in hint("06.2", math.log(50304))
    assert "1 / p" in hint("06.2", 1 / 50304)


def _accumulate(weight):
    """A learner's accumulation whose micro-batch i gets weight(sum_i, count_i, total, k) on its summed loss."""

    def accumulate(model, micro_batches):
        total, k = sum(int(b["label_masks"].sum()) for b in micro_batches), len(micro_batches)
        loss = 0.0
        for batch in micro_batches:
            loss_sum, count = masked_loss_sum(model, batch)
            (loss_sum * weight(count, total, k)).backward()
            loss += loss_sum.item() * weight(count, total, k)
        return loss

    return accumulate


@pytest.mark.parametrize(
    ("weight", "expected_hint"),
    [
        (lambda n, total, k: 1 / (k * n), "averages the micro-batch means"),
        (lambda n, total, k: 1 / n, "each micro-batch's mean, added up"),
        (lambda n, total, k: 1.0, "never divided"),
        (lambda n, total, k: 1 / k, "divided by the number of micro-batches"),
        (lambda n, total, k: 0.5 / total, "summed loss (masked_loss_sum) divided by the step's total count"),
    ],
)
def test_07_1_typical_accumulation_mistakes(weight, expected_hint):
    assert expected_hint in hint("07.1", _accumulate(weight))


@pytest.mark.parametrize(
    ("loss", "expected_hint"),
    [
        (lambda nll, a, p, w: (nll[a].sum() + w * nll[p].sum()) / (a.sum() + p.sum()), "needs a weighted count"),
        (lambda nll, a, p, w: (w * nll[a].sum() + nll[p].sum()) / (w * a.sum() + p.sum()), "belongs to the prompt"),
        (lambda nll, a, p, w: nll[a].mean(), "the masked loss whatever w is"),
        (lambda nll, a, p, w: nll[a | p].mean(), "plain SFT's mean whatever w is"),
        (lambda nll, a, p, w: (nll[a].sum() + w * nll[p].sum()) / a.sum(), "divide by count + w × count"),
    ],
)
def test_07_2_typical_weighting_mistakes(loss, expected_hint):
    assert expected_hint in hint("07.2", loss)


def test_07_1_right_gradients_wrong_loss_and_no_backward():
    right = solution("07.1")
    assert "return the step's loss" in hint("07.1", lambda model, micro: right(model, micro) * 2)
    assert "no gradient reached the weights" in hint("07.1", lambda model, micro: 1.0)


def test_06b_1_typical_mistakes():
    """Zephyr's memo-hello-like conversations: each mistake is one part of a message trained or left out."""
    import dataclasses

    right = solution("06b.1")
    zephyr = exercises.ZEPHYR
    tokenizer = sft_utils.load_tokenizer(chat_format=zephyr, verbose=False)
    assistant, end, newline = tokenizer.convert_tokens_to_ids(["<|assistant|>", "</s>"]) + [187]

    def changed(positions):
        """``right`` with the mask also set (or cleared, for </s>) at tokens chosen by ``positions``."""

        def mask(ids):
            ours = right(ids)
            for t in positions(ids):
                ours[t] = 1 - ours[t]
            return ours

        return mask

    after = lambda ids, token, step: [t + step for t, i in enumerate(ids) if i == token and t + step < len(ids)]
    markers = lambda ids: after(ids, assistant, 0)
    header = lambda ids: after(ids, assistant, 0) + after(ids, assistant, 1)
    ends = lambda ids: [t for t in after(ids, end, 0) if right(ids)[t]]
    footers = lambda ids: [t + 1 for t in ends(ids) if t + 1 < len(ids) and ids[t + 1] == newline]
    assert "the prompt already holds" in hint("06b.1", changed(markers))
    assert "the model reads it, never writes it" in hint("06b.1", changed(header))
    assert "learns to stop" in hint("06b.1", changed(ends))
    assert "generation stops at </s>" in hint("06b.1", changed(footers))
    whole_messages = changed(lambda ids: header(ids) + footers(ids))
    assert "Open-Assistant's rule" in hint("06b.1", whole_messages)
    hello = next(c for c in load_conversations(course_data_path()) if c["id"] == "memo-hello")["messages"]
    example = tokenize_conversation(hello, tokenizer, chat_format=zephyr)
    assert right(example["input_ids"]) == [int(m) for m in example["label_mask"]]
    assert right(example["input_ids"]) == [0] * 12 + [1] * 5 + [0] * 12 + [1] * 6 + [0]  # 2 replies, 4 + 5 text
    oa_like = dataclasses.replace(zephyr, train_marker=True, train_header=True, train_footer=True)
    assert example["input_ids"] == tokenize_conversation(hello, tokenizer, chat_format=oa_like)["input_ids"]
    assert "user's and system's" in hint("06b.1", lambda ids: [1 - m for m in whole_messages(ids)])
    assert "raised ZeroDivisionError" in hint("06b.1", lambda ids: 1 / 0)


def test_06b_2_mistakes():
    assert solution("06b.2") == 50304 - 50282 == 22
    assert "before the course added its five" in hint("06b.2", 27)
    assert "every row" in hint("06b.2", 50304)
    assert "already have a row" in hint("06b.2", 50282)
    assert "compare the two" in hint("06b.2", 0)


def test_08_mistakes():
    assert solution("08.1") == 100
    assert "number of micro-batches" in hint("08.1", 4) and "too large" in hint("08.1", 4)
    assert "mean count" in hint("08.1", 25)
    assert solution("08.2") == 50280
    assert "closes the prompter" in hint("08.2", 0)
    assert "prompter's marker" in hint("08.2", 50279)


def test_the_06_inputs_are_fixed_and_padded():
    batch = exercises.inputs("06.1")
    assert batch["logits"].shape == (2, 7, 11) and batch["logits"].dtype == torch.float32
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert batch["targets"][1, 4:].tolist() == [1, 1, 1]  # the pad id on padded targets
    assert not (batch["label_masks"] & ~batch["attention_mask"].bool()).any()  # padding is never trained
    assert torch.equal(batch["logits"], exercises.inputs.__wrapped__("06.1")["logits"])  # same on every call


def test_numpy_and_tensor_answers_are_read_as_numbers_and_lists():
    """np.sum(mask) is an np.int64 and a float32 loss an np.float32: before, both were 'expected a number'."""
    import numpy as np

    trained, mask = solution("03.2"), solution("03.1")
    for answer in (
        np.int64(trained),
        np.float32(trained),
        np.array(trained),
        np.array([trained]),
        torch.tensor(trained),
    ):
        assert verdict("03.2", answer).status == CORRECT, (type(answer), answer)
    for answer in (np.array(mask), np.array(mask, dtype=bool), [np.int64(m) for m in mask], torch.tensor(mask)):
        assert verdict("03.1", answer).status == CORRECT, (type(answer), answer)
    loss = solution("06.1")
    assert verdict("06.1", np.float32(loss)).status == CORRECT
    assert verdict("06.1", np.array([loss, loss])).status == WRONG  # two numbers are not one loss
    # A wrong kind is described as given, not as the list it was turned into.
    assert "got Tensor" in hint("03.1", torch.tensor(mask).float())


def test_02_3_typical_mistakes(tokenizer):
    from sft_utils import format_conversation

    eos = tokenizer.eos_token_id

    def encode(text_ids, marker=True, end=True):
        def encode_messages(messages, tok):
            ids = []
            for m in messages:
                ids += [tok.convert_tokens_to_ids(f"<|{m['role']}|>")] * marker + text_ids(tok, m["text"]) + [eos] * end
            return ids

        return encode_messages

    split = lambda tok, text: tok(text, split_special_tokens=True)["input_ids"]
    whole = lambda messages, tok: tok(format_conversation(messages))["input_ids"]
    assert "became a role token: encode each text on its own" in hint("02.3", whole)
    assert "split_special_tokens=True" in hint("02.3", encode(lambda tok, t: tok(t)["input_ids"]))
    assert "ends with <|endoftext|>" in hint("02.3", encode(split, end=False))
    assert "opens with its role's marker" in hint("02.3", encode(split, marker=False))


def test_03_3_typical_mistakes():
    assert "the assistant's are trained" in hint("03.3", lambda idx, roles: [int(roles[i] != "assistant") for i in idx])
    assert "system message first shifts the parity" in hint("03.3", lambda idx, roles: [i % 2 for i in idx])
    assert "trains every token" in hint("03.3", lambda idx, roles: [1] * len(idx))


def test_06_3_typical_mistakes():
    from sft_utils.steps.loss import per_token_nll

    nll = per_token_nll
    assert "averages over every position" in hint("06.3", lambda lo, t, m: nll(lo, t).mean())
    assert "not by B × T" in hint("06.3", lambda lo, t, m: (nll(lo, t) * m).sum() / m.numel())
    assert "divide the sum by the number" in hint("06.3", lambda lo, t, m: (nll(lo, t) * m).sum())
    per_example = lambda lo, t, m: torch.stack([nll(lo, t)[b][m[b]].mean() for b in range(len(m))]).mean()
    assert "mean of per-example means" in hint("06.3", per_example)
    assert "raised ZeroDivisionError" in hint("06.3", lambda lo, t, m: 1 / 0)


def _shift(ids_from, targets_from, mask_from):
    def shift(example):
        ids, mask = example["input_ids"], example["label_mask"]
        return {"input_ids": ids_from(ids), "targets": targets_from(ids), "label_masks": mask_from(mask)}

    return shift


def test_04_2_typical_mistakes():
    assert "move with the targets" in hint("04.2", _shift(lambda i: i[:-1], lambda i: i[1:], lambda m: m[:-1]))
    assert "learn to copy its input" in hint("04.2", _shift(lambda i: i[:-1], lambda i: i[:-1], lambda m: m[1:]))
    assert "shifted the wrong way" in hint("04.2", _shift(lambda i: i[1:], lambda i: i[:-1], lambda m: m[:-1]))
    assert "return a dict with input_ids, targets and label_masks" in hint("04.2", lambda e: e["input_ids"][1:])
    with_extra = lambda e: shift_for_next_token(e) | {"note": 1}
    assert verdict("04.2", with_extra).status == CORRECT  # extra keys are fine


def test_05_3_typical_mistakes():
    assert "projects every position" in hint("05.3", lambda h, w, m: h @ w.t())
    assert "raised RuntimeError: mat1 and mat2 shapes cannot be multiplied" in hint("05.3", lambda h, w, m: h[m] @ w)
    assert "untrained rows" in hint("05.3", lambda h, w, m: h[~m] @ w.t())


def test_08_3_padding_by_id_is_caught():
    from sft_utils import AssistantOnlyCollator

    def by_id(examples, pad_id):
        batch = AssistantOnlyCollator(pad_id).pad(examples)
        return batch | {
            "attention_mask": (batch["input_ids"] != pad_id).long(),
            "label_mask": batch["label_mask"] & (batch["input_ids"] != pad_id),
        }

    assert "padding found by id" in hint("08.3", by_id)
    assert verdict("08.3", lambda examples, pad_id: AssistantOnlyCollator(pad_id).pad(examples)).status == CORRECT
