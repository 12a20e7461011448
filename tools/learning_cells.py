"""Write the learning cells of every notebook: at the top the Colab badge, goals, prerequisites, run time,
the Colab set-up cell and the version cell; at the end the exercises and the links onward.

    python tools/learning_cells.py       # then re-execute the notebooks whose code cells changed

Run it after changing ``sft_utils.REPO_URL``, a run time (``learning_cells_run_times.json``) or an exercise.
Idempotent: only cells whose id starts with ``learn-`` (the learning cells) are rewritten; a code cell whose
source is unchanged keeps its outputs, and no other cell is touched. nbval's controls are cell tags
(``nbval-ignore-output`` on the version cell), never comments in the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sft_utils import REPO_URL
from sft_utils.course.colab import COLAB_CLONE_DIR, badge_markdown

PREFIX = "learn-"
TIMES = json.loads((ROOT / "tools" / "learning_cells_run_times.json").read_text())


def cpu_run_time(times: dict) -> str:
    """The CPU run time as the notebook header and the README's course map give it: 'CPU: 7 s on 2 cores'."""
    mode = f" {times['cpu_mode']}" if "cpu_mode" in times else ""
    return f"CPU{mode}: {times['cpu_seconds']} s on 2 cores"


SETUP = f'''#@title Set-up: on Colab, installs sft_utils (once per runtime); elsewhere it only prints {{ display-mode: "form" }}
import sys
REPO_URL = "{REPO_URL}"
if "google.colab" in sys.modules:
    import importlib.metadata
    import os
    import subprocess
    def installed(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    repo = os.environ.get("SFT_COURSE_DIR", "{COLAB_CLONE_DIR}")
    source = os.environ.get("SFT_COURSE_REPO", REPO_URL)  # or your own fork or local clone
    if not os.path.isdir(repo):  # a clone: the notebooks read its data/ folder
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", source, repo], check=True)
    watched = ["torch", "numpy", "transformers", "tokenizers", "matplotlib", "tqdm", "ipywidgets"]
    before = {{name: installed(name) for name in watched}}
    if installed("sft-course") is None:  # keep Colab's own torch and numpy
        keep = [f"{{name}}=={{before[name]}}" for name in ("torch", "numpy") if before[name]]
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", repo, *keep], capture_output=True)
        if pip.returncode:  # shown on failure only: on success pip prints setuptools' boxed build notes
            raise RuntimeError(f"pip install failed:\\n{{pip.stderr.decode()[-3000:]}}")
    sys.path.insert(0, repo)
    changed = [name for name in watched if installed(name) != before[name] and name in sys.modules]
    if changed:
        print(f"pip changed {{', '.join(changed)}}: RESTART NEEDED (Runtime > Restart session), then run again.")
    else:
        print("sft_utils is installed; no restart needed.")
else:
    print("Not on Colab: nothing to install.")'''

# nbval reads cell tags: the version cell runs, its output (versions, device) is not compared.
VERSIONS_TAGS = ["nbval-ignore-output"]
VERSIONS = """import platform

import torch
import transformers

import sft_utils

print(f"python {platform.python_version()} | torch {torch.__version__} | transformers {transformers.__version__} "
      f"| sft_utils {sft_utils.__version__}")
print("device:", f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu")"""

NOTEBOOKS = {
    "01_format": {
        "learn": [
            "turn a conversation into Open-Assistant's string: a role marker, the text and `<|endoftext|>` per message;",
            "add a system prompt and read the ecosystem's `user` / `content` form;",
            "open the assistant's turn for generation, and see which conversations are refused, and why.",
        ],
        "prereq": "Python (lists, dicts, strings). No machine learning yet.",
        "exercises": [
            (
                "01.1",
                (
                    "Write **by hand** (without `format_conversation`) the string of the conversation `chat` below, "
                    'with the system prompt `"Answer in one sentence."`.'
                ),
                (
                    'chat = sft_utils.exercises.CHAT_01_1  # user: "Hi!", assistant: "Hello, how can I help?"\n'
                    "answer = None  # your string"
                ),
            ),
            (
                "01.2",
                "Give the string to feed the model so that it answers the **last** question of `chat2` (any method).",
                (
                    'chat2 = sft_utils.exercises.CHAT_01_2  # "What is 2 + 2?", "4.", "And 3 + 3?"\n'
                    "answer = None  # your string"
                ),
            ),
        ],
    },
    "02_tokenize": {
        "learn": [
            "load Pythia's tokenizer (from the hub, or the offline copy) and read `input_ids` and `attention_mask`;",
            "know the role tokens' fixed ids (`<|prompter|>` = 50279) and why padding is not `<|endoftext|>`;",
            "keep a marker that a user *typed* as plain text.",
        ],
        "prereq": "notebook 01. What a token is helps, but is explained here.",
        "exercises": [
            (
                "02.1",
                (
                    "A user writes `Type <|assistant|> to start.` Give the `input_ids` of this message's **text** "
                    "as `tokenize_conversation` tokenizes it: the text alone, without marker or `<|endoftext|>`."
                ),
                (
                    'text = sft_utils.exercises.TEXT_02_1  # "Type <|assistant|> to start."\n'
                    "answer = None  # your code, using `tokenizer`"
                ),
            ),
            (
                "02.2",
                (
                    "**Predict.** Many models have no pad token and pad with their end token. Suppose the pad id "
                    "were `<|endoftext|>`'s and a batch's padding were found by id (`input_ids == pad_id`). How many "
                    "of memo-riddle's *real* tokens would be taken for padding? Think first, then check your "
                    'prediction on `encoded["input_ids"]`, the riddle\'s ids above.'
                ),
                "answer = None  # a number of tokens",
            ),
            (
                "02.3",
                (
                    "Write `encode_messages(messages, tokenizer)`: the `input_ids` of a conversation, built message "
                    "by message (role marker, text, `<|endoftext|>`), so that a marker typed inside a text stays "
                    "text. The check runs it on conversations you have not seen."
                ),
                (
                    "def encode_messages(messages, tokenizer):\n"
                    "    ...  # your code\n\n\n"
                    "answer = None  # your function: answer = encode_messages"
                ),
            ),
        ],
    },
    "03_mask": {
        "learn": [
            "give every token its `message_indices` and `label_mask`;",
            "explain why the reply's marker and closing `<|endoftext|>` are trained;",
            "check a mask by decoding the trained tokens.",
        ],
        "prereq": "notebooks 01–02.",
        "exercises": [
            (
                "03.1",
                (
                    "Build the `label_mask` of `hello` (memo-hello) as a list of 0/1, one per token, **without** "
                    "`tokenize_conversation`: from each message's role and its number of tokens (marker + text + "
                    "`<|endoftext|>`)."
                ),
                'hello = conversations["memo-hello"]["messages"]\nanswer = None  # your code, using `tokenizer`',
            ),
            (
                "03.2",
                "How many tokens of the riddle conversation (`memo-riddle`) are trained? Any method.",
                "answer = None  # a number",
            ),
            (
                "03.3",
                (
                    "**Change it and predict.** The riddle trains about half of its tokens. Give it a system prompt, "
                    "`SYSTEM_03_3` below. Predict first: does the share of trained tokens go up, down, or stay? Then "
                    "compute it with `tokenize_conversation(..., system=SYSTEM_03_3)` and answer the new share "
                    "(0.25 or 25 for a quarter)."
                ),
                (
                    'riddle = conversations["memo-riddle"]["messages"]\n'
                    "SYSTEM_03_3 = sft_utils.exercises.SYSTEM_03_3\n"
                    "print(SYSTEM_03_3)\n"
                    "answer = None  # the share of trained tokens with the system prompt"
                ),
            ),
        ],
    },
    "04_shift": {
        "learn": [
            "build next-token `targets` and move the label mask with them (`label_masks`);",
            "pad a batch by length, and write the same training signal as `labels` with -100;",
            "recognise the shifted-twice bug.",
        ],
        "prereq": "notebook 03; PyTorch tensors (indexing, shapes).",
        "exercises": [
            (
                "04.1",
                (
                    "Give the `targets` of memo-hello in the convention of [the memo](../docs/memo.md) (a list "
                    "of ids) **without** `shift_for_next_token`."
                ),
                (
                    'hello_example = tokenize_conversation(conversations["memo-hello"]["messages"], tokenizer)\n'
                    "answer = None  # your code, from hello_example"
                ),
            ),
            (
                "04.2",
                (
                    "**Break it on purpose and predict.** The appendix's fault 2 uses the unshifted mask "
                    "(`label_mask[:-1]`) on memo-hello's shifted targets. Do it to memo-riddle (three replies): "
                    "how many of its targets would the broken mask get wrong, skipped or wrongly trained? "
                    "Predict from what fault 2 shows, then check by comparing the two masks."
                ),
                (
                    'riddle_example = tokenize_conversation(conversations["memo-riddle"]["messages"], tokenizer)\n'
                    "answer = None  # a number of targets"
                ),
            ),
            (
                "04.3",
                (
                    "Give the `labels` of memo-hello for `model(input_ids=..., labels=...)` (transformers' "
                    "convention), as a list."
                ),
                "answer = None  # your code, from hello_example",
            ),
        ],
    },
    "05_project": {
        "learn": [
            "find the output head of a GPT-NeoX model and read logits `[batch, seq, vocab_size]`;",
            "estimate how much memory the logits take, and why they can outgrow the model;",
            "read `argmax` over the vocabulary as next-token classification.",
        ],
        "prereq": "notebook 04; `torch.nn.Linear`.",
        "exercises": [
            (
                "05.1",
                (
                    "The shape of pythia-14m's logits for `input_ids` of shape `[4, 37]`, as a tuple. Reason it "
                    "out; `sft_utils.pythia_config('pythia-14m')` holds the sizes."
                ),
                "answer = None  # (batch, seq, ...)",
            ),
            (
                "05.2",
                (
                    "**Change the model and predict.** The table above prices the logits of pythia-70m, whose "
                    "parameters they outweigh. Go up in size (`sft_utils.models.pythia.PYTHIA_SIZES`, "
                    "`sft_utils.scale.memory_estimate.parameter_count`): which is the **smallest** Pythia whose "
                    "float32 parameters take more memory than its float32 logits for a batch of 8 × 2048 tokens?"
                ),
                'answer = None  # a size, such as "pythia-160m"',
            ),
            (
                "05.3",
                (
                    "Write `trained_logits(hidden, weight, label_masks)`: select-then-project, the logits `[N, vocab]` "
                    "of the N trained rows only, from hidden states `[B, T, hidden]` and the head's weight "
                    "`[vocab, hidden]`. The check uses tensors you have not seen."
                ),
                (
                    "def trained_logits(hidden, weight, label_masks):\n"
                    "    ...  # your code\n\n\n"
                    "answer = None  # your function: answer = trained_logits"
                ),
            ),
        ],
    },
    "06_masked_loss": {
        "learn": [
            "compute the cross-entropy over the trained targets only, in three stages;",
            "check it against `F.cross_entropy(ignore_index=-100)` and the model's own loss;",
            "compare it with plain SFT, and read a loss as a perplexity.",
        ],
        "prereq": "notebook 05; log-softmax and cross-entropy help, and are shown.",
        "exercises": [
            (
                "06.1",
                (
                    'Compute the assistant-only loss of the small padded batch `sft_utils.exercises.inputs("06.1")` '
                    "by hand (no `MaskedCrossEntropyLoss`), as a number in nats."
                ),
                (
                    'small = sft_utils.exercises.inputs("06.1")  # logits [2, 7, 11], targets, label_masks, '
                    "attention_mask\nanswer = None  # your code"
                ),
            ),
            (
                "06.2",
                (
                    "What is the perplexity of a model that gives every token of pythia-14m's vocabulary (all "
                    "`vocab_size` of its logits) the same probability?"
                ),
                "answer = None  # a number",
            ),
            (
                "06.3",
                (
                    "**Break the mask on purpose and predict.** A model has learned memo-hello's replies: it gives "
                    "every reply target probability 0.9 (`P_REPLY_06_3`), and knows nothing of the rest (a "
                    "uniform guess over all 50 304 columns). Its assistant-only loss is -ln 0.9 ≈ 0.11 nats. "
                    "Now train every token (plain SFT, the mask switched off): predict its loss on memo-hello, in "
                    "nats per target. Is it a model that learned nothing?"
                ),
                "answer = None  # a loss in nats",
            ),
        ],
    },
    "06b_chat_templates": {
        "learn": [
            "render one conversation in today's chat templates (Open-Assistant, ChatML, Llama 3) and see what each trains;",
            (
                "get the mask from `apply_chat_template`'s `{% generation %}` blocks, and from a template without "
                "them by rendering growing prefixes;"
            ),
            "check that TRL's `SFTTrainer` trains the same tokens, and see what adding tokens does to the embeddings;",
            "choose which tokens of a reply to train (marker, text, end) from a measurement.",
        ],
        "prereq": (
            "notebooks 01–06. The measurement at the end trains in notebook 07's toy world; its results are loaded "
            "here."
        ),
        "exercises": [
            (
                "06b.1",
                (
                    "Zephyr's layout (`sft_utils.exercises.ZEPHYR`) writes `<|user|>\\n…</s>\\n<|assistant|>\\n…</s>\\n`. "
                    "Write `zephyr_label_mask(input_ids)`: one 0/1 per token of a conversation in that format "
                    "(`tokenize_conversation(…, chat_format=ZEPHYR)`'s ids), 1 on what the model must write after "
                    "the generation prompt `<|assistant|>\\n`, up to where it stops. The check runs it on "
                    "conversations you have not seen."
                ),
                (
                    "zephyr_tokenizer = load_tokenizer(chat_format=sft_utils.exercises.ZEPHYR, verbose=False)\n\n\n"
                    "def zephyr_label_mask(input_ids):\n"
                    "    ...  # your code, using zephyr_tokenizer\n\n\n"
                    "answer = None  # your function: answer = zephyr_label_mask"
                ),
            ),
            (
                "06b.2",
                (
                    "**Change it and predict.** ChatML trains 11 of memo-hello's 42 tokens. Change it to train each "
                    "reply's whole header too, Open-Assistant's way: "
                    "`dataclasses.replace(CHATML, train_marker=True, train_header=True)`. Predict from the token "
                    "table above how many tokens are trained then; check with `tokenize_conversation`."
                ),
                "answer = None  # a number of tokens",
            ),
        ],
    },
    "07_train_it_yourself": {
        "learn": [
            "write the training loop yourself: micro-batches, token-weighted accumulation, clipping, AdamW, held-out evaluation;",
            "watch a model learn a task from random weights on a CPU: replies that are noise, then right and stopped;",
            "answer the masked-versus-plain question by experiment, with prompt-loss weights in between.",
        ],
        "prereq": "notebooks 01–06. A CPU is enough.",
        "exercises": [
            (
                "07.1",
                (
                    "Write `accumulate(model, micro_batches)`: the backward pass of one optimizer step over several "
                    "micro-batches in which every trained token weighs the same, returning the step's loss in nats "
                    "per trained token. `masked_loss_sum(model, batch)` gives a micro-batch's (summed loss, count). "
                    "The check runs it on micro-batches you have not seen and compares the gradients."
                ),
                (
                    "def accumulate(model, micro_batches):\n"
                    "    ...  # your code\n\n\n"
                    "answer = None  # your function: answer = accumulate"
                ),
            ),
            (
                "07.2",
                (
                    "Write `prompt_weighted_loss(nll, label_masks, prompt_masks, w)`: the loss of "
                    "`TrainConfig(prompt_loss_weight=w)`, in nats per weighted token, from per-target losses `nll` "
                    "(float `[B, T]`) and two disjoint bool masks `[B, T]` (the reply's targets, the prompt's). "
                    "The check tries several w on tensors you have not seen."
                ),
                (
                    "def prompt_weighted_loss(nll, label_masks, prompt_masks, w):\n"
                    "    ...  # your code\n\n\n"
                    "answer = None  # your function: answer = prompt_weighted_loss"
                ),
            ),
            (
                "07.3",
                (
                    "**Change it and predict.** About a quarter of `last_word`'s training tokens are trained (the share "
                    "printed under 'The model, before training'). With "
                    "`prompt_loss_weight = 0.1`, what share of the loss's total weight do the **prompt's** targets "
                    "carry? Predict from that share first (0.25 or 25 for a quarter), then count the targets of "
                    "`examples`. What does it suggest about a small prompt weight on a task whose prompts are random words?"
                ),
                "answer = None  # the prompt's share of the weight",
            ),
        ],
    },
    "08_finetune_pythia": {
        "learn": [
            "write one training step: forward, masked loss, backward, gradient clipping, AdamW;",
            "run a loop that reports the loss on training and held-out conversations;",
            "prompt the model for a reply that stops at `<|endoftext|>`;",
            (
                "save checkpoints that a new session resumes exactly, and fit a larger Pythia with LoRA and gradient "
                "checkpointing."
            ),
        ],
        "prereq": "notebooks 01–07. A GPU for real sizes (a Colab T4 is enough); a CPU runs the smoke mode.",
        "exercises": [
            (
                "08.1",
                (
                    "Gradient accumulation (the README's out-of-memory knobs): one step accumulates 4 "
                    "micro-batches holding 12, 30, 18 and 40 trained targets, each loss computed with "
                    '`MaskedCrossEntropyLoss(reduction="sum")`. By what must the summed gradient be divided to '
                    "equal the gradient of one big batch's mean loss?"
                ),
                "counts = sft_utils.exercises.COUNTS_08_1  # [12, 30, 18, 40]\nanswer = None  # a number",
            ),
            (
                "08.2",
                (
                    "**Change it and predict.** LoRA with `lora_r=8` on pythia-14m trains 98 304 parameters (the "
                    "smoke mode's line above). Predict the trainable parameters with `lora_r=16` on pythia-160m "
                    "(768 wide, 12 layers; pythia-14m is 128 wide, 6 layers), from the shapes of the adapters. "
                    "`sft_utils.scale.memory_estimate.lora_trainable_parameters` checks a prediction."
                ),
                "answer = None  # a number of parameters",
            ),
            (
                "08.3",
                (
                    "Many models have no pad token and pad with `<|endoftext|>`. Write `pad_batch(examples, pad_id)`: "
                    "right-pad the examples' `input_ids` (with `pad_id`), `attention_mask` and `label_mask` into "
                    "`[B, L]` tensors, so that with `pad_id = 0` every reply's closing `<|endoftext|>` stays trained. "
                    "The check runs it with pad id 0 on examples you have not seen."
                ),
                (
                    "def pad_batch(examples, pad_id):\n"
                    "    ...  # your code\n\n\n"
                    "answer = None  # your function: answer = pad_batch"
                ),
            ),
        ],
    },
}

ORDER = list(NOTEBOOKS)


TITLES = {
    "01_format": "01 · Format",
    "02_tokenize": "02 · Tokenize",
    "03_mask": "03 · Mask",
    "04_shift": "04 · Shift",
    "05_project": "05 · Project",
    "06_masked_loss": "06 · Masked loss",
    "06b_chat_templates": "06b · Chat templates",
    "07_train_it_yourself": "07 · Train it yourself",
    "08_finetune_pythia": "08 · Fine-tune Pythia",
}


def title(name: str) -> str:
    return TITLES[name]


def top_cells(name: str) -> list:
    info, times = NOTEBOOKS[name], TIMES[name]
    learn = "\n".join(f"- {line}" for line in info["learn"])
    intro = f"""{badge_markdown(f"notebooks/{name}.ipynb")} &nbsp; [course map](../README.md#course-map) · [glossary](../docs/glossary.md)

**What you will learn**

{learn}

**Prerequisites:** {info["prereq"]}

**Run time:** {cpu_run_time(times)} · {times["gpu"]}. On Colab, run the set-up cell below first."""
    return [
        nbformat.v4.new_markdown_cell(intro, id=f"{PREFIX}intro"),
        nbformat.v4.new_code_cell(SETUP, id=f"{PREFIX}setup"),
        nbformat.v4.new_code_cell(VERSIONS, id=f"{PREFIX}versions", metadata={"tags": list(VERSIONS_TAGS)}),
    ]


def end_cells(name: str) -> list:
    info = NOTEBOOKS[name]
    number = name.split("_")[0]
    head = (
        "## Exercises\n\n"
        "Run the notebook from the top first (the exercises use its variables). Then replace `None` with your "
        "answer and run the cell: the check says whether it is right and why, without giving the answer away. "
        "Stuck? The solutions are in "
        f"[solutions/s{number}.py](solutions/s{number}.py)."
    )
    if "exercises_intro" in info:
        head += "\n\n" + info["exercises_intro"]
    cells = [nbformat.v4.new_markdown_cell(head, id=f"{PREFIX}exercises")]
    for exercise_id, task, code in info["exercises"]:
        slug = exercise_id.replace(".", "-")
        cells.append(nbformat.v4.new_markdown_cell(f"**Exercise {exercise_id}.** {task}", id=f"{PREFIX}task-{slug}"))
        source = f'{code}\nsft_utils.exercises.check("{exercise_id}", answer)'
        cells.append(nbformat.v4.new_code_cell(source, id=f"{PREFIX}exercise-{slug}"))
    index = ORDER.index(name)
    if index + 1 < len(ORDER):
        following = ORDER[index + 1]
        nxt = f"**Next:** [{title(following)}]({following}.ipynb)"
    else:
        nxt = (
            "**You have finished the course.** Next steps: fine-tune on Open-Assistant's oasst1 on a GPU, and "
            "compare the assistant-only loss with plain SFT on the same data"
        )
    links = f"{nxt} · [course map](../README.md#course-map) · [glossary](../docs/glossary.md)"
    cells.append(nbformat.v4.new_markdown_cell(links, id=f"{PREFIX}next"))
    return cells


def keep_outputs(cell, old):
    """``cell``, with the outputs and execution count of ``old`` when both are code with the same source."""
    if old is not None and cell.cell_type == "code" == old.cell_type and old.source == cell.source:
        cell.outputs, cell.execution_count = old.outputs, old.execution_count
    return cell


def main() -> None:
    for name in NOTEBOOKS:
        path = ROOT / "notebooks" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        kept = [c for c in nb.cells if not c.get("id", "").startswith(PREFIX)]
        # An unchanged code cell keeps its outputs: only notebooks whose new code changed need re-executing.
        old = {c.id: c for c in nb.cells if c.get("id", "").startswith(PREFIX)}
        nb.cells = (
            [keep_outputs(c, old.get(c.id)) for c in top_cells(name)]
            + kept
            + [keep_outputs(c, old.get(c.id)) for c in end_cells(name)]
        )
        nbformat.write(nb, path)
        print(f"{path.name}: {len(kept)} cells kept, {len(nb.cells) - len(kept)} added")


if __name__ == "__main__":
    main()
