"""TRL's SFT data preparation, read back as the course's label masks: which tokens ``trl.SFTTrainer`` trains.

Introduced in notebook 06b_chat_templates. TRL's ``SFTTrainer`` tokenizes a data set when it is built: rows of
``{"messages": [...]}`` through the tokenizer's chat template (with ``assistant_only_loss=True``, its
``{% generation %}`` blocks give the mask, ``return_assistant_tokens_mask=True``), rows of ``{"prompt",
"completion"}`` by tokenizing the prompt and the prompt followed by the completion (with
``completion_only_loss=True``, the tokens after the prompt are trained). Its collator then sets ``labels`` to
-100 on every untrained token, and the model shifts. Here each prepared row goes through TRL's own collator
alone (no padding) and its labels come back as a ``label_mask``: True where ``labels != -100``.

``trl`` is imported when a function needs it (it takes seconds), not with ``sft_utils``.
"""

from __future__ import annotations

import copy
import tempfile
import warnings

from ..chat_format import ASSISTANT, PROMPTER, SYSTEM, ChatFormat
from ..models.pythia import pythia_config
from ..steps.format import check_conversations, conversation_entry, format_conversation, normalize_messages
from ..steps.mask import require_reply

#: The course's role names -> the ecosystem's (``{"role": "user", "content": …}``), which chat templates read.
ECOSYSTEM_ROLES = {PROMPTER: "user", ASSISTANT: "assistant", SYSTEM: "system"}


def ecosystem_messages(messages, conversation_id=None) -> list[dict]:
    """``messages`` validated (:func:`sft_utils.normalize_messages`) and written as chat templates read them:
    ``[{"role": "user" | "assistant" | "system", "content": str}, …]``. Raises as ``normalize_messages``."""
    normalized = normalize_messages(messages, conversation_id=conversation_id)
    return [{"role": ECOSYSTEM_ROLES[m["role"]], "content": m["text"]} for m in normalized]


def _split_last_reply(conversations):
    """(earlier messages, last reply's text) of each conversation, in the ecosystem's form; ConversationError
    naming the conversation unless it ends with an assistant reply after an earlier message."""
    from ..steps.format import ConversationError, conversation_name

    pairs = []
    for index, conversation in enumerate(check_conversations(conversations)):
        name, messages = conversation_entry(conversation, index)
        messages = ecosystem_messages(require_reply(normalize_messages(messages, conversation_id=name), name), name)
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise ConversationError(f"{conversation_name(name)}: the last message must be the assistant's reply")
        pairs.append((messages[:-1], messages[-1]["content"]))
    return pairs


def chat_rows(conversations) -> list[dict]:
    """One ``{"messages": [...]}`` row per conversation (TRL's conversational language-modeling form), from
    conversations as :func:`sft_utils.load_conversations` returns them (dicts with ``messages``). Raises
    ConversationError naming a conversation whose messages are invalid; TypeError for one conversation where
    the list goes, or an item that is not a dict with ``messages``."""
    rows = []
    for index, conversation in enumerate(check_conversations(conversations)):
        name, messages = conversation_entry(conversation, index)
        rows.append({"messages": ecosystem_messages(messages, name)})
    return rows


def prompt_completion_rows(conversations, *, chat_format: ChatFormat | None = None) -> list[dict]:
    """One ``{"prompt", "completion"}`` row per conversation, split before its last message (the assistant's
    reply), which alone is trained under ``completion_only_loss``.

    Without ``chat_format``: TRL's conversational form, ``{"prompt": [earlier messages], "completion":
    [{"role": "assistant", …}]}``; TRL renders the prompt with the generation prompt (the assistant's header), so
    the completion is what follows the header. With a ``chat_format``: strings, the prompt the earlier messages
    as :func:`sft_utils.format_conversation` writes them, the completion the whole reply as the format renders it
    (header, text, end of message, footer), so the completion starts at the header. (TRL appends the
    tokenizer's end-of-text token to a string completion that does not end with it.)

    Raises ConversationError naming a conversation that does not end with an assistant reply after an earlier
    message, or has invalid messages; TypeError as :func:`chat_rows`.
    """
    rows = []
    for prompt, reply in _split_last_reply(conversations):
        if chat_format is None:
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": reply}]})
        else:
            text = format_conversation(prompt, chat_format=chat_format)
            rows.append({"prompt": text, "completion": chat_format.render(ASSISTANT, reply)})
    return rows


def trl_trainer(rows: list[dict], tokenizer, *, chat_template: str | None = None, **sft_config):
    """A ``trl.SFTTrainer`` built on ``rows`` (its data set prepared, nothing trained): a random-weight
    pythia-14m, a copy of ``tokenizer`` (with ``chat_template`` in place of its own, when given), and
    ``SFTConfig(**sft_config)`` on the CPU in fp32, reporting nowhere, ``max_length=None`` unless given.

    Raises what TRL raises: ValueError for ``assistant_only_loss=True`` with a template without
    ``{% generation %}`` blocks that TRL has no training copy of; RuntimeError for a conversation without a reply.
    """
    import datasets
    import torch
    from transformers import GPTNeoXForCausalLM
    from trl import SFTConfig, SFTTrainer

    tokenizer = copy.deepcopy(tokenizer)  # the trainer may adjust it (its pad token)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    with torch.random.fork_rng():  # random weights that never train: leave the caller's generator as it was
        torch.manual_seed(0)
        model = GPTNeoXForCausalLM(pythia_config("pythia-14m"))
    settings = {"max_length": None, "report_to": "none", "use_cpu": True, "bf16": False} | sft_config
    bars = not datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory(prefix="sft-course-trl-") as output_dir, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecations, seen through TRL
            args = SFTConfig(output_dir=output_dir, **settings)
            return SFTTrainer(
                model=model,
                args=args,
                train_dataset=datasets.Dataset.from_list(rows),
                processing_class=tokenizer,
            )
    finally:
        if bars:
            datasets.enable_progress_bars()


def trl_label_masks(rows: list[dict], tokenizer, *, chat_template: str | None = None, **sft_config) -> list[dict]:
    """What TRL trains on each row: ``{"input_ids": [...], "label_mask": [...]}`` (lists, one entry per token;
    ``label_mask`` True where TRL's collator leaves ``labels`` at the token's id, False where it writes -100), one
    dict per row that TRL kept (TRL drops rows that truncation left without a trained token, without a count).
    Arguments and errors as :func:`trl_trainer` (e.g. ``assistant_only_loss=True``, ``completion_only_loss=True``).
    """
    trainer = trl_trainer(rows, tokenizer, chat_template=chat_template, **sft_config)
    examples = []
    for row in trainer.train_dataset:
        batch = trainer.data_collator([row])
        examples.append(
            {"input_ids": batch["input_ids"][0].tolist(), "label_mask": (batch["labels"][0] != -100).tolist()}
        )
    return examples
