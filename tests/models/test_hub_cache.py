"""A Pythia laid out in a Hugging Face hub cache as huggingface_hub lays it out, loaded *by name* offline.

The cache is read where ``huggingface_hub.constants.HF_HUB_CACHE`` points, a constant computed once, when
huggingface_hub is imported, from ``HF_HUB_CACHE`` / ``HF_HOME``; ``constants.HF_HUB_OFFLINE`` likewise.
transformers 5 reads both through those module attributes at call time, but transformers 4 copies them at
import (``transformers.utils.hub.TRANSFORMERS_CACHE``, ``_is_offline_mode``), and conftest.py has already
imported both with an empty cache. So the loading runs in a fresh interpreter whose environment names the
cache before anything is imported, as a user's would.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import scan_cache_dir
from transformers import AutoTokenizer, GPTNeoXForCausalLM

from sft_utils.models.assets import offline_tokenizer_dir
from sft_utils.models.pythia import pythia_config

ROOT = Path(__file__).resolve().parents[2]
REPO_ID = "EleutherAI/pythia-14m"
LFS_SUFFIXES = (".safetensors", ".bin")  # stored in git LFS on the hub: their blob is named by sha256


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file: the name the cache gives the blob of a file not kept in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out_hub_cache(hub_cache: Path, repo_id: str, folder: Path) -> str:
    """Put ``folder``'s files into ``hub_cache`` as one commit of model repo ``repo_id``, as huggingface_hub does:
    ``models--{org}--{name}/blobs/<hash>``, ``snapshots/<commit>/<file>`` a relative symlink to its blob, and
    ``refs/main`` holding the commit. Returns the commit (40 hex digits)."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    blobs = {}
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        blobs[path.name] = hashlib.sha256(data).hexdigest() if path.suffix in LFS_SUFFIXES else git_blob_sha1(data)
        (repo / "blobs" / blobs[path.name]).write_bytes(data)
    commit = hashlib.sha1(json.dumps(blobs, sort_keys=True).encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, blob in blobs.items():
        (snapshot / name).symlink_to(os.path.relpath(repo / "blobs" / blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)  # no newline, as huggingface_hub writes it
    return commit


# Run in the child interpreter: load by name only, and report what came from where.
CHILD = """
import json, sys
import torch
import huggingface_hub
from transformers import AutoTokenizer
import sft_utils

model = sft_utils.load_model("EleutherAI/pythia-14m", verbose=False)
torch.save(model.state_dict(), sys.argv[1] + "/state_dict.pt")
tokenizer = sft_utils.load_tokenizer("EleutherAI/pythia-14m", verbose=False)
by_name = AutoTokenizer.from_pretrained("EleutherAI/pythia-14m")
report = {
    "hub_cache": huggingface_hub.constants.HF_HUB_CACHE,
    "offline": huggingface_hub.constants.HF_HUB_OFFLINE,
    "model_source": model.sft_source,
    "pretrained": model.sft_pretrained,
    "resolved": huggingface_hub.try_to_load_from_cache("EleutherAI/pythia-14m", "model.safetensors"),
    "tokenizer_source": tokenizer.sft_source,
    "vocab": tokenizer.get_vocab(),
    "chat_template": tokenizer.chat_template,
    "by_name_vocab": by_name.get_vocab(),
}
with open(sys.argv[1] + "/report.json", "w") as f:
    json.dump(report, f)
"""
# Variables that would point the child at another cache, or back online.
CACHE_VARIABLES = (
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "TRANSFORMERS_CACHE",
    "PYTORCH_TRANSFORMERS_CACHE",
    "PYTORCH_PRETRAINED_BERT_CACHE",
    "TRANSFORMERS_OFFLINE",
)


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory):
    """``(HF_HOME, commit, saved model)``: a random-weight pythia-14m in float16 (as the hub's checkpoints are)
    and Pythia's tokenizer (the files load_tokenizer reads offline), laid out in ``HF_HOME/hub``."""
    if not (offline_tokenizer_dir() / "tokenizer.json").exists():
        pytest.skip(f"Pythia's tokenizer is not built in {offline_tokenizer_dir()}: python -m sft_utils.assets")
    files = tmp_path_factory.mktemp("saved")
    torch.manual_seed(7)
    model = GPTNeoXForCausalLM(pythia_config(REPO_ID)).half()
    model.save_pretrained(files)
    AutoTokenizer.from_pretrained(offline_tokenizer_dir()).save_pretrained(files)
    home = tmp_path_factory.mktemp("hf-home")
    commit = lay_out_hub_cache(home / "hub", REPO_ID, files)
    return home, commit, model


def test_the_layout_is_what_huggingface_hub_finds(hub_home):
    home, commit, _ = hub_home
    (repo,) = scan_cache_dir(home / "hub").repos
    (revision,) = repo.revisions
    assert (repo.repo_id, repo.repo_type, revision.commit_hash, set(revision.refs)) == (
        REPO_ID,
        "model",
        commit,
        {"main"},
    )
    names = {f.file_name for f in revision.files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    for f in revision.files:
        assert (
            f.file_path.is_symlink()
            and f.blob_path.parent == home / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "blobs"
        )


def test_load_model_and_load_tokenizer_find_the_cached_pythia_by_name_offline(hub_home, tmp_path, tokenizer):
    home, commit, saved = hub_home
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARIABLES}
    env |= {
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "SFT_COURSE_CACHE": str(tmp_path / "no-offline-copy"),  # the tokenizer can come from the hub cache only
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-c", CHILD, str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["hub_cache"], report["offline"]) == (str(home / "hub"), True)

    assert report["pretrained"] is True
    snapshot = home / "hub" / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / commit
    assert report["resolved"] == str(snapshot / "model.safetensors")  # the file the cache resolves the name to
    assert report["model_source"] == f"hub cache ({REPO_ID}, offline)"
    loaded = torch.load(tmp_path / "state_dict.pt")
    expected = {name: tensor.float() for name, tensor in saved.state_dict().items()}
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[name], expected[name]) for name in expected)

    assert report["tokenizer_source"] == f"hub cache ({REPO_ID}, offline)"
    assert report["vocab"] == tokenizer.get_vocab() and report["chat_template"] == tokenizer.chat_template
    assert len(report["by_name_vocab"]) == 50277  # AutoTokenizer alone: Pythia's tokenizer, no role tokens
    assert report["by_name_vocab"].items() <= tokenizer.get_vocab().items()
