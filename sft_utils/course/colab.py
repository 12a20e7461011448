"""Google Colab: each notebook's "Open in Colab" address, derived from :data:`sft_utils.REPO_URL`.

Introduced in the notebooks' first cells (the badge, then a set-up cell that installs ``sft_utils`` on
Colab only). ``tests/course/test_colab.py`` checks every notebook's badge and set-up cell against this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import REPO_BRANCH, REPO_URL

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_CLONE_DIR = "/content/sft-course"  # where the set-up cell clones the repository on Colab


def colab_url(notebook: str) -> str:
    """Colab's address of a notebook of the repository, e.g. ``colab_url("notebooks/01_format.ipynb")``.

    Raises ValueError when :data:`sft_utils.REPO_URL` is not a ``https://github.com/owner/name`` address
    (Colab opens notebooks from GitHub only) or the path is not a relative ``.ipynb`` path.
    """
    prefix = "https://github.com/"
    owner_name = REPO_URL.removeprefix(prefix).removesuffix(".git")
    if not REPO_URL.startswith(prefix) or owner_name.count("/") != 1:
        raise ValueError(f"REPO_URL must be https://github.com/<owner>/<name>, got {REPO_URL!r}")
    if notebook.startswith("/") or not notebook.endswith(".ipynb"):
        raise ValueError(f"expected a notebook path inside the repository, got {notebook!r}")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{REPO_BRANCH}/{notebook}"


def badge_markdown(notebook: str) -> str:
    """The markdown of the badge: ``[![Open In Colab](badge)](colab_url(notebook))``."""
    return f"[![Open In Colab]({COLAB_BADGE})]({colab_url(notebook)})"


def run_folder(name: str, *, use_drive: bool = False, drive_root: str = "/content/drive") -> Path:
    """Where a run keeps its checkpoints: ``checkpoints/<name>``, or with ``use_drive=True`` on Colab, Google
    Drive's ``MyDrive/sft-course/<name>``, so that they outlive the runtime (a disconnect ends it). Drive is
    opt-in because mounting it waits for the learner's permission in a pop-up: "Run all" would stop there.
    Outside Colab ``use_drive`` changes nothing. Introduced in notebook 08_finetune_pythia (resuming after a
    disconnect). Raises ValueError for a name that is empty or holds a path separator, TypeError for a
    ``use_drive`` that is not True or False."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"name must be one folder name such as 'resume-demo', got {name!r}")
    if not isinstance(use_drive, bool):
        raise TypeError(f"use_drive must be True or False, got {use_drive!r}")
    if not use_drive or "google.colab" not in sys.modules:
        return Path("checkpoints") / name
    from google.colab import drive

    drive.mount(drive_root)
    return Path(drive_root) / "MyDrive" / "sft-course" / name
