"""``python -m sft_utils.train``: see :mod:`sft_utils.train.cli`."""

from .cli import main

raise SystemExit(main())
