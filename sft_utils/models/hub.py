"""Is the Hugging Face hub reachable? One quick probe instead of transformers' minute of retries.

Introduced in notebook 02_tokenize. Without network, ``from_pretrained("EleutherAI/pythia-70m")``
retries for about 50 s before failing; every notebook would pay that. A 3-second TCP connect tells
the same thing, and ``HF_HUB_OFFLINE=1`` (the library's own switch) skips even that.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


def offline_mode_set() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is 1/true/yes/on (the libraries' own switches)."""
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.lru_cache(maxsize=1)
def hub_is_reachable(timeout_s: float = 3.0) -> bool:
    """True when a TCP connection to the hub endpoint (``HF_ENDPOINT``, default huggingface.co:443) opens
    (to ``HTTPS_PROXY`` instead, when one is set).

    Returns False at once when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to 1/true/yes.
    The answer is cached for the life of the process.
    """
    if offline_mode_set():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    # Behind a proxy the hub is reached through it: probe the proxy instead.
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy and url.scheme == "https":
        url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def local_folder(name_or_path) -> str | None:
    """The folder ``name_or_path`` names (``~`` expanded), or None when it is a hub name.

    Raises:
        FileNotFoundError: it is not an existing folder but cannot be a hub name either (it starts with
            ``/``, ``.`` or ``~``, holds a backslash or more than one ``/``, is a ``Path``, or is a
            file): a mistyped checkpoint folder must not silently fall back to the hub or to random
            weights.
        TypeError: neither a string nor a path.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"expected a hub name or a folder, got {type(name_or_path).__name__}")
    path = os.path.expanduser(os.fspath(name_or_path))
    if os.path.isdir(path):
        return path
    raw = os.fspath(name_or_path)
    if (
        isinstance(name_or_path, os.PathLike)
        or raw.startswith(("/", ".", "~"))
        or "\\" in raw
        or raw.count("/") > 1
        or os.path.exists(path)
    ):
        raise FileNotFoundError(f"no such folder: {raw!r} (and it is not a hub name like 'EleutherAI/pythia-70m')")
    return None


def load_local_hub_or_cache(name_or_path, from_pretrained):
    """Try a local folder, then the hub (when reachable), then the hub cache.

    Args:
        name_or_path: a folder or a hub name.
        from_pretrained: ``AutoTokenizer.from_pretrained`` or a model class's ``from_pretrained``;
            an ``OSError`` from it means "not available from this source".

    Returns:
        ``(loaded, source)`` with ``source`` a short description, or ``(None, why)`` when the hub
        and its cache both failed, so that the caller can use its offline fallback and say why.

    Raises FileNotFoundError for a path that is not a folder (see :func:`local_folder`), and whatever
    ``from_pretrained`` raises for a local folder.
    """
    folder = local_folder(name_or_path)
    if folder is not None:
        return from_pretrained(folder), f"local folder {name_or_path!s}"
    why = "hub unreachable"
    if hub_is_reachable():
        try:
            return from_pretrained(name_or_path), f"hub ({name_or_path})"
        except OSError as error:  # a proxy that blocks the hub, a hub outage: fall back, and say so
            why = f"hub reachable but loading failed: {str(error).splitlines()[0]}"
    try:  # downloaded on an earlier, online run
        return from_pretrained(name_or_path, local_files_only=True), f"hub cache ({name_or_path}, offline)"
    except OSError:
        return None, why
