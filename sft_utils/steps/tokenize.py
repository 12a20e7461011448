"""Step 2 of the memo: Pythia's tokenizer plus Open-Assistant's role tokens.

Introduced in notebook 02_tokenize.

The role tokens are added in one fixed order, so that the ids of the memo hold on every machine and in
every process (ids come from the list order, never from a set or a dict of unknown order)::

    <|prefix_begin|> 50277   <|prefix_end|> 50278   <|prompter|> 50279   <|assistant|> 50280   <|system|> 50281

The padding token is ``<|padding|>`` (id 1), never ``<|endoftext|>`` (id 0): a pad equal to the
end-of-reply token invites code that masks padding *by id* and so hides the real end of every reply.
"""

from __future__ import annotations

import os

from ..chat_format import OPEN_ASSISTANT, ChatFormat, check_chat_format
from ..models.hub import load_local_hub_or_cache
from ..models.pythia import PYTHIA_VOCAB_LEN, pythia_size

#: Added in this order; Open-Assistant's Pythia SFT models use the same list.
ROLE_TOKENS = OPEN_ASSISTANT.added_tokens
#: The ids the memo relies on (Pythia's base vocabulary has 50 277 entries, so they start at 50277).
ROLE_TOKEN_IDS = OPEN_ASSISTANT.added_token_ids(PYTHIA_VOCAB_LEN)
EOS_TOKEN_ID = 0  # Pythia's <|endoftext|>
PAD_TOKEN_ID = 1  # Pythia's <|padding|>
DEFAULT_TOKENIZER = "EleutherAI/pythia-70m"


class OfflineAssetsMissing(FileNotFoundError):
    """Neither the hub nor the offline copy of Pythia's tokenizer is available."""


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json")


def _from_pretrained(name_or_path, **kwargs):
    """``AutoTokenizer.from_pretrained``, with an OSError (not a half-built tokenizer) when files are missing."""
    from transformers import AutoTokenizer

    if os.path.isdir(name_or_path) and not any(os.path.exists(os.path.join(name_or_path, f)) for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"folder {name_or_path!s} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    # A hub cache holding only a model's files yields a near-empty tokenizer instead of an error.
    if len(tokenizer) < PYTHIA_VOCAB_LEN:
        raise OSError(f"{name_or_path!s}: tokenizer files missing or not Pythia's ({len(tokenizer)} tokens)")
    return tokenizer


def _load_base_tokenizer(name_or_path):
    """Return (tokenizer, source description). Order: local folder, hub, hub cache, offline copy."""
    tokenizer, source = load_local_hub_or_cache(name_or_path, _from_pretrained)
    if tokenizer is not None:
        return tokenizer, source
    from ..models.assets import offline_tokenizer_dir  # here, so that `python -m sft_utils.assets` is not pre-imported

    offline = offline_tokenizer_dir()
    if pythia_size(name_or_path) is None:
        raise OfflineAssetsMissing(
            f"Cannot load {name_or_path!r} ({source}): offline, only Pythia's tokenizer "
            "is available (any 'EleutherAI/pythia-*' name)"
        )
    if (offline / "tokenizer.json").exists():
        return _from_pretrained(offline), f"offline copy of Pythia's tokenizer ({source})"
    raise OfflineAssetsMissing(
        f"Cannot load {name_or_path!r}: {source}, and the offline copy is missing.\n"
        "Build it once (needs PyPI only):  python -m sft_utils.assets"
    )


def load_base_tokenizer(name_or_path=DEFAULT_TOKENIZER):
    """The tokenizer ``name_or_path`` names as it ships, with no chat format's tokens or template added: for a chat
    template of your own (``python -m sft_utils.inspect --template``). Sources and errors as
    :func:`load_tokenizer`; ``tokenizer.sft_source`` says where it came from."""
    tokenizer, source = _load_base_tokenizer(name_or_path)
    tokenizer.sft_source = source
    return tokenizer


def check_tokenizer(tokenizer, *, pad: bool = False):
    """``tokenizer`` unchanged when it is a transformers tokenizer (one from :func:`load_tokenizer`).

    Raises TypeError for anything else: a model's name or a folder (load it first), None, a model, a list of ids;
    with ``pad=True``, ValueError for a tokenizer without a pad token (``pad_token_id`` None), which batching needs.
    """
    if isinstance(tokenizer, (str, bytes, os.PathLike)):
        raise TypeError(
            f"tokenizer must be a tokenizer object, got the {type(tokenizer).__name__} {str(tokenizer)!r:.60}; "
            "load it first: sft_utils.load_tokenizer(name)"
        )
    if not (callable(tokenizer) and all(hasattr(tokenizer, a) for a in ("convert_tokens_to_ids", "decode"))):
        raise TypeError(
            f"tokenizer must be a transformers tokenizer (sft_utils.load_tokenizer()), got {type(tokenizer).__name__}"
        )
    if pad and tokenizer.pad_token_id is None:
        raise ValueError(
            "tokenizer has no pad token (pad_token_id is None), which batching needs; sft_utils.load_tokenizer() "
            "sets the chat format's pad token"
        )
    return tokenizer


def add_role_tokens(tokenizer, chat_format: ChatFormat = OPEN_ASSISTANT):
    """Add ``chat_format.added_tokens`` as special tokens, in order, set the pad token (``<|padding|>``) and
    install the format's chat template (``sft_utils/templates/``, for ``apply_chat_template``).

    Returns the same tokenizer. Raises ValueError, naming the token, when an added token does not get its id
    (``chat_format.added_token_ids(50277)``: a tokenizer that is not Pythia's, or one that already holds other
    added tokens), when the end of message is neither Pythia's ``<|endoftext|>`` (id 0) nor an added token,
    or when the pad token is not ``<|padding|>`` (id 1): every mask and id in the course assumes them.
    Raises TypeError for a ``tokenizer`` that is not a tokenizer object or a ``chat_format`` that is not a
    ChatFormat.
    """
    check_tokenizer(tokenizer)
    check_chat_format(chat_format)
    tokenizer.add_tokens(list(chat_format.added_tokens), special_tokens=True)
    tokenizer.pad_token = chat_format.pad_token
    # Pythia ships no chat template; the format's renders what format_conversation renders (tests check it).
    tokenizer.chat_template = chat_format.chat_template()
    expected = chat_format.added_token_ids(PYTHIA_VOCAB_LEN)
    expected.setdefault(chat_format.end_of_message, EOS_TOKEN_ID)
    expected.setdefault(chat_format.pad_token, PAD_TOKEN_ID)
    vocab = tokenizer.get_vocab()  # not convert_tokens_to_ids: an unknown token maps to unk, id 0 in Pythia
    for token, token_id in expected.items():
        got = vocab.get(token)
        if got != token_id:
            raise ValueError(
                f"chat format {chat_format.name!r}: {token!r} has id {got} in this tokenizer, expected {token_id} "
                "(the end of message must be <|endoftext|> or an added token, the pad <|padding|>, and the tokenizer "
                "Pythia's without other added tokens)"
            )
    return tokenizer


def load_tokenizer(name_or_path=DEFAULT_TOKENIZER, *, verbose: bool = True, chat_format: ChatFormat = OPEN_ASSISTANT):
    """Memo step 2: Pythia's tokenizer with the role tokens added (``PreTrainedTokenizerFast``).

    Args:
        name_or_path: a hub name (any Pythia size: they share one tokenizer) or a local folder.
        verbose: print which source was used.
        chat_format: whose tokens and chat template to add (:mod:`sft_utils.chat_format`).

    Returns:
        A fast tokenizer with ``len(tokenizer) == 50282``, ``<|prompter|>`` = 50279,
        ``<|assistant|>`` = 50280, ``<|system|>`` = 50281, ``eos`` = ``<|endoftext|>`` (0) and
        ``pad`` = ``<|padding|>`` (1), and ``tokenizer.chat_template`` set to Open-Assistant's format
        with ``{% generation %}`` blocks, so ``apply_chat_template(…, return_assistant_tokens_mask=True)``
        gives ``tokenize_conversation``'s ids and ``label_mask``. ``tokenizer.sft_source`` says where it came from.
        With ``chat_format=sft_utils.CHATML``: 50279 tokens, ``<|im_start|>`` 50277, ``<|im_end|>`` 50278; with
        ``sft_utils.LLAMA3``: 50281 tokens, ``<|begin_of_text|>`` 50277 to ``<|eot_id|>`` 50280 (the format's
        ``added_tokens`` in order); eos and pad as above, and that format's chat template.

    Order of sources: a local folder; the hub when reachable (see :func:`sft_utils.models.hub.hub_is_reachable`);
    the hub cache; the offline copy built by ``python -m sft_utils.assets``.

    Raises:
        OfflineAssetsMissing: no source is available (the message gives the command to run), or the
            hub is unavailable and ``name_or_path`` is not a Pythia name.
        FileNotFoundError: ``name_or_path`` is a path (``/…``, ``./…``, ``~/…``) that is not a folder.
        ValueError: the role tokens did not get the memo's ids.
        TypeError: a ``chat_format`` that is not a ChatFormat.
    """
    check_chat_format(chat_format)
    tokenizer, source = _load_base_tokenizer(name_or_path)
    add_role_tokens(tokenizer, chat_format)
    tokenizer.sft_source = source
    if verbose:
        ids = chat_format.added_token_ids(PYTHIA_VOCAB_LEN).values()
        print(f"Tokenizer: {source}; {len(tokenizer)} tokens, role tokens at {min(ids)}-{max(ids)}")
    return tokenizer
