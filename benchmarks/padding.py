"""Padding share of training batches: random batches vs batches grouped by length.

    python benchmarks/padding.py            # 200 shuffles per row, and a 10 000-conversation resample (~1 min)
    python benchmarks/padding.py --quick    # 20 shuffles

Padding share = padding tokens / all tokens of the padded batches (``AssistantOnlyCollator`` pads each batch
to its longest example), for the shared Open-Assistant sample (else this course's data), tokenized by
``sft_utils.preprocess_dataset`` with ``max_length=2048`` (Pythia's context). Orders compared:

* random: a plain shuffle (``DataLoader(shuffle=True)``);
* grouped: transformers' ``get_length_grouped_indices`` (what ``Trainer(group_by_length=True)`` uses):
  shuffle, cut into mega-batches of ``mega_batch_mult x batch_size``, sort each by length;
* sorted: one global sort by length (the least padding, no randomness: batch order still shuffled).

The shared sample has only 100 conversations: few neighbours of similar length, so even a global sort leaves
gaps. A second table draws 10 000 lengths from the same distribution (``--resample``), the size of a real
SFT set, where grouping has close neighbours. Padding costs compute (every padded position goes through the model) but no loss: it is never trained.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

import sft_utils
from sft_utils.scale.preprocess import preprocess_dataset


def padding_share(lengths: np.ndarray, order, batch_size: int) -> float:
    """Padding tokens / padded tokens when ``order`` is cut into consecutive batches of ``batch_size``."""
    padded = real = 0
    for start in range(0, len(order), batch_size):
        batch = lengths[np.asarray(order[start : start + batch_size])]
        padded += len(batch) * batch.max()
        real += batch.sum()
    return 1 - real / padded


def table(lengths: np.ndarray, shuffles: int, label: str) -> None:
    print(f"\n{label}: mean padding share over {shuffles} shuffles (lower is better)")
    header = f"{'batch':>5}  {'random':>7}  {'grouped (HF default)':>20}  {'grouped x50':>11}  {'sorted':>7}"
    print(header + "\n" + "-" * len(header))
    for batch_size in (4, 8, 16):
        shares = {"random": [], "grouped": [], "grouped50": [], "sorted": []}
        for seed in range(shuffles):
            generator = torch.Generator().manual_seed(seed)
            shares["random"].append(
                padding_share(lengths, torch.randperm(len(lengths), generator=generator), batch_size)
            )
            grouped = get_length_grouped_indices(lengths.tolist(), batch_size, generator=generator)
            shares["grouped"].append(padding_share(lengths, grouped, batch_size))
            grouped50 = get_length_grouped_indices(
                lengths.tolist(), batch_size, mega_batch_mult=50, generator=generator
            )
            shares["grouped50"].append(padding_share(lengths, grouped50, batch_size))
        shares["sorted"].append(padding_share(lengths, np.argsort(lengths, kind="stable"), batch_size))
        means = {k: float(np.mean(v)) for k, v in shares.items()}
        print(
            f"{batch_size:>5}  {means['random']:>7.1%}  {means['grouped']:>20.1%}  {means['grouped50']:>11.1%}  "
            f"{means['sorted']:>7.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 shuffles per row")
    parser.add_argument(
        "--resample",
        type=int,
        default=10_000,
        help="also a dataset of this many lengths drawn from the real ones (0: no)",
    )
    args = parser.parse_args()
    shuffles = 20 if args.quick else 200

    shared = sft_utils.shared_data_dir()
    path = shared / "conversations.jsonl" if shared else sft_utils.course_data_path()
    tokenizer = sft_utils.load_tokenizer(verbose=False)
    dataset = preprocess_dataset(sft_utils.load_conversations(path), tokenizer, max_length=2048, desc=None)
    lengths = np.array([len(ids) for ids in dataset["input_ids"]])
    print(
        f"{path.name} ({'shared' if shared else 'course'} data): {len(lengths)} conversations, tokens per conversation: "
        f"median {np.median(lengths):.0f}, mean {lengths.mean():.0f}, max {lengths.max()}"
    )
    table(lengths, shuffles, f"the {len(lengths)} real conversations")
    if args.resample:
        # A dataset of the same length distribution but `resample` conversations: grouping has more neighbours.
        # Each drawn length is jittered by a factor e^N(0, 0.1^2), so that lengths are not exact copies.
        rng = np.random.default_rng(0)
        drawn = rng.choice(lengths, size=args.resample) * np.exp(rng.normal(0, 0.1, size=args.resample))
        resampled = np.clip(np.rint(drawn), 2, 2048).astype(int)
        label = f"{args.resample} lengths drawn from them (each jittered by a factor e^N(0, 0.1^2))"
        table(resampled, max(shuffles // 20, 3), label)
    print("target: padding share <= 5% with length grouping")


if __name__ == "__main__":
    main()
