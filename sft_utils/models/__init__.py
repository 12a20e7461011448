"""Pythia: its configs, loading from a folder, the hub or its cache, and the offline copy of its tokenizer.

pythia   pythia_config, load_model (random weights offline, and it says so)         notebook 05
hub      hub_is_reachable, load_local_hub_or_cache: local folder, hub, cache, in that order   notebook 02
assets   python -m sft_utils.assets: Pythia's tokenizer without the hub             README (set-up)
"""

from .hub import hub_is_reachable, load_local_hub_or_cache
from .pythia import load_model, pythia_config

__all__ = ["hub_is_reachable", "load_local_hub_or_cache", "load_model", "pythia_config"]
