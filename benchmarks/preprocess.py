"""Throughput of format + tokenize + mask over a few thousand real conversations.

    python benchmarks/preprocess.py             # 3 000 conversations, best of 3 runs per method
    python benchmarks/preprocess.py --quick     # 1 000 conversations, best of 2 (under a minute)

The conversations are the shared Open-Assistant sample (``sft_utils.shared_data_dir()``, 100 conversations,
8 languages) repeated, else this course's ``data/`` (13); same Pythia tokenizer for every method:

* ``sft_utils.preprocess_dataset``: ``datasets.Dataset.map(batched=True)``, one batched encode per 1 000
  conversations, masks assembled with numpy, Arrow columns out (this project's pipeline);
* ``sft_utils.tokenize_packed``: the same work on a Python list, without ``datasets`` (flat arrays out);
* ``tokenize_conversation loop``: the per-conversation function of notebook 03, one call each;
* ``apply_chat_template``: transformers' ``apply_chat_template(…, return_assistant_tokens_mask=True)``,
  batched, with an Open-Assistant template that marks replies with ``{% generation %}``;
* ``TRL SFT preparation``: ``SFTTrainer._prepare_dataset`` with ``assistant_only_loss=True`` (trl's own
  code path, which maps ``apply_chat_template`` one conversation at a time and builds ``labels``);
* ``raw encode_batch``: ``tokenizer.backend_tokenizer.encode_batch`` of the message texts alone, no
  markers, no masks: the floor that any pipeline pays.

Each pipeline's ids and masks are checked against ``tokenize_conversation`` (column "same").
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
import types
import warnings

import sft_utils
from sft_utils import OPEN_ASSISTANT, load_tokenizer, tokenize_conversation
from sft_utils.scale.preprocess import preprocess_dataset, tokenize_packed

# Open-Assistant's format as a chat template; {% generation %} marks what return_assistant_tokens_mask returns.
OASST_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% generation %}<|assistant|>{{ message['content'] }}<|endoftext|>"
    "{% endgeneration %}"
    "{% elif message['role'] == 'system' %}<|system|>{{ message['content'] }}<|endoftext|>"
    "{% else %}<|prompter|>{{ message['content'] }}<|endoftext|>{% endif %}"
    "{% endfor %}"
)


def load(count: int) -> list[dict]:
    shared = sft_utils.shared_data_dir()
    path = shared / "conversations.jsonl" if shared else sft_utils.course_data_path()
    base = sft_utils.load_conversations(path)
    print(f"data: {path.name} from {'the shared folder' if shared else 'the course'}, {len(base)} conversations")
    repeated = (base * (count // len(base) + 1))[:count]
    return [{"id": f"{c['id']}#{i}", "messages": c["messages"]} for i, c in enumerate(repeated)]


def chat_form(conversations) -> list[list[dict]]:
    names = {"prompter": "user", "assistant": "assistant", "system": "system"}
    return [[{"role": names[m["role"]], "content": m["text"]} for m in c["messages"]] for c in conversations]


def with_generation_template(tokenizer):
    """The tokenizer's own chat template if it marks replies with {% generation %}, else ours."""
    template = getattr(tokenizer, "chat_template", None)
    if not (isinstance(template, str) and "{% generation %}" in template):
        tokenizer.chat_template = OASST_TEMPLATE
    return tokenizer


def method_ours_dataset(conversations, tokenizer, num_proc=None):
    import datasets

    dataset = datasets.Dataset.from_list(conversations)  # input as a Dataset (not timed)

    def run():
        out = preprocess_dataset(dataset, tokenizer, num_proc=num_proc, desc=None)
        return list(zip(out["input_ids"], out["label_mask"]))

    return run


def method_ours_packed(conversations, tokenizer):
    messages = [c["messages"] for c in conversations]
    ids = [c["id"] for c in conversations]

    def run():
        packed = tokenize_packed(messages, tokenizer, conversation_ids=ids)
        bounds = packed["offsets"]
        return [
            (packed["input_ids"][a:b].tolist(), packed["label_mask"][a:b].tolist())
            for a, b in itertools.pairwise(bounds)
        ]

    return run


def method_loop(conversations, tokenizer):
    def run():
        examples = [tokenize_conversation(c["messages"], tokenizer, conversation_id=c["id"]) for c in conversations]
        return [(e["input_ids"], e["label_mask"]) for e in examples]

    return run


def method_chat_template(conversations, tokenizer):
    chats = chat_form(conversations)

    def run():
        out = tokenizer.apply_chat_template(
            chats, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, truncation=False
        )
        return [(ids, [bool(b) for b in mask]) for ids, mask in zip(out["input_ids"], out["assistant_masks"])]

    return run


def method_trl(conversations, tokenizer):
    """SFTTrainer's own dataset preparation (a bound method of the trainer; only these attributes are read)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    dataset = datasets.Dataset.from_list([{"messages": chat} for chat in chat_form(conversations)])
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(), assistant_only_loss=True, max_length=None, report_to=[], bf16=False, use_cpu=True
    )
    trainer = types.SimpleNamespace(_tokenizer=tokenizer, chat_template=None, completion_only_loss=None)

    def run():
        datasets.disable_caching()  # every run really tokenizes
        out = SFTTrainer._prepare_dataset(trainer, dataset, tokenizer, args, False, None, "train")
        return [(ids, [label != -100 for label in labels]) for ids, labels in zip(out["input_ids"], out["labels"])]

    return run


def method_raw(conversations, tokenizer):
    texts = [m["text"] for c in conversations for m in c["messages"]]
    backend = tokenizer.backend_tokenizer

    def run():
        return backend.encode_batch(texts, add_special_tokens=False)

    return run


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (all threads), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_time(run, repeats):
    """(best wall-clock seconds, best CPU seconds, result) over ``repeats`` runs."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        result = run()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, cpu_seconds() - start_cpu)
    return best, best_cpu, result


def explain_difference(ids: list, conversations: list[dict]) -> str:
    """Which conversations a pipeline got wrong, and whether typed markers explain it (the template path turns
    a typed ``<|assistant|>`` into the role token; see the README's "What can go wrong with masks")."""
    markers = tuple(OPEN_ASSISTANT.role_markers.values()) + (OPEN_ASSISTANT.end_of_message, OPEN_ASSISTANT.pad_token)
    typed = {c["id"] for c in conversations if any(m in msg["text"] for msg in c["messages"] for m in markers)}
    originals = sorted({str(i).split("#")[0] for i in ids})  # load() names the k-th copy "<id>#k"
    shown = ", ".join(originals[:5]) + (", …" if len(originals) > 5 else "")
    why = "; each has markers typed in its text, which this route turns into role tokens" if set(ids) <= typed else ""
    return (
        f"{len(ids)} of {len(conversations)} conversations differ from tokenize_conversation (copies of {shown}){why}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 000 conversations, best of 2")
    parser.add_argument("--conversations", type=int, help="how many conversations (default 3 000)")
    parser.add_argument("--repeats", type=int, help="runs per method; the best time counts (default 3)")
    args = parser.parse_args()
    count = args.conversations or (1000 if args.quick else 3000)
    repeats = args.repeats or (2 if args.quick else 3)

    import datasets

    datasets.disable_progress_bars()
    tokenizer = with_generation_template(load_tokenizer(verbose=False))
    conversations = load(count)
    expected = [
        (e["input_ids"], e["label_mask"])
        for e in (tokenize_conversation(c["messages"], tokenizer, conversation_id=c["id"]) for c in conversations)
    ]
    tokens = sum(len(ids) for ids, _ in expected)
    methods = {
        "sft_utils.preprocess_dataset": method_ours_dataset(conversations, tokenizer),
        "sft_utils.tokenize_packed": method_ours_packed(conversations, tokenizer),
        "tokenize_conversation loop": method_loop(conversations, tokenizer),
        "apply_chat_template": method_chat_template(conversations, tokenizer),
    }
    if not args.quick:
        methods["sft_utils.preprocess_dataset, 2 procs"] = method_ours_dataset(conversations, tokenizer, num_proc=2)
    try:
        with warnings.catch_warnings():  # transformers' FutureWarning about TRL's own config names: not ours
            warnings.simplefilter("ignore", FutureWarning)
            methods["TRL SFT preparation"] = method_trl(conversations, tokenizer)
    except ImportError:
        print("trl is not installed: its row is left out")
    methods["raw encode_batch (texts only)"] = method_raw(conversations, tokenizer)

    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{count} conversations, {tokens:,} tokens (ours); best of {repeats} runs; {os.cpu_count()} CPUs, load {load_average}"
    )
    print("conv/s: per second of wall-clock time; conv/CPU-s: per second of CPU time, all threads and processes")
    header = f"{'method':<37} {'seconds':>8} {'conv/s':>8} {'tokens/s':>10} {'conv/CPU-s':>10} {'same':>5}"
    print(header + "\n" + "-" * len(header))
    rows, differing = {}, {}
    for name, run in methods.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, cpu, result = best_time(run, repeats)
        same = "-" if name.startswith("raw") else ("yes" if result == expected else "NO")
        if same == "NO":
            differing[name] = sorted(
                {c["id"] for c, r, e in itertools.zip_longest(conversations, result, expected) if r != e}
            )
        rows[name] = seconds
        print(
            f"{name:<37} {seconds:8.3f} {count / seconds:8.0f} {tokens / seconds:10,.0f} {count / cpu:10.0f} {same:>5}",
            flush=True,
        )
    for name, ids in differing.items():
        print(f'"{name}" NO: {explain_difference(ids, conversations)}')
    raw, trl = rows["raw encode_batch (texts only)"], rows.get("TRL SFT preparation")
    print("\nratios (throughput of each method / throughput of TRL, of raw encode_batch):")
    for name, seconds in rows.items():
        vs_trl = f"{trl / seconds:6.2f}x" if trl else "   n/a"
        print(f"  {name:<37} {vs_trl} {raw / seconds:7.0%}")
    print("targets: this project's pipeline >= 4x TRL and >= 70% of raw encode_batch")


if __name__ == "__main__":
    main()
