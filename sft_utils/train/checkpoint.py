"""Saving a fine-tuned model so that ``from_pretrained`` reloads it and generation stops where it should.

Introduced in notebook 07_finetune_pythia.
"""

from __future__ import annotations


def save_checkpoint(model, tokenizer, output_dir, accelerator=None) -> None:
    """``save_pretrained`` of model (safetensors) and tokenizer into ``output_dir``, by the main process
    only (every process must call it: under FSDP the full weights are gathered first). Sets
    ``eos_token_id`` = 0 (``<|endoftext|>``) so that generation from the reloaded folder stops there."""
    state_dict = None
    if accelerator is not None:
        accelerator.wait_for_everyone()
        state_dict = accelerator.get_state_dict(model)  # FSDP: gathers the full weights (all processes call it)
        model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        if not accelerator.is_main_process:
            return
    model.config.eos_token_id = model.generation_config.eos_token_id = 0
    model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir, state_dict=state_dict)
    tokenizer.save_pretrained(output_dir)
