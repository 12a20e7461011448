"""The memo's steps at data-set and GPU scale, each tested equal to its twin in :mod:`sft_utils.steps`.

truncation       tokenize_conversations, truncation_report: what max_length cut     notebook 04
packing          PackedCollator: several conversations per row, kept apart         notebook 04
preprocess       preprocess_dataset: steps 1-3 through datasets.map, batched       notebook 05
chunked_loss     steps 5-6 fused: project only the trained rows, chunk by chunk    notebook 05
memory           peak_memory: the peak tensor bytes of a piece of code             notebook 05
memory_estimate  estimate_training_memory: a training step's peak, before running  docs/performance.md
                 (and forward_memory, CellMemory: what a notebook cell holds)       notebook 08
trl_route        trl_label_masks: the tokens TRL's SFTTrainer trains, as label masks notebook 06b
"""
