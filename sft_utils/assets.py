"""``python -m sft_utils.assets``: build the offline copy of Pythia's tokenizer. See :mod:`sft_utils.models.assets`."""

from .models.assets import main

if __name__ == "__main__":
    raise SystemExit(main())
