import os
import tempfile

# The suite runs offline on purpose, whatever the machine: the outputs that nbval checks are those of
# the offline path (random weights from a seed), and an empty hub cache keeps out any Pythia weights
# downloaded on an earlier online run. Set before transformers is imported; nbval's kernels inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="sft-course-empty-hub-cache-")

import pytest

import sft_utils


@pytest.fixture(scope="session")
def tokenizer():
    """Pythia's tokenizer with role tokens (hub, else the offline copy that `make test` builds)."""
    return sft_utils.load_tokenizer(verbose=False)


@pytest.fixture(scope="session")
def format_tokenizer(tokenizer):
    """``format_tokenizer(F)``: Pythia's tokenizer with chat format F's tokens and template, loaded once per format
    (Open-Assistant's is the session's ``tokenizer``)."""
    loaded = {sft_utils.OPEN_ASSISTANT.added_tokens: tokenizer}

    def load(chat_format):
        if chat_format.added_tokens not in loaded:
            loaded[chat_format.added_tokens] = sft_utils.load_tokenizer(chat_format=chat_format, verbose=False)
        return loaded[chat_format.added_tokens]

    return load


@pytest.fixture(scope="session")
def course_conversations():
    return sft_utils.load_conversations(sft_utils.course_data_path())


@pytest.fixture(scope="session")
def shared_conversations():
    shared = sft_utils.shared_data_dir()
    if shared is None or not (shared / "conversations.jsonl").exists():
        pytest.skip("real Open-Assistant data absent: no ../shared/data/conversations.jsonl (or $SFT_SHARED_DATA)")
    return sft_utils.load_conversations(shared / "conversations.jsonl")


@pytest.fixture(scope="session")
def tiny_model():
    """pythia-14m's architecture with random weights (seeded): real shapes, fast on a CPU."""
    import torch
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(sft_utils.pythia_config("pythia-14m"))
    return model.eval()


@pytest.fixture(scope="session")
def mask_runs():
    """``mask_runs(example)``: (message index, trained) of each run of tokens, the mask's shape whatever the
    token counts."""

    def runs(example) -> list[tuple[int, bool]]:
        found = []
        for index, trained in zip(example["message_indices"], example["label_mask"]):
            if not found or found[-1] != (index, trained):
                found.append((index, trained))
        return found

    return runs
