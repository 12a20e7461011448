"""The memo's six steps, one module each, in the order a conversation goes through them.

format    step 1  format_conversation: messages -> one string                  notebook 01
tokenize  step 2  load_tokenizer: Pythia's BPE plus the format's role tokens    notebook 02
mask      step 3  tokenize_conversation: ids, message indices, label mask       notebook 03
template_mask     mask_from_template: step 3 for any chat template, by diffing growing prefixes
example           the example step 3 returns, and the one check of it that steps 4-6 and the viewers share
shift     step 4  shift_for_next_token, collators: targets and label_masks      notebook 04
project   step 5  output_head: hidden states -> logits [batch, seq, vocab]      notebook 05
loss      step 6  MaskedCrossEntropyLoss: CE over the trained tokens only       notebook 06

Every step takes ``chat_format=`` (:mod:`sft_utils.chat_format`) where the format matters.
"""
