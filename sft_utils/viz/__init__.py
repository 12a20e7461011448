"""Ways to look at tokens and masks. Text tables now; widgets and figures join later."""

from .text import aligned_table, token_strings

__all__ = ["aligned_table", "token_strings"]
