"""Which tokens of a reply to train, measured: the header's marker, the text, the end token.

    python benchmarks/which_tokens.py                                  # 4 choices x seeds 0 1 (~5 min on 2 cores)
    python benchmarks/which_tokens.py --json data/which_tokens.json    # also save it for notebook 06b
    python benchmarks/which_tokens.py --seeds 0 1 2                    # more seeds

Each run: ``sft_utils.train.toy_run.toy_record`` on the ``facts`` toy task (``TrainConfig.toy``: a random-weight
pythia-14m, batch 16, lr 1e-3 constant after 20 warm-up steps, fp32, 200 steps), evaluated every 50 steps on
every held-out question of ``facts`` once (40; greedy replies: exact match, stop rate). The choices are the chat formats of
``TOKEN_CHOICES``: Open-Assistant's as the course trains it (marker, text and ``<|endoftext|>``), the same
without its marker (``train_marker=False``), the same without its end token (``train_end=False``), and ChatML
(text and ``<|im_end|>``, its header ``<|im_start|>assistant\\n`` untrained). Generation always starts after
the assistant's header, so an untrained header is never asked for. The seed picks the initial weights and the
data order. Run on idle cores: other jobs slow every step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import sft_utils
from sft_utils.train.toy_run import TOKEN_CHOICES, toy_record

TASK = "facts"


def trained_per_reply(chat_format, tokenizer) -> float:
    """Trained tokens per reply of the training conversations (first 200), in this format."""
    from sft_utils.data.toy import toy_conversations

    conversations = toy_conversations(TASK, "train", 200)
    examples = [
        sft_utils.tokenize_conversation(c["messages"], tokenizer, chat_format=chat_format) for c in conversations
    ]
    return statistics.mean(sum(e["label_mask"]) for e in examples)


def table(records: list[dict]) -> str:
    head = "| trained tokens | format | seeds | exact match (each seed) | stop rate (each seed) | steps to 90% |"
    lines = [head, "|" + "---|" * 6]
    groups = {}
    for r in records:
        groups.setdefault(r["choice"], []).append(r)
    for choice, runs in groups.items():
        pct = lambda xs: " / ".join(f"{x:.0%}" for x in xs)
        to_90 = " / ".join("–" if r["to_90"] is None else str(r["to_90"]) for r in runs)
        lines.append(
            f"| {choice} | {runs[0]['chat_format']} | {len(runs)} | {pct([r['exact_match'][-1] for r in runs])} "
            f"| {pct([r['stop_rate'][-1] for r in runs])} | {to_90} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choices", nargs="+", default=list(TOKEN_CHOICES), choices=list(TOKEN_CHOICES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the records here")
    args = parser.parse_args()
    tokenizers = {}
    records = []
    for choice in args.choices:
        chat_format = TOKEN_CHOICES[choice]
        key = chat_format.added_tokens  # formats that add the same tokens share a tokenizer
        if key not in tokenizers:
            tokenizers[key] = sft_utils.load_tokenizer(chat_format=chat_format, verbose=False)
        tokenizer = tokenizers[key]
        per_reply = trained_per_reply(chat_format, tokenizer)  # of the data, not of a run
        for seed in args.seeds:
            start = time.perf_counter()
            record = toy_record(TASK, "masked", seed, tokenizer, args.steps, chat_format=chat_format)
            record |= {"choice": choice, "trained_per_reply": per_reply}
            records.append(record)
            print(
                f"{choice} seed {seed}: exact match {record['exact_match'][-1]:.0%}, stop rate "
                f"{record['stop_rate'][-1]:.0%}, {time.perf_counter() - start:.0f} s",
                flush=True,
            )
            if args.json:
                args.json.write_text(json.dumps({"task": TASK, "records": records}, indent=1) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
