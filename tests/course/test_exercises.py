"""The notebooks' exercises: every correct formulation accepted, each known mistake rejected with its own hint.

The table ``CASES`` lists (exercise, answer, expected verdict, words the message must hold); the tests around
it check what the table cannot: no hint holds the solution's code, every notebook from 03 on asks for a
prediction, and the predict checks run the computation they judge (change its input and the answer moves).
"""

import ast
import functools
import importlib.util
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sft_utils
from sft_utils import exercises, load_conversations, shift_for_next_token, tokenize_conversation
from sft_utils.course.exercises import CORRECT, MODULES, UNANSWERED, WRONG, verdict
from sft_utils.course.notebooks import NOTEBOOK_DIR, course_notebooks
from sft_utils.train import masked_loss_sum

SOLUTIONS = NOTEBOOK_DIR / "solutions"
CHECK_CALL = re.compile(r"exercises\.check\(\s*[\"'](\d\d[a-z]?\.\d+)[\"']")


@functools.cache
def solution_module(notebook: str):
    spec = importlib.util.spec_from_file_location(f"s{notebook}", SOLUTIONS / f"s{notebook}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def solution(exercise_id: str):
    notebook, number = exercise_id.split(".")
    return getattr(solution_module(notebook), f"ex_{notebook}_{number}")()


def hint(exercise_id, answer) -> str:
    result = verdict(exercise_id, answer)
    assert result.status == WRONG, result
    return result.message


def checked_ids(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [m for cell in nb.cells if cell.cell_type == "code" for m in CHECK_CALL.findall(cell.source)]


def messages(conversation_id: str) -> list[dict]:
    return next(c["messages"] for c in load_conversations(sft_utils.course_data_path()) if c["id"] == conversation_id)


@functools.cache
def tokenizer():
    return sft_utils.load_tokenizer(verbose=False)


@functools.cache
def example(conversation_id: str) -> dict:
    return tokenize_conversation(messages(conversation_id), tokenizer())


# --- answers a learner might give, right and wrong ---------------------------------------------------------


def _riddle_ids():
    return example("memo-riddle")["input_ids"]


def _hello():
    return example("memo-hello")


def _project(variant):
    """05.3 answers: ``variant(hidden, weight, label_masks)``."""
    return variant


def _plain_loss_06_3(count_tokens=False):
    hello = _hello()
    shifted = shift_for_next_token(hello)
    reply = sum(hello["label_mask"]) if count_tokens else sum(shifted["label_masks"])
    total = len(hello["input_ids"]) if count_tokens else len(shifted["targets"])
    uniform = math.log(sft_utils.pythia_config("pythia-14m").vocab_size)
    return (reply * -math.log(0.9) + (total - reply) * uniform) / total


def _ce_06_1(dtype=torch.float32):
    batch = exercises.inputs("06.1")
    labels = torch.where(batch["label_masks"], batch["targets"], -100)
    return F.cross_entropy(batch["logits"].to(dtype).flatten(0, 1), labels.flatten(), ignore_index=-100)


def _accumulate_then_divide(model, micro_batches):
    """07.1 written another way: backward on the raw sums, then divide every gradient by the step's count."""
    total, loss = 0, 0.0
    for batch in micro_batches:
        loss_sum, count = masked_loss_sum(model, batch)
        loss_sum.backward()
        total += count
        loss += loss_sum.item()
    for p in model.parameters():
        p.grad /= total
    return loss / total


def _pad_with_pad_sequence(examples, pad_id):
    """08.3 written with torch's pad_sequence."""
    pad = torch.nn.utils.rnn.pad_sequence
    ids = pad([torch.tensor(e["input_ids"]) for e in examples], batch_first=True, padding_value=pad_id)
    attention = pad([torch.ones(len(e["input_ids"]), dtype=torch.long) for e in examples], batch_first=True)
    mask = pad([torch.tensor(e["label_mask"], dtype=torch.bool) for e in examples], batch_first=True)
    return {"input_ids": ids, "attention_mask": attention, "label_mask": mask}


def _shift(ids_from, targets_from, mask_from):
    def shift(example):
        ids, mask = example["input_ids"], example["label_mask"]
        return {"input_ids": ids_from(ids), "targets": targets_from(ids), "label_masks": mask_from(mask)}

    return shift


R = CORRECT  # rows that must be accepted

# (exercise, answer (a function of nothing, evaluated in the test), expected verdict, words the message holds)
CASES = [
    # 01: the string by hand, the generation prompt
    ("01.1", lambda: sft_utils.format_conversation(exercises.CHAT_01_1, system=exercises.SYSTEM_01_1), R, ""),
    ("01.1", lambda: solution("01.1").replace("<|system|>Answer in one sentence.<|endoftext|>", ""), WRONG, "missing"),
    ("01.1", lambda: solution("01.1").replace("<|prompter|>", "<|user|>"), WRONG, "no <|user|> marker"),
    ("01.1", lambda: solution("01.1").replace("Hi!<|endoftext|>", "Hi!"), WRONG, "the prompter's too"),
    ("01.1", lambda: solution("01.1").removesuffix("<|endoftext|>"), WRONG, "learns to stop"),
    ("01.1", lambda: solution("01.1").replace("><", ">\n<"), WRONG, "a space or newline"),
    ("01.1", lambda: "<|system|>hello", WRONG, "reread notebook 01"),
    ("01.2", lambda: sft_utils.format_conversation(exercises.CHAT_01_2, add_generation_prompt=True), R, ""),
    ("01.2", lambda: solution("01.2").removesuffix("<|assistant|>"), WRONG, "whose turn"),
    ("01.2", lambda: solution("01.2") + "<|endoftext|>", WRONG, "writes the reply"),
    ("01.2", lambda: solution("01.2").removesuffix("<|assistant|>") + "<|prompter|>", WRONG, "not the prompter's"),
    ("01.2", lambda: "<|prompter|>And 3 + 3?<|endoftext|><|assistant|>", WRONG, "whole conversation"),
    # 02: a typed marker, eos as pad, ids by hand
    ("02.1", lambda: tuple(solution("02.1")), R, ""),
    ("02.1", lambda: torch.tensor(solution("02.1")), R, ""),
    ("02.1", lambda: np.array(solution("02.1")), R, ""),
    ("02.1", lambda: sft_utils.load_tokenizer(verbose=False)(exercises.TEXT_02_1)["input_ids"], WRONG, "50280"),
    ("02.1", lambda: [50279, *solution("02.1"), 0], WRONG, "only the text"),
    ("02.1", lambda: [1, 2, 3], WRONG, "typed marker kept as plain text"),
    ("02.2", lambda: 6, R, "never be trained to stop"),
    ("02.2", lambda: np.int64(_riddle_ids().count(0)), R, ""),
    ("02.2", lambda: torch.tensor(6.0), R, ""),
    ("02.2", lambda: 0, WRONG, "every message closes"),
    ("02.2", lambda: 3, WRONG, "prompter's messages close with the same token"),
    ("02.2", lambda: 1, WRONG, "not only the last"),
    ("02.2", lambda: len(_riddle_ids()) - 6, WRONG, "would survive"),
    ("02.2", lambda: 7, WRONG, "which token closes every message"),
    ("02.3", lambda: lambda msgs, tok: tokenize_conversation(msgs, tok)["input_ids"], R, ""),
    ("02.3", lambda: lambda msgs, tok: tok(sft_utils.format_conversation(msgs))["input_ids"], WRONG, "typed markers"),
    # 03: the mask, a count, a system prompt
    ("03.1", lambda: torch.tensor(solution("03.1"), dtype=torch.bool), R, ""),
    ("03.1", lambda: np.array(solution("03.1"), dtype=bool), R, ""),
    ("03.1", lambda: [1 - m for m in solution("03.1")], WRONG, "trains the prompter"),
    ("03.1", lambda: [0, *solution("03.1")[:-1]], WRONG, "shifted by one"),
    ("03.1", lambda: [*solution("03.1")[1:], 0], WRONG, "shifted by one"),
    ("03.1", lambda: solution("03.1")[1:], WRONG, "step 4"),
    ("03.1", lambda: [1] * 28, WRONG, "plain causal-LM SFT"),
    ("03.1", lambda: [0 if t in (8, 21) else m for t, m in enumerate(solution("03.1"))], WRONG, "start and to stop"),
    ("03.1", lambda: solution("03.1") + [0, 0], WRONG, "expected 28 values"),
    ("03.1", lambda: [0] * 28, WRONG, "The memo's table"),
    ("03.2", lambda: 52, R, ""),
    ("03.2", lambda: 52.0, R, ""),
    ("03.2", lambda: 103, WRONG, "every token"),
    ("03.2", lambda: 51, WRONG, "Open-Assistant's collator"),  # the off-by-one of label_mask[-1] = False …
    ("03.2", lambda: 51, WRONG, "untrained tokens"),  # … and, on this conversation, also 103 - 52
    ("03.2", lambda: 52 - 6, WRONG, "start and to stop"),
    ("03.2", lambda: 52 - 3, WRONG, "start and to stop"),
    ("03.2", lambda: 60, WRONG, "count the tokens whose label_mask is True"),
    ("03.3", lambda: solution("03.3"), R, "its share falls"),
    ("03.3", lambda: 100 * solution("03.3"), R, ""),  # in percent
    ("03.3", lambda: round(solution("03.3"), 2), R, ""),  # a prediction to two digits
    ("03.3", lambda: 52 / 103, WRONG, "without the system prompt"),
    ("03.3", lambda: 52, WRONG, "that is a count"),
    ("03.3", lambda: 0.9, WRONG, "message 0 and is never trained"),
    # 04: targets, a broken mask, labels
    ("04.1", lambda: torch.tensor(solution("04.1")), R, ""),
    ("04.1", lambda: _hello()["input_ids"], WRONG, "copy its input"),
    ("04.1", lambda: _hello()["input_ids"][:-1], WRONG, "input side"),
    ("04.1", lambda: solution("04.1")[:5], WRONG, "expected 27 targets"),
    ("04.2", lambda: 5, R, "3 skipped"),
    ("04.2", lambda: 3, WRONG, "targets it skips"),
    ("04.2", lambda: 2, WRONG, "trains wrongly"),
    ("04.2", lambda: 6, WRONG, "after the last reply"),
    ("04.2", lambda: 0, WRONG, "one position off"),
    ("04.2", lambda: 9, WRONG, "reread notebook 04's appendix"),
    (
        "04.3",
        lambda: sft_utils.labels_from_label_mask(
            torch.tensor(_hello()["input_ids"]), torch.tensor(_hello()["label_mask"])
        ),
        R,
        "",
    ),
    (
        "04.3",
        lambda: [t if m else -100 for t, m in zip(solution("04.1"), _hello()["label_mask"][1:])],
        WRONG,
        "shifted twice",
    ),
    ("04.3", lambda: [0 if x == -100 else x for x in solution("04.3")], WRONG, "0 is <|endoftext|>"),
    ("04.3", lambda: _hello()["input_ids"], WRONG, "plain SFT"),
    (
        "04.3",
        lambda: [i if x == -100 else -100 for i, x in zip(_hello()["input_ids"], solution("04.3"))],
        WRONG,
        "other way round",
    ),
    ("04.3", lambda: [1, 2], WRONG, "expected 28 labels (one per token: not shifted)"),
    # 05: shape, the smallest model that outweighs its logits, select-then-project
    ("05.1", lambda: torch.Size([4, 37, 50304]), R, ""),
    ("05.1", lambda: [4, 37, 50304], R, ""),
    ("05.1", lambda: (4, 37, 50282), WRONG, "len(tokenizer)"),
    ("05.1", lambda: (4, 37, 128), WRONG, "hidden state"),
    ("05.1", lambda: (37, 4, 50304), WRONG, "batch comes first"),
    ("05.1", lambda: (4, 36, 50304), WRONG, "does not shift"),
    ("05.2", lambda: "pythia-1b", R, "4.0 GB"),
    ("05.2", lambda: "EleutherAI/pythia-1b", R, ""),
    ("05.2", lambda: " 1b", R, ""),
    ("05.2", lambda: "pythia-410m", WRONG, "take less memory"),
    ("05.2", lambda: "pythia-70m", WRONG, "take less memory"),
    ("05.2", lambda: "pythia-2.8b", WRONG, "compare bytes with bytes"),
    ("05.2", lambda: "gpt-2", WRONG, "expected a Pythia size"),
    ("05.2", lambda: 3.3, WRONG, "as a string"),
    ("05.3", lambda: lambda h, w, m: torch.einsum("nh,vh->nv", h[m], w), R, ""),
    ("05.3", lambda: lambda h, w, m: (w @ h[m].T).T, R, ""),
    ("05.3", lambda: lambda h, w, m: (h[m].double() @ w.double().T).float(), R, ""),
    ("05.3", lambda: lambda h, w, m: h[m].double() @ w.double().T, R, ""),
    ("05.3", lambda: lambda h, w, m: F.linear(h[m], w), R, ""),
    ("05.3", lambda: lambda h, w, m: torch.stack([h[b, t] @ w.T for b, t in m.nonzero().tolist()]), R, ""),
    ("05.3", lambda: lambda h, w, m: torch.masked_select(h, m.unsqueeze(-1)).view(-1, h.shape[-1]) @ w.T, R, ""),
    ("05.3", lambda: lambda h, w, m: h @ w.t(), WRONG, "projects every position"),
    ("05.3", lambda: lambda h, w, m: h[~m] @ w.t(), WRONG, "untrained rows"),
    ("05.3", lambda: lambda h, w, m: (h @ w.t()) * m.unsqueeze(-1), WRONG, "zeroes the untrained"),
    ("05.3", lambda: lambda h, w, m: (h[m].bfloat16() @ w.bfloat16().T).float(), WRONG, "bfloat16"),
    ("05.3", lambda: lambda h, w, m: h[m] @ w, WRONG, "raised RuntimeError"),
    ("05.3", lambda: lambda h, w, m: h[m] @ w.T + 1, WRONG, "two steps, in this order"),
    # 06: the loss by hand, a uniform perplexity, a broken mask
    ("06.1", lambda: _ce_06_1(), R, ""),
    ("06.1", lambda: _ce_06_1(torch.float64).item(), R, ""),
    ("06.1", lambda: np.float32(solution("06.1")), R, ""),
    (
        "06.1",
        lambda: F.cross_entropy(
            exercises.inputs("06.1")["logits"].flatten(0, 1), exercises.inputs("06.1")["targets"].flatten()
        ),
        WRONG,
        "padding and prompt included",
    ),
    ("06.1", lambda: -solution("06.1"), WRONG, "the sign"),
    ("06.1", lambda: 1.234, WRONG, "Building the loss in view"),
    ("06.2", lambda: 50304, R, ""),
    ("06.2", lambda: math.exp(math.log(50304)), R, ""),
    ("06.2", lambda: math.log(50304), WRONG, "loss in nats"),
    ("06.2", lambda: math.log2(50304), WRONG, "loss in bits"),
    ("06.2", lambda: 50282, WRONG, "len(tokenizer)"),
    ("06.2", lambda: 1 / 50304, WRONG, "each token's probability"),
    ("06.2", lambda: 2, WRONG, "reread the paragraph on perplexity"),
    ("06.3", lambda: _plain_loss_06_3(), R, "questions it cannot guess"),
    ("06.3", lambda: round(_plain_loss_06_3(), 2), R, ""),
    ("06.3", lambda: -math.log(0.9), WRONG, "assistant-only loss"),
    ("06.3", lambda: _plain_loss_06_3(count_tokens=True), WRONG, "counted tokens, not targets"),
    ("06.3", lambda: (-math.log(0.9) + math.log(50304)) / 2, WRONG, "each group weighs its count"),
    ("06.3", lambda: math.log(50304), WRONG, "untrained targets alone"),
    ("06.3", lambda: 1.0, WRONG, "every target now counts"),
    # 06b: Zephyr's mask (its mistakes below), ChatML's header trained
    ("06b.2", lambda: 19, R, "4 header tokens"),
    ("06b.2", lambda: 11, WRONG, "as it ships"),
    ("06b.2", lambda: 13, WRONG, "one token per reply"),  # the marker alone, or …
    ("06b.2", lambda: 13, WRONG, "the footer"),  # … the footer: both give 13 on memo-hello
    ("06b.2", lambda: 21, WRONG, "still untrained"),
    ("06b.2", lambda: 15, WRONG, "two replies"),
    ("06b.2", lambda: 17, WRONG, "ends with its newline"),
    ("06b.2", lambda: 30, WRONG, "count the tokens of one reply's header"),
    # 07: accumulation (mistakes below), the weighted loss, what w weighs
    ("07.1", lambda: _accumulate_then_divide, R, ""),
    ("07.1", lambda: lambda model, micro: 1.0, WRONG, "no gradient reached the weights"),
    ("07.1", lambda: lambda model, micro: solution("07.1")(model, micro) * 2, WRONG, "return the step's loss"),
    ("07.2", lambda: lambda nll, a, p, w: (nll[a].sum() + w * nll[p].sum()) / (a.sum() + w * p.sum()), R, ""),
    ("07.2", lambda: lambda nll, a, p, w: (nll * (a + w * p)).sum() / (a + w * p).sum(), R, ""),
    ("07.2", lambda: lambda nll, a, p, w: (nll[a].sum() + w * nll[p].sum()) / (a.sum() + p.sum()), WRONG, "count the"),
    (
        "07.2",
        lambda: lambda nll, a, p, w: (w * nll[a].sum() + nll[p].sum()) / (w * a.sum() + p.sum()),
        WRONG,
        "belongs to the prompt",
    ),
    ("07.2", lambda: lambda nll, a, p, w: nll[a].mean(), WRONG, "the masked loss whatever w is"),
    ("07.2", lambda: lambda nll, a, p, w: nll[a | p].mean(), WRONG, "plain SFT's mean whatever w is"),
    (
        "07.2",
        lambda: lambda nll, a, p, w: (nll[a].sum() + w * nll[p].sum()) / a.sum(),
        WRONG,
        "leaves the prompt's targets out",
    ),
    ("07.2", lambda: lambda nll, a, p, w: nll.mean() * w, WRONG, "at w = 0"),
    ("07.3", lambda: solution("07.3"), R, "of the weight"),
    ("07.3", lambda: 0.1 * 0.73 / (0.27 + 0.1 * 0.73), R, ""),  # predicted from the share of tokens
    ("07.3", lambda: 100 * solution("07.3"), R, ""),
    ("07.3", lambda: 0.1, WRONG, "w itself"),
    ("07.3", lambda: 0.72, WRONG, "plain SFT, w = 1"),
    ("07.3", lambda: 1 - solution("07.3"), WRONG, "the reply's share"),
    ("07.3", lambda: 0.5, WRONG, "each prompt target weighs w"),
    # 08: the divisor, LoRA's size, padding by length
    ("08.1", lambda: 100, R, ""),
    ("08.1", lambda: 4, WRONG, "number of micro-batches"),
    ("08.1", lambda: 25, WRONG, "mean count"),
    ("08.1", lambda: 1, WRONG, "without dividing"),
    ("08.1", lambda: 40, WRONG, "largest micro-batch"),
    ("08.1", lambda: 7, WRONG, "one big batch's mean loss"),
    ("08.1", lambda: "100", WRONG, "expected the divisor as one number"),
    ("08.2", lambda: 2_359_296, R, "2,359,296"),
    ("08.2", lambda: 2.36e6, R, ""),
    ("08.2", lambda: 98_304, WRONG, "pythia-14m's count"),
    ("08.2", lambda: 2 * 98_304, WRONG, "wider and deeper"),
    ("08.2", lambda: 12 * 98_304, WRONG, "the rank doubles too"),  # pythia-160m at r = 8, or …
    ("08.2", lambda: 12 * 98_304, WRONG, "more layers"),  # … r and the width without the depth: both 12 ×
    ("08.2", lambda: 4 * 98_304, WRONG, "also wider"),
    ("08.2", lambda: 2 * 36 * 2 * 98_304, WRONG, "not with its square"),
    ("08.2", lambda: 4 * 6 * 2 * 98_304, WRONG, "linearly with r"),
    ("08.2", lambda: 162_322_944, WRONG, "only its adapters"),
    ("08.2", lambda: 1_000_000, WRONG, "reread the LoRA paragraph"),
    ("08.3", lambda: _pad_with_pad_sequence, R, ""),
    ("08.3", lambda: lambda ex, pad_id: {k: v.tolist() for k, v in _pad_with_pad_sequence(ex, pad_id).items()}, R, ""),
    (
        "08.3",
        lambda: (
            lambda ex, pad_id: (
                _pad_with_pad_sequence(ex, pad_id)
                | {
                    "attention_mask": _pad_with_pad_sequence(ex, pad_id)["input_ids"].ne(pad_id).long(),
                    "label_mask": _pad_with_pad_sequence(ex, pad_id)["label_mask"]
                    & _pad_with_pad_sequence(ex, pad_id)["input_ids"].ne(pad_id),
                }
            )
        ),
        WRONG,
        "padding found by id",
    ),
    ("08.3", lambda: lambda ex, pad_id: _pad_with_pad_sequence(ex, pad_id + 1), WRONG, "notebook 04 pads"),
]


@pytest.mark.parametrize(
    ("exercise_id", "answer", "status", "words"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_each_answer_gets_its_verdict_and_its_hint(exercise_id, answer, status, words):
    result = verdict(exercise_id, answer())
    assert result.status == status, result
    assert words in result.message, result


def test_the_table_covers_every_exercise_right_and_wrong():
    statuses = {
        exercise_id: {status for e, _, status, _ in CASES if e == exercise_id} for exercise_id in exercises.EXERCISES
    }
    del statuses["06b.1"]  # its mistakes are built from the solution, in a test of their own below
    assert {e: s for e, s in statuses.items() if s != {CORRECT, WRONG}} == {}


@pytest.mark.parametrize("exercise_id", sorted(exercises.EXERCISES))
def test_solution_is_accepted(exercise_id):
    result = verdict(exercise_id, solution(exercise_id))
    assert result.status == CORRECT, result


@pytest.mark.parametrize("exercise_id", sorted(exercises.EXERCISES))
def test_placeholder_is_not_answered_yet_and_odd_answers_do_not_raise(exercise_id, capsys):
    assert verdict(exercise_id, None).status == UNANSWERED
    exercises.check(exercise_id, None)
    assert capsys.readouterr().out.startswith(f"{exercise_id} … not answered yet")
    for odd in ("text", 3.5, [1, "a"], {"a": 1}, torch.zeros(2, 2), float("nan")):
        message = hint(exercise_id, odd)
        assert not re.search(r"expected (.+) \(\1\)", message), message  # never "a number (a number)"


@pytest.mark.parametrize("exercise_id", sorted(exercises.EXERCISES))
def test_the_solution_is_never_printed(exercise_id, capsys):
    answer = solution(exercise_id)
    for attempt in (None, "text", 0, [0]):
        exercises.check(exercise_id, attempt)
    printed = capsys.readouterr().out
    if isinstance(answer, str) or (isinstance(answer, list) and len(answer) > 3):
        assert str(answer) not in printed and repr(answer) not in printed


# --- hints never hold the solution's code ----------------------------------------------------------------

# Formulas a hint must not state, beyond the code fragments read from the solutions.
FORMULAS = [
    "exp(",
    "ln(",
    "log(",
    "input_ids[1:]",
    "label_mask[1:]",
    "[label_masks]",
    "weight.T",
    "weight.t()",
    "vocab_size −",
    "/ len(",
    "sum(counts)",
    "== pad_id",
    "split_special_tokens=True",
    "-100 where",
]


def solution_fragments() -> set[str]:
    """Code fragments of every solution: each indexing or call with arguments (``hidden[label_masks]``,
    ``math.exp(loss)``), and each whole expression line, without comments."""
    fragments = set()
    for path in SOLUTIONS.glob("s*.py"):
        for line in path.read_text().splitlines():
            code = line.split("#")[0].strip()
            if not code or code.startswith(("def ", "import ", "from ", '"""', "return {")):
                continue
            fragments.update(re.findall(r"[\w.]+\[[^\]\[]+\]", code))
            fragments.update(m for m in re.findall(r"[\w.]+\([^()]+\)", code) if "(" in m)
            expression = code.removeprefix("return ").strip()
            if len(expression) > 12 and not expression.isidentifier():
                fragments.add(expression)
    # Names alone are fine in a hint (label_mask, input_ids); generic calls too.
    return {f for f in fragments if len(f) > 8 and not f.startswith(("sft_utils.load_tokenizer", "len(", "sum("))}


def hint_strings() -> list[str]:
    """Every string the exercise modules can show a learner (docstrings left out), f-strings' text included."""
    strings = []
    for module in MODULES:
        tree = ast.parse(Path(module.__file__).read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if " " in text and id(node) not in docstrings:
                strings.append(text)
    return strings


def test_no_hint_holds_the_solutions_code_or_formula():
    fragments = solution_fragments()
    assert "hidden[label_masks]" in fragments and "math.exp(loss)" in fragments  # the reader finds them
    texts = hint_strings()  # the table's messages are these, with numbers and names filled in
    assert len(texts) > 100
    for text in texts:
        for fragment in [*fragments, *FORMULAS]:
            assert fragment not in text, (fragment, text)


# --- every notebook from 03 on asks for a prediction -----------------------------------------------------

PREDICT = re.compile(r"\*\*[^*]*predict[^*]*\*\*", re.IGNORECASE)


def test_every_notebook_has_two_or_three_exercises_and_every_check_exists():
    used = []
    for path in course_notebooks():
        ids = checked_ids(path)
        assert 2 <= len(ids) <= 3, (path.name, ids)
        assert all(i.startswith(path.name.split("_")[0] + ".") for i in ids), (path.name, ids)
        used += ids
    assert sorted(used) == sorted(exercises.EXERCISES)


def test_from_notebook_03_on_each_notebook_asks_to_change_and_predict():
    for path in course_notebooks():
        if path.name < "03":
            continue
        nb = nbformat.read(path, as_version=4)
        tasks = [c.source for c in nb.cells if c.get("id", "").startswith("learn-task-")]
        assert any(PREDICT.search(task) for task in tasks), path.name


def test_predict_checks_run_the_change_they_judge(monkeypatch):
    """Change the input a prediction is about, and the check's answer moves with it: nothing is hard-coded."""
    from sft_utils.course.exercises import n03_mask, n04_shift

    share = solution("03.3")
    monkeypatch.setattr(n03_mask, "SYSTEM_03_3", "Be brief.")
    assert verdict("03.3", share).status == WRONG
    riddle = tokenize_conversation(messages("memo-riddle"), tokenizer(), system="Be brief.")
    short = sum(riddle["label_mask"]) / len(riddle["input_ids"])
    assert verdict("03.3", short).status == CORRECT
    monkeypatch.setattr(n04_shift, "CONVERSATION_04_2", "memo-hello")
    assert verdict("04.2", 5).status == WRONG
    assert verdict("04.2", 3).status == CORRECT  # fault 2 on memo-hello: 2 skipped, 1 trained wrongly


def test_an_unknown_id_is_a_clear_error():
    with pytest.raises(KeyError, match="no exercise '3.1'"):
        verdict("3.1", [1])
    with pytest.raises(KeyError, match="has no inputs"):
        exercises.inputs("03.1")


# --- mistakes the table cannot list: built from the solution, or from a learner's loop ---------------------


def _accumulate(weight):
    """A learner's accumulation whose micro-batch i gets weight(count_i, total, k) on its summed loss."""

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
        (lambda n, total, k: 0.5 / total, "whichever micro-batch holds it"),
    ],
)
def test_07_1_typical_accumulation_mistakes(weight, expected_hint):
    assert expected_hint in hint("07.1", _accumulate(weight))


def test_06b_1_typical_mistakes():
    """Zephyr's memo-hello-like conversations: each mistake is one part of a message trained or left out."""
    import dataclasses

    right = solution("06b.1")
    zephyr = exercises.ZEPHYR
    zephyr_tokenizer = sft_utils.load_tokenizer(chat_format=zephyr, verbose=False)
    assistant, end, newline = zephyr_tokenizer.convert_tokens_to_ids(["<|assistant|>", "</s>"]) + [187]

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
    hello = messages("memo-hello")
    example = tokenize_conversation(hello, zephyr_tokenizer, chat_format=zephyr)
    assert right(example["input_ids"]) == [int(m) for m in example["label_mask"]]
    assert right(example["input_ids"]) == [0] * 12 + [1] * 5 + [0] * 12 + [1] * 6 + [0]  # 2 replies, 4 + 5 text
    oa_like = dataclasses.replace(zephyr, train_marker=True, train_header=True, train_footer=True)
    assert example["input_ids"] == tokenize_conversation(hello, zephyr_tokenizer, chat_format=oa_like)["input_ids"]
    assert "user's and system's" in hint("06b.1", lambda ids: [1 - m for m in whole_messages(ids)])
    assert "raised ZeroDivisionError" in hint("06b.1", lambda ids: 1 / 0)
    assert "which tokens does the model write" in hint("06b.1", lambda ids: [0] * len(ids))
    assert verdict("06b.1", lambda ids: torch.tensor(right(ids))).status == CORRECT


def test_the_06_inputs_are_fixed_and_padded():
    batch = exercises.inputs("06.1")
    assert batch["logits"].shape == (2, 7, 11) and batch["logits"].dtype == torch.float32
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert batch["targets"][1, 4:].tolist() == [1, 1, 1]  # the pad id on padded targets
    assert not (batch["label_masks"] & ~batch["attention_mask"].bool()).any()  # padding is never trained
    assert torch.equal(batch["logits"], exercises.inputs.__wrapped__("06.1")["logits"])  # same on every call


def test_06_1_matches_an_independent_reference():
    batch = exercises.inputs("06.1")
    logits, targets, mask = batch["logits"], batch["targets"], batch["label_masks"]
    reference = F.cross_entropy(logits.flatten(0, 1), torch.where(mask, targets, -100).flatten())
    assert solution("06.1") == pytest.approx(reference.item(), rel=1e-6)
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(2, 7)
    assert "plain SFT" in hint("06.1", nll[batch["attention_mask"].bool()].mean().item())
    assert "a sum over the trained targets" in hint("06.1", nll[mask].sum().item())
    assert "dilute" in hint("06.1", (nll * mask).sum().item() / 14)
    assert "short replies" in hint("06.1", (nll * mask).sum(1).div(mask.sum(1)).mean().item())
    shifted = torch.zeros_like(mask)
    shifted[:, 1:] = mask[:, :-1]
    assert "shifted by one" in hint("06.1", nll[shifted].mean().item())
    assert "prompt's loss" in hint("06.1", nll[~mask & batch["attention_mask"].bool()].mean().item())


def test_numpy_and_tensor_answers_are_read_as_numbers_and_lists():
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
    assert verdict("06.1", np.array([1.0, 1.0])).status == WRONG  # two numbers are not one loss
    assert "got Tensor" in hint("03.1", torch.tensor(mask).float())  # a wrong kind is described as given
