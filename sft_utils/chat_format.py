"""A chat format: which strings mark each role, which token closes a message, and what a reply trains.

Introduced in notebook 01_format. Every memo step takes ``chat_format=`` (default :data:`OPEN_ASSISTANT`), so
this file and its template in ``sft_utils/templates/`` are the only places that name a marker. To add a
format, write one more ``ChatFormat`` here and its Jinja template beside ``open_assistant.jinja``.

Open-Assistant's format, the memo's (step 1)::

    <|system|>…<|endoftext|><|prompter|>…<|endoftext|><|assistant|>…<|endoftext|>…
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

PROMPTER, ASSISTANT, SYSTEM = "prompter", "assistant", "system"
#: Role names of the ecosystem's chat form (``{"role": "user", "content": …}``) -> this course's names.
ROLE_ALIASES = MappingProxyType({"user": PROMPTER, "prompter": PROMPTER, "assistant": ASSISTANT, "system": SYSTEM})

TEMPLATE_DIR = Path(__file__).with_name("templates")

# Pythia's own special tokens (GPT-NeoX-20B BPE): id 0 ends a document, id 1 is its padding token.
PYTHIA_EOS_TOKEN = "<|endoftext|>"
PYTHIA_PAD_TOKEN = "<|padding|>"


@dataclass(frozen=True)
class ChatFormat:
    """How a conversation becomes one string, and which tokens of a reply the loss trains.

    Attributes:
        name: a short name, e.g. ``"open-assistant"``.
        role_markers: role (``prompter``, ``assistant``, ``system``) -> the marker written before its text.
        end_of_message: the token written after every message's text (one per message): Pythia's
            ``<|endoftext|>`` (id 0), or one of ``added_tokens`` (a ChatML-style ``<|im_end|>``).
        added_tokens: special tokens added to the base tokenizer, *in id order*: they get ids
            ``len(base tokenizer)``, ``+1``, … (the markers among them, plus any others the format reserves).
        pad_token: fills batches; Pythia's ``<|padding|>`` (id 1). It must differ from ``end_of_message``, or
            padding by id hides every real end.
        train_marker: the assistant's marker is a trained token (its label mask is True).
        train_end: the reply's closing ``end_of_message`` is trained (without it the model never learns to stop).
        template: file name of the format's Jinja chat template in ``sft_utils/templates/``, with
            ``{% generation %}`` around the trained part of each reply (for ``apply_chat_template``).

    The reply's text is always trained. A format may be defined anywhere (a script, a notebook); the course's
    own live here. Raises TypeError for fields of the wrong type (``added_tokens`` as a set: its order, and so
    the ids, would change between processes), and ValueError when a role has no marker, two roles share one,
    a marker is not among ``added_tokens``, a token is added twice, or ``pad_token`` equals ``end_of_message``.
    """

    name: str
    role_markers: Mapping[str, str] = field(hash=False)  # stored read-only; a dict is not hashable
    end_of_message: str
    added_tokens: tuple[str, ...]
    pad_token: str
    train_marker: bool = True
    train_end: bool = True
    template: str = field(default="", compare=False)  # required (refused when empty); keyword, after the defaults

    def __post_init__(self):
        where = f"chat format {self.name!r}"
        if not isinstance(self.role_markers, Mapping):
            raise TypeError(
                f"{where}: role_markers must be a dict of role -> marker, got {type(self.role_markers).__name__}"
            )
        if isinstance(self.added_tokens, (str, set, frozenset)) or not isinstance(self.added_tokens, Sequence):
            # a set has no fixed order, so the ids would change from one process to the next
            raise TypeError(f"{where}: added_tokens must be a list or tuple (their order gives the ids)")
        object.__setattr__(self, "role_markers", MappingProxyType(dict(self.role_markers)))
        object.__setattr__(self, "added_tokens", tuple(self.added_tokens))
        tokens = [*self.role_markers.values(), *self.added_tokens, self.end_of_message, self.pad_token, self.template]
        if not all(isinstance(t, str) and t for t in tokens):
            raise TypeError(f"{where}: markers, tokens and the template name must be non-empty strings")
        for name in ("train_marker", "train_end"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{where}: {name} must be True or False, got {getattr(self, name)!r}")
        missing = {PROMPTER, ASSISTANT, SYSTEM} - set(self.role_markers)
        if missing:
            raise ValueError(f"{where}: no marker for role(s) {sorted(missing)}")
        markers = list(self.role_markers.values())
        if len(set(markers)) != len(markers) or self.end_of_message in markers:
            raise ValueError(f"{where}: every role needs its own marker, and the end of message another token")
        if len(set(self.added_tokens)) != len(self.added_tokens):
            raise ValueError(f"{where}: added_tokens holds a token twice")
        not_added = [m for m in markers if m not in self.added_tokens]
        if not_added:
            raise ValueError(f"{where}: markers {not_added} are not in added_tokens")
        if self.pad_token == self.end_of_message:
            raise ValueError(f"{where}: pad_token must differ from end_of_message")

    def marker(self, role: str) -> str:
        """The marker written before a message of ``role`` (``"prompter"``, ``"assistant"`` or ``"system"``)."""
        return self.role_markers[role]

    def render(self, role: str, text: str) -> str:
        """One message as it appears in the formatted string: marker + text + end of message."""
        return self.role_markers[role] + text + self.end_of_message

    def added_token_ids(self, base_vocab_size: int) -> dict[str, int]:
        """Token -> id of :attr:`added_tokens` when added to a tokenizer of ``base_vocab_size`` tokens, in order."""
        return {token: base_vocab_size + i for i, token in enumerate(self.added_tokens)}

    def reply_mask(self, text_length: int) -> list[bool]:
        """Label mask of one assistant message of ``text_length`` text tokens: marker, text, end of message."""
        return [self.train_marker] + [True] * text_length + [self.train_end]

    def chat_template(self) -> str:
        """The Jinja chat template (``tokenizer.chat_template``) read from ``sft_utils/templates/`` (or from
        ``template`` itself when it is an absolute path). Raises FileNotFoundError naming the format."""
        path = TEMPLATE_DIR / self.template
        if not path.is_file():
            raise FileNotFoundError(f"chat format {self.name!r}: no template file {path}")
        return path.read_text(encoding="utf-8")


#: Open-Assistant's format for Pythia, the memo's: the five tokens Open-Assistant's Pythia SFT models add,
#: in their order (ids 50277-50281 on Pythia's tokenizer), and every token of a reply trained.
OPEN_ASSISTANT = ChatFormat(
    name="open-assistant",
    role_markers={PROMPTER: "<|prompter|>", ASSISTANT: "<|assistant|>", SYSTEM: "<|system|>"},
    end_of_message=PYTHIA_EOS_TOKEN,
    added_tokens=("<|prefix_begin|>", "<|prefix_end|>", "<|prompter|>", "<|assistant|>", "<|system|>"),
    pad_token=PYTHIA_PAD_TOKEN,
    template="open_assistant.jinja",
)


def check_chat_format(chat_format) -> ChatFormat:
    """``chat_format`` unchanged; TypeError unless it is a :class:`ChatFormat` (a format's name is not one)."""
    if not isinstance(chat_format, ChatFormat):
        raise TypeError(f"chat_format must be a ChatFormat (e.g. sft_utils.OPEN_ASSISTANT), got {chat_format!r:.60}")
    return chat_format
