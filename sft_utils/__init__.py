"""sft_utils: the code the sft-course notebooks share, in layers you can see in the folder tree.

chat_format  ChatFormat; OPEN_ASSISTANT, CHATML, LLAMA3: headers, end token, role tokens, what a reply trains
steps/       the memo's six steps, one module each (format, tokenize, mask, shift, project, loss)
scale/       the same steps at data-set and GPU scale (truncation, packing, preprocess, chunked loss, memory)
train/       config, precision, one step, the loop, evaluation, checkpoints; python -m sft_utils.train
data/        the course's conversations; oasst1 trees -> one thread per tree
models/      Pythia configs, hub or offline loading, the offline tokenizer (python -m sft_utils.assets)
viz/         token chips, the mask viewer widget, heatmaps, loss curves, the mask report's page
inspect/     python -m sft_utils.inspect: a mask report for your own data (an HTML page)
course/      exercises, Colab links, the set-up check (python -m sft_utils.check_env), the notebook runner

Every name below is importable from ``sft_utils`` itself.
"""

import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

# The one place the repository's address is written. Colab badges and the notebooks' install cells are
# derived from it, and every notebook must agree. (No git remote is configured in
# this checkout: this is the address the course is published under.)
REPO_URL = "https://github.com/sft-course/sft-course"
REPO_BRANCH = "main"

try:
    __version__ = _version("sft-course")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

from .chat_format import CHATML, LLAMA3, OPEN_ASSISTANT, ChatFormat
from .course import exercises  # so that `sft_utils.exercises.check(...)` works after `import sft_utils`
from .data.conversations import course_data_path, load_conversations, shared_data_dir
from .models.pythia import load_model, pythia_config
from .scale.packing import PackedCollator, pack_examples
from .scale.truncation import TruncationReport, tokenize_conversations, truncation_report
from .steps.format import ConversationError, format_conversation, normalize_messages, render_message
from .steps.loss import MaskedCrossEntropyLoss, per_token_nll
from .steps.mask import generation_prompt_ids, tokenize_conversation
from .steps.project import output_head
from .steps.shift import (
    IGNORE_INDEX,
    AssistantOnlyCollator,
    CausalLMCollator,
    labels_from_label_mask,
    shift_for_next_token,
)
from .steps.tokenize import ROLE_TOKEN_IDS, ROLE_TOKENS, OfflineAssetsMissing, load_tokenizer
from .train.precision import resolve_precision

# `import sft_utils.exercises` and `from sft_utils.exercises import …` as well as the attribute.
sys.modules[f"{__name__}.exercises"] = exercises

__all__ = [
    "CHATML",
    "IGNORE_INDEX",
    "LLAMA3",
    "OPEN_ASSISTANT",
    "REPO_BRANCH",
    "REPO_URL",
    "ROLE_TOKENS",
    "ROLE_TOKEN_IDS",
    "AssistantOnlyCollator",
    "CausalLMCollator",
    "ChatFormat",
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
    "resolve_precision",
    "shared_data_dir",
    "shift_for_next_token",
    "tokenize_conversation",
    "tokenize_conversations",
    "truncation_report",
]
