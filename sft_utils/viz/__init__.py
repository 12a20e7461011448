"""Ways to look at tokens and masks: text tables, HTML chips, an interactive viewer, a batch heatmap.

text      aligned_table, token_strings          notebook 03 (plain text, compared by nbval)
chips     token_chips, shifted_chips            notebooks 03, 04, 06 (static HTML)
widgets   MaskViewer                            notebooks 03, 04, 06 (ipywidgets; static HTML fallback)
heatmap   mask_heatmap                          notebooks 03, 04 (matplotlib)
chat      ChatWidget, reply_chips               notebooks 07, 08 (a reply's tokens by probability)
palette   the colours and the fixed loss scale  every notebook's chips, heatmaps and curves
report    report_html, MaskReport               python -m sft_utils.inspect's page (HTML file)
"""

from .chat import ChatWidget, reply_chips
from .chips import counts_text, shifted_chips, token_chips
from .heatmap import mask_heatmap, mask_states
from .text import aligned_table, token_strings
from .widgets import MaskViewer, parse_typed_conversation

__all__ = [
    "ChatWidget",
    "MaskViewer",
    "aligned_table",
    "counts_text",
    "mask_heatmap",
    "mask_states",
    "parse_typed_conversation",
    "reply_chips",
    "shifted_chips",
    "token_chips",
    "token_strings",
]
