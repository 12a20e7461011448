"""A toy world of chat tasks that a small random-weight model learns on a CPU in under a minute.

Introduced in notebook 07_train_it_yourself. Each task is a deterministic generator of conversations in the
course's message format (``{"messages": [{"role", "text"}, ...]}``), so every memo step applies unchanged.
The words come from short lists whose every word is one token of Pythia's BPE, with or without a leading
space, so that a reply is a few tokens long.

A task's **held-out** prompts never occur in its training conversations, by construction: a prompt is held
out when a hash of its key says so (random-word tasks), or when its phrasing is the one reserved for its fact
(``facts``), and each split only draws prompts of its own side. A held-out set asks each of its prompts once:
:func:`held_out_size` gives the size the course evaluates on, 64 distinct prompts for the random-word tasks and
all 40 held-out questions of ``facts``, each exactly once.

The tasks, and what they need the model to learn:

- ``last_word`` (read out of a long, unpredictable prompt): 8 to 16 random words, "Which word came last?".
- ``copy`` and ``reverse`` (transform the prompt): 3 to 8 random words, repeated or reversed.
- ``facts`` (memorised, templated prompts): where 40 people live, asked in 5 phrasings; one phrasing of
  each person is held out, so the held-out questions test a fact seen in training, asked in a new way.
- ``remember`` (multi-turn): a word given in the first turn must be recalled after 8 to 16 random words in
  the second.

``last_word`` and ``facts`` are the two regimes of the masked-versus-plain experiment of notebook 07: random
words cannot be predicted, so plain SFT spends its gradient on noise; templated questions can be learned.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

# One token each in Pythia's BPE, alone and after a space (checked by a test).
_WORDS = (
    "apple river stone cloud horse table window bread chair forest orange rabbit yellow anchor castle "
    "engine hammer nest paper arrow fish ink mouse night rose ship train wolf bear bell boat book box "
    "cake car cat coat cup dog door egg fan fire flag fork gate gold hat hill king lake leaf lion map "
    "nail oil pan pipe rain ring road salt sand seed sky sock star sun tree wall wind wine wood bird bus "
    "coin corn fox glass iron key lock mask net nut park pen pie pot rice rock root rug shell soap tube "
    "web wheel wing yard"
)
WORDS = _WORDS.split()
_PEOPLE = (
    "Ana Ben Carl Dan Eva Fred Gus Hugo Ivan Jack Kim Leo Max Nick Omar Paul Rosa Sam Tom Vera Anna Bob "
    "Emma Lisa Mark Nina Otto Pete Rita Sara Tina Alex Finn Hans Joe Kate Luke Ned Ray Sue"
)
PEOPLE = _PEOPLE.split()
_CITIES = (
    "Paris Rome Berlin Tokyo London Madrid Vienna Dublin Oslo Cairo Delhi Moscow Athens Prague Warsaw "
    "Boston Dallas Denver Miami Seattle Chicago Sydney Toronto Mexico"
)
CITIES = _CITIES.split()
# Where each person lives: a fixed world, the same in every run.
HOMES = dict(zip(PEOPLE, random.Random("homes").choices(CITIES, k=len(PEOPLE)), strict=True))
FACT_PHRASINGS = (
    "Where does {person} live?",
    "In which city does {person} live?",
    "Which city is home to {person}?",
    "Tell me where {person} lives.",
    "What is the home city of {person}?",
)
SPLITS = ("train", "held-out")
HELD_OUT_SHARE = 5  # one prompt in 5 is held out
HELD_OUT_SIZE = 64  # distinct held-out prompts an evaluation asks, where a task has that many


def _held_out(key: str) -> bool:
    """Whether a prompt key belongs to the held-out side: a hash, so the same in every process and run."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % HELD_OUT_SHARE == 0


def _words(rng: random.Random, low: int, high: int) -> list[str]:
    return rng.choices(WORDS, k=rng.randint(low, high))


def _turns(*texts: str) -> list[dict]:
    """Alternating prompter/assistant messages, the prompter first."""
    return [{"role": ("prompter", "assistant")[i % 2], "text": text} for i, text in enumerate(texts)]


def _last_word(rng):
    words = _words(rng, 8, 16)
    prompt = f"Words: {' '.join(words)}. Which word came last?"
    return prompt, _turns(prompt, f"The last word was {words[-1]}.")


def _copy(rng):
    words = _words(rng, 3, 8)
    prompt = f"Repeat these words: {' '.join(words)}"
    return prompt, _turns(prompt, " ".join(words))


def _reverse(rng):
    words = _words(rng, 3, 8)
    prompt = f"Reverse these words: {' '.join(words)}"
    return prompt, _turns(prompt, " ".join(reversed(words)))


def _remember(rng):
    word, filler = rng.choice(WORDS), _words(rng, 8, 16)
    first = f"Remember this word: {word}."
    second = f"Now some other words: {' '.join(filler)}. Which word did I ask you to remember?"
    return f"{first}\n{second}", _turns(first, f"OK, I will remember {word}.", second, f"The word was {word}.")


def _facts(rng):
    person = rng.choice(PEOPLE)
    phrasing = rng.randrange(len(FACT_PHRASINGS))
    key = f"{person}|{phrasing}"
    prompt = FACT_PHRASINGS[phrasing].format(person=person)
    return key, _turns(prompt, f"{person} lives in {HOMES[person]}.")


def _fact_held_out(key: str) -> bool:
    """One phrasing per person, chosen by hash, is held out: every fact is still taught in 4 phrasings."""
    person, phrasing = key.split("|")
    return int(phrasing) == int(hashlib.sha256(person.encode()).hexdigest(), 16) % len(FACT_PHRASINGS)


@dataclass(frozen=True)
class ToyTask:
    """One task of the toy world: ``draw(rng)`` gives (prompt key, messages); ``held_out(key)`` splits."""

    name: str
    description: str
    prompts: str  # "unpredictable" (random words) or "templated" (a few phrasings of a small world)
    draw: Callable[[random.Random], tuple[str, list[dict]]]
    held_out: Callable[[str], bool] = _held_out
    distinct: int | None = None  # how many prompts exist at all, when few
    held_out_prompts: int | None = None  # how many of them are held out, when few (None: more than any set asks)


TASKS = {
    task.name: task
    for task in (
        ToyTask("last_word", "name the last of 8-16 random words", "unpredictable", _last_word),
        ToyTask("copy", "repeat 3-8 random words", "unpredictable", _copy),
        ToyTask("reverse", "reverse 3-8 random words", "unpredictable", _reverse),
        ToyTask("remember", "recall a word from the first turn after 8-16 random words", "unpredictable", _remember),
        ToyTask(
            "facts",
            f"say where one of {len(PEOPLE)} people lives, asked in a new phrasing",
            "templated",
            _facts,
            _fact_held_out,
            len(PEOPLE) * len(FACT_PHRASINGS),
            len(PEOPLE),  # one phrasing per person
        ),
    )
}


def toy_task(name: str) -> ToyTask:
    """The task called ``name``; raises ValueError naming the tasks for an unknown one."""
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown toy task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]


def held_out_size(task: str) -> int:
    """How many held-out conversations the course evaluates ``task`` on (notebook 07, ``toy_run``, the command
    line): :data:`HELD_OUT_SIZE` (64) distinct prompts, or every held-out prompt when the task has fewer
    (``facts``: its 40 held-out questions, each once). Raises ValueError for an unknown task."""
    return min(HELD_OUT_SIZE, toy_task(task).held_out_prompts or HELD_OUT_SIZE)


def toy_conversations(task: str, split: str, n: int, *, seed: int = 0) -> list[dict]:
    """``n`` conversations of toy task ``task`` from one side of its split, the same for the same arguments.

    Args:
        task: a name of :data:`TASKS` (``"last_word"``, ``"copy"``, ``"reverse"``, ``"remember"``, ``"facts"``).
        split: ``"train"`` or ``"held-out"``; a held-out prompt never occurs in any training conversation.
        n: how many conversations (a positive int). A held-out set asks each prompt at most once, so that every
            prompt counts once in an exact match: ``facts`` has 40 held-out questions, so ``n`` is at most 40
            there (40 gives each of them once). Training conversations may repeat (``facts`` has 160 training
            questions; random-word prompts almost never repeat).
        seed: picks the conversations; different seeds give different samples of the same split.

    Returns:
        A list of ``{"id": "toy-<task>-<split>-<i>", "tags": ["toy", task], "messages": [...]}``; the last
        message is the assistant's reply that an evaluation compares with the model's.

    Raises:
        ValueError: an unknown task or split, ``n`` that is not a positive int, or more held-out conversations
            than the task has held-out prompts.
        TypeError: ``seed`` that is not an int.
    """
    spec = toy_task(task)
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    want_held_out = split == "held-out"
    if want_held_out and spec.held_out_prompts is not None and n > spec.held_out_prompts:
        raise ValueError(
            f"toy task {task!r} has {spec.held_out_prompts} held-out prompts, and a held-out set asks each at most "
            f"once: n must be at most {spec.held_out_prompts}, got {n}"
        )
    rng = random.Random(f"{task}/{split}/{seed}")
    conversations, asked = [], set()
    while len(conversations) < n:
        key, messages = spec.draw(rng)
        if spec.held_out(key) == want_held_out and not (want_held_out and key in asked):
            asked.add(key)
            conversations.append(
                {"id": f"toy-{task}-{split}-{len(conversations)}", "tags": ["toy", task], "messages": messages}
            )
    return conversations
