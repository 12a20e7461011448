"""Notebook 08's GPU mode fits a Colab T4 with room to spare, cell by cell, by the course's memory estimator; the
notebook builds its run from the settings checked here (not from a copy)."""

import re

import nbformat
import pytest

from sft_utils.course.finetune import (
    CELL_IDS,
    GPU_MODEL,
    LORA_SETTINGS,
    T4_BUDGET,
    T4_MEMORY,
    lora_config,
    notebook_config,
    notebook_memory,
)
from sft_utils.course.notebooks import NOTEBOOK_DIR
from sft_utils.scale.memory_estimate import (
    estimate_training_memory,
    forward_memory,
    memory_table,
    weights_bytes,
)

NOTEBOOK = NOTEBOOK_DIR / "08_finetune_pythia.ipynb"
# (loop, step in view): a T4 (fp16 with the loop's scaler, fp32 without one), an Ampere or later GPU (bf16).
GPUS = {"T4": ("fp16", "fp32"), "native bf16": ("bf16", "bf16")}


def code():
    return "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code")


def test_the_notebook_builds_its_runs_from_these_settings():
    source = code()
    assert re.search(r"^config = notebook_config\(SMOKE, OUTPUT_DIR\)", source, re.MULTILINE)
    assert "lora_config(config, " in source
    assert "TrainConfig(model=" not in source and '"lora_r": 8' not in source  # no second copy of the settings
    assert "notebook_memory(config, " in source  # and it prints the estimate of its own cells


def test_gpu_mode_settings():
    config = notebook_config(smoke=False, output_dir=None)
    assert (config.model, config.batch_size, config.max_length, config.precision) == (GPU_MODEL, 8, 1024, "auto")
    assert config.lora_r is None and not config.gradient_checkpointing
    lora = lora_config(config, lr=2e-4)
    assert (lora.lora_r, lora.gradient_checkpointing, lora.lr, lora.output_dir) == (8, True, 2e-4, None)
    assert lora.batch_size == config.batch_size and lora.max_length == config.max_length
    assert {k: getattr(lora, k) for k in LORA_SETTINGS} == LORA_SETTINGS
    smoke = notebook_config(smoke=True, output_dir="x")
    assert (smoke.model, smoke.precision, smoke.output_dir) == ("EleutherAI/pythia-14m", "fp32", "x")


@pytest.mark.parametrize("gpu", GPUS)
def test_every_cell_of_gpu_mode_fits_under_12_gb_of_a_t4(gpu):
    loop, step = GPUS[gpu]
    cells = notebook_memory(notebook_config(smoke=False, output_dir=None), loop_precision=loop, step_precision=step)
    table = memory_table(cells, budget=T4_BUDGET, capacity=T4_MEMORY)
    assert T4_BUDGET == 12e9 and T4_MEMORY == 15e9
    assert all(c.total <= T4_BUDGET for c in cells), table
    # The step in view, the largest cell on a T4: the model plus one copy training in fp32 with the chunked loss.
    in_view = next(c for c in cells if c.cell == "one step, in view")
    expected = weights_bytes(GPU_MODEL) + estimate_training_memory(GPU_MODEL, 1024, 8, precision=step).total
    assert in_view.total == expected
    assert max(cells, key=lambda c: c.total) is in_view
    # train(): the README's 6.0 GB, the step alone (its model is the one on the GPU).
    train = next(c for c in cells if c.cell == "train()")
    assert round(train.total / 1e9, 1) == 6.0


def test_the_step_in_view_would_not_fit_as_it_was_written_before():
    """What the chunked loss and one copy at a time save: three fp32 models (two with AdamW state) and the full
    [8, 1024, 50 304] fp32 logits come to more than the budget."""
    weights = weights_bytes(GPU_MODEL)
    one_copy = estimate_training_memory(GPU_MODEL, 1024, 8, precision="fp32")
    logits = 8 * 1024 * 50304 * 4
    three_models = weights + one_copy.total + (one_copy.weights + one_copy.optimizer) + 2 * logits
    assert three_models > T4_BUDGET


def test_forward_memory_counts_the_logits_it_builds():
    full = forward_memory("pythia-160m", 1024, 1, precision="fp32")
    chunked = forward_memory("pythia-160m", 1024, 1, precision="fp32", full_logits=False)
    assert full >= 1024 * 50304 * 8  # float32 logits and their log-softmax
    assert chunked < full
    assert forward_memory("pythia-160m", 1024, 2) > full  # two conversations, and the padding bias
    with pytest.raises(ValueError, match="batch_size"):
        forward_memory("pythia-160m", 1024, 0)
    with pytest.raises(ValueError, match="size"):
        forward_memory("gpt-2", 1024, 1)


def test_memory_table_marks_a_cell_over_budget():
    cells = notebook_memory(notebook_config(smoke=False, output_dir=None), loop_precision="fp16", step_precision="fp32")
    lines = memory_table(cells, budget=2e9).splitlines()
    row = next(line for line in lines if line.startswith("train()"))
    assert "OVER BUDGET" in row and "6.02" in row
    assert "OVER" not in next(line for line in lines if line.startswith("model "))


def test_every_estimated_cell_names_a_cell_of_the_notebook():
    ids = {c.get("id") for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"}
    cells = notebook_memory(notebook_config(smoke=False, output_dir=None), loop_precision="bf16", step_precision="bf16")
    assert [c.cell for c in cells] == list(CELL_IDS)
    missing = {name: cell for name, cell in CELL_IDS.items() if cell not in ids}
    assert not missing, f"estimated cells not in the notebook: {missing}"


def test_forward_memory_matches_a_measured_forward_of_pythia_14m():
    """A no-gradient forward to the float32 logits and their log-softmax, measured on a CPU (``peak_memory``)."""
    import torch
    from transformers import GPTNeoXForCausalLM

    from sft_utils.models.pythia import pythia_config
    from sft_utils.scale.memory import peak_memory

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(pythia_config("pythia-14m")).eval()
    ids = torch.randint(0, 50000, (2, 256))
    mask = torch.ones_like(ids)
    mask[1, 128:] = 0  # padding, as a batch of two conversations has

    def forward():
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1).shape

    measured, _ = peak_memory(forward)
    assert abs(forward_memory("pythia-14m", 256, 2) / measured - 1) < 0.05


def test_the_readme_states_what_the_estimator_gives_on_a_t4():
    readme = (NOTEBOOK_DIR.parent / "README.md").read_text()
    cells = notebook_memory(notebook_config(smoke=False, output_dir=None), loop_precision="fp16", step_precision="fp32")
    peaks = {c.cell: c.total for c in cells}
    assert f"`train()`'s peak is {peaks['train()'] / 1e9:.1f} GB" in readme
    assert f"the step in view, {peaks['one step, in view'] / 1e9:.1f} GB on a T4" in readme
    assert f"stays under {T4_BUDGET / 1e9:.0f} GB" in readme
