"""``python -m sft_utils.inspect``: a mask report for your own data, to look at before a long fine-tune.

The steps of notebooks 03_mask and 06b_chat_templates, run over a whole file. Reads a JSONL file of conversations, masks each one as training will
(a course chat format through :func:`sft_utils.tokenize_conversation`, or a chat template file through
:func:`sft_utils.steps.template_mask.mask_from_template`), checks the masks (:mod:`sft_utils.inspect.masks`), and
writes one self-contained HTML page (:mod:`sft_utils.viz.report`)::

    python -m sft_utils.inspect data/conversations.jsonl --chat-format chatml --max-length 128 --out report.html
    python -m sft_utils.inspect my_data.jsonl --template my_template.jinja --out report.html
"""

from .masks import FORMATS, inspect_data

__all__ = ["FORMATS", "inspect_data"]
