"""Saving a fine-tuned model so that ``from_pretrained`` reloads it and generation stops where it should.

Introduced in notebook 08_finetune_pythia.
"""

from __future__ import annotations

import contextlib

from ..chat_format import OPEN_ASSISTANT, ChatFormat
from ..steps.mask import token_id
from .generate import stop_token_ids


def save_checkpoint(
    model, tokenizer, output_dir, accelerator=None, *, chat_format: ChatFormat = OPEN_ASSISTANT
) -> None:
    """``save_pretrained`` of model (safetensors) and tokenizer into ``output_dir``, by the main process
    only (every process must call it: under FSDP the full weights are gathered first). Sets ``eos_token_id``
    to the format's end of message (``<|endoftext|>``, 0), and the generation config's to it and the role
    markers (:func:`sft_utils.train.generate.stop_token_ids`), so that generation from the reloaded folder
    stops at the end of the reply, or where a made-up next turn would begin. Raises ValueError when the tokenizer lacks that token."""
    state_dict = None
    if accelerator is not None:
        accelerator.wait_for_everyone()
        state_dict = accelerator.get_state_dict(model)  # FSDP: gathers the full weights (all processes call it)
        model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        if not accelerator.is_main_process:
            return
    model.config.eos_token_id = token_id(tokenizer, chat_format.end_of_message)
    # generate() on the reloaded folder also stops where a made-up next turn would begin (a role marker)
    model.generation_config.eos_token_id = list(stop_token_ids(tokenizer, chat_format))
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir, state_dict=state_dict)
    tokenizer.save_pretrained(output_dir)


@contextlib.contextmanager
def transformers_bars_off():
    """transformers' progress bars (writing and loading a checkpoint's shards) off inside the block, then as they
    were: the switch is global, and the caller may be a notebook or a test, not only a program."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()
