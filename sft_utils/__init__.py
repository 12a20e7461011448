"""sft_utils: the code the sft-course notebooks share, one memo step per module.

formatting   step 1  format_conversation                      notebook 01
tokenization step 2  load_tokenizer (+ assets for offline)    notebook 02
masking      step 3  tokenize_conversation                    notebook 03
shifting     step 4  shift_for_next_token, collators          notebook 04
modeling     step 5  load_model, output_head                  notebook 05
loss         step 6  MaskedCrossEntropyLoss                   notebook 06
training             train_step, evaluate, masked_loss_sum    notebook 07
oasst                oasst1 trees -> one thread per tree      notebook 07
trainer, train       the full loop; python -m sft_utils.train notebook 07
truncation           truncation_report                        notebook 04
packing              PackedCollator (an option)               notebook 04
preprocess           preprocess_dataset (datasets.map)        notebook 05
chunked_loss         select-then-project masked loss          notebook 05
memory               peak_memory                              notebook 05
exercises            check(exercise_id, answer)               notebooks 01-07 (their ends)
check_env            python -m sft_utils.check_env            README
colab                colab_url(notebook)                      the notebooks' badges
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

# The one place the repository's address is written. Colab badges and the notebooks' install cells are
# derived from it; tests/test_colab.py checks that every notebook agrees. (No git remote is configured in
# this checkout: this is the address the course is published under.)
REPO_URL = "https://github.com/sft-course/sft-course"
REPO_BRANCH = "main"

try:
    __version__ = _version("sft-course")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

from . import exercises  # so that `sft_utils.exercises.check(...)` works after `import sft_utils`
from .data import course_data_path, load_conversations, shared_data_dir
from .formatting import ConversationError, format_conversation, normalize_messages, render_message
from .loss import MaskedCrossEntropyLoss, per_token_nll
from .masking import generation_prompt_ids, tokenize_conversation
from .modeling import load_model, output_head, pythia_config
from .packing import PackedCollator, pack_examples
from .shifting import (
    IGNORE_INDEX,
    AssistantOnlyCollator,
    CausalLMCollator,
    labels_from_label_mask,
    shift_for_next_token,
)
from .tokenization import ROLE_TOKEN_IDS, ROLE_TOKENS, OfflineAssetsMissing, load_tokenizer
from .truncation import TruncationReport, tokenize_conversations, truncation_report

__all__ = [
    "IGNORE_INDEX",
    "REPO_BRANCH",
    "REPO_URL",
    "ROLE_TOKENS",
    "ROLE_TOKEN_IDS",
    "AssistantOnlyCollator",
    "CausalLMCollator",
    "ConversationError",
    "MaskedCrossEntropyLoss",
    "OfflineAssetsMissing",
    "PackedCollator",
    "TruncationReport",
    "course_data_path",
    "exercises",
    "format_conversation",
    "generation_prompt_ids",
    "labels_from_label_mask",
    "load_conversations",
    "load_model",
    "load_tokenizer",
    "normalize_messages",
    "output_head",
    "pack_examples",
    "per_token_nll",
    "pythia_config",
    "render_message",
    "shared_data_dir",
    "shift_for_next_token",
    "tokenize_conversation",
    "tokenize_conversations",
    "truncation_report",
]
