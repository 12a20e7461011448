"""A chat format: how each message is written around its text, and which of its tokens a reply trains.

Introduced in notebook 01_format. Every memo step takes ``chat_format=`` (default :data:`OPEN_ASSISTANT`), so
this file and the templates in ``sft_utils/templates/`` are the only places that name a marker. To add a
format, write one more ``ChatFormat`` here and its Jinja template beside ``open_assistant.jinja``.

A conversation is written as: the format's ``prefix`` once, then for every message its role's *header*, its
text, the ``end_of_message`` token and the format's ``footer``. A header starts with a special token (its
*marker*) and may go on with text and more special tokens. Three formats ship, each with its tokens added to
Pythia's tokenizer from id 50277 on, in the order listed (Pythia's ``<|endoftext|>`` 0 and ``<|padding|>`` 1
keep their ids, the pad token being ``<|padding|>`` in all three).

Open-Assistant's format, the memo's (step 1), every token of a reply trained::

    <|system|>…<|endoftext|><|prompter|>…<|endoftext|><|assistant|>…<|endoftext|>
    <|prefix_begin|> 50277  <|prefix_end|> 50278  <|prompter|> 50279  <|assistant|> 50280  <|system|> 50281

ChatML, the layout of OpenAI's ChatML document and of Qwen2's chat template (role name as text after
``<|im_start|>``, a newline, the text, ``<|im_end|>``, a newline); a reply trains its text and ``<|im_end|>``,
not its header nor the newline after ``<|im_end|>`` (generation stops at ``<|im_end|>``; TRL's Qwen2.5 and
Qwen3 training templates do train that newline: ``train_footer=True``, with a template whose block holds it)::

    <|im_start|>system\\n…<|im_end|>\\n<|im_start|>user\\n…<|im_end|>\\n<|im_start|>assistant\\n…<|im_end|>\\n
    <|im_start|> 50277  <|im_end|> 50278

Meta's Llama 3 prompt format (``<|begin_of_text|>`` once, then a header of ``<|start_header_id|>``, the role
name as text, ``<|end_header_id|>`` and two newlines before each text, ``<|eot_id|>`` after it); a reply
trains its text and ``<|eot_id|>``, not its header::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n…<|eot_id|><|start_header_id|>user…
    <|begin_of_text|> 50277  <|start_header_id|> 50278  <|end_header_id|> 50279  <|eot_id|> 50280

Where the course departs from those layouts: no default system prompt (Qwen2's template adds one when a
conversation has none), no tools, and the text written as given (Meta's template trims each text's leading and
trailing whitespace). The prompter's role name in both headers is ``user``, as in the originals.

Tokens: the text of a message is tokenized on its own (a marker typed in it stays text), and a header's ids are
those it has in front of a text that starts with a visible character. On Pythia's BPE, Llama 3's ``\\n\\n``
there is two ``\\n`` tokens (187 187), as in every rendered conversation whose text starts so; at the very end
of a string, as in ``apply_chat_template(…, add_generation_prompt=True)``, it is one token (535), a header that
training never shows. :func:`sft_utils.generation_prompt_ids` ends with 187 187.
"""

from __future__ import annotations

import re
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
        role_markers: role (``prompter``, ``assistant``, ``system``) -> the *header* written before its text: a
            special token (the role's *marker*, one of ``added_tokens``), then optionally text and more special
            tokens (ChatML's ``"<|im_start|>user\\n"``). Open-Assistant's headers are one marker each.
        end_of_message: the token written after every message's text (one per message): Pythia's
            ``<|endoftext|>`` (id 0), or one of ``added_tokens`` (ChatML's ``<|im_end|>``).
        added_tokens: special tokens added to the base tokenizer, *in id order*: they get ids
            ``len(base tokenizer)``, ``+1``, … (the markers among them, plus any others the format reserves).
        pad_token: fills batches; Pythia's ``<|padding|>`` (id 1). It must differ from ``end_of_message``, or
            padding by id hides every real end.
        train_marker: the assistant header's first token (its marker) is trained (its label mask is True).
        train_end: the reply's closing ``end_of_message`` is trained (without it the model never learns to stop).
        template: file name of the format's Jinja chat template in ``sft_utils/templates/``, with
            ``{% generation %}`` around the trained part of each reply (for ``apply_chat_template``).
        footer: written after every message's ``end_of_message`` (ChatML's newline); ``""`` for none.
        prefix: written once before the first message (Llama 3's ``<|begin_of_text|>``); ``""`` for none. Its
            tokens count as message 0's and are never trained.
        train_header: the assistant header's tokens after its marker are trained too (needs ``train_marker``).
        train_footer: the footer after a reply's end is trained.

    The reply's text is always trained. A format may be defined anywhere (a script, a notebook); the course's
    own live here. Raises TypeError for fields of the wrong type (``added_tokens`` as a set: its order, and so
    the ids, would change between processes), and ValueError when a role has no header, two roles share one,
    a header does not start with one of ``added_tokens``, a marker is ``end_of_message``, a token is added
    twice, ``pad_token`` equals ``end_of_message``, or ``train_header`` is set without ``train_marker``.
    """

    name: str
    role_markers: Mapping[str, str] = field(hash=False)  # stored read-only; a dict is not hashable
    end_of_message: str
    added_tokens: tuple[str, ...]
    pad_token: str
    train_marker: bool = True
    train_end: bool = True
    template: str = field(default="", compare=False)  # required (refused when empty); keyword, after the defaults
    footer: str = ""
    prefix: str = ""
    train_header: bool = False
    train_footer: bool = False

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
        for name in ("footer", "prefix"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{where}: {name} must be a string ('' for none), got {getattr(self, name)!r}")
        for name in ("train_marker", "train_end", "train_header", "train_footer"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{where}: {name} must be True or False, got {getattr(self, name)!r}")
        self._check_roles(where)
        if self.pad_token == self.end_of_message:
            raise ValueError(f"{where}: pad_token must differ from end_of_message")
        if self.train_header and not self.train_marker:
            raise ValueError(f"{where}: train_header needs train_marker (a header is trained from its marker on)")

    def _check_roles(self, where: str) -> None:
        missing = {PROMPTER, ASSISTANT, SYSTEM} - set(self.role_markers)
        if missing:
            raise ValueError(f"{where}: no marker for role(s) {sorted(missing)}")
        headers = list(self.role_markers.values())
        if len(set(headers)) != len(headers) or self.end_of_message in headers:
            raise ValueError(f"{where}: every role needs its own marker, and the end of message another token")
        if len(set(self.added_tokens)) != len(self.added_tokens):
            raise ValueError(f"{where}: added_tokens holds a token twice")
        not_added = [h for h in headers if not any(h.startswith(t) for t in self.added_tokens)]
        if not_added:
            raise ValueError(f"{where}: markers {not_added} are not in added_tokens")
        if self.end_of_message in map(self.marker_token, self.role_markers):
            raise ValueError(f"{where}: a header starts with the end of message {self.end_of_message!r}")

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The format's special tokens: ``added_tokens``, then ``end_of_message`` and ``pad_token`` if not among
        them. In a header, prefix or footer these are tokens; anything else there is text."""
        return tuple(dict.fromkeys((*self.added_tokens, self.end_of_message, self.pad_token)))

    def pieces(self, written: str) -> list[str]:
        """``written`` (a header, the prefix or the footer) cut into the format's special tokens and the text
        between them, in order, the longest token first where two overlap: ``"<|im_start|>user\\n"`` ->
        ``["<|im_start|>", "user\\n"]``."""
        specials = sorted(self.special_tokens, key=len, reverse=True)
        pattern = "(" + "|".join(map(re.escape, specials)) + ")"
        return [piece for piece in re.split(pattern, written) if piece]

    def marker(self, role: str) -> str:
        """The header written before a message of ``role`` (``"prompter"``, ``"assistant"`` or ``"system"``):
        Open-Assistant's ``<|prompter|>``, ChatML's ``<|im_start|>user\\n``."""
        return self.role_markers[role]

    def marker_token(self, role: str) -> str:
        """The special token that opens ``role``'s header (ChatML's ``<|im_start|>``)."""
        return self.pieces(self.role_markers[role])[0]

    def render(self, role: str, text: str) -> str:
        """One message as it appears in the formatted string: header + text + end of message + footer."""
        return self.role_markers[role] + text + self.end_of_message + self.footer

    def added_token_ids(self, base_vocab_size: int) -> dict[str, int]:
        """Token -> id of :attr:`added_tokens` when added to a tokenizer of ``base_vocab_size`` tokens, in order."""
        return {token: base_vocab_size + i for i, token in enumerate(self.added_tokens)}

    def reply_mask(self, text_length: int, header_length: int = 1, footer_length: int = 0) -> list[bool]:
        """Label mask of one assistant message: header (``header_length`` tokens, its marker first), text
        (``text_length`` tokens, always trained), end of message, footer (``footer_length`` tokens)."""
        header = [self.train_marker] + [self.train_header] * (header_length - 1)
        return header + [True] * text_length + [self.train_end] + [self.train_footer] * footer_length

    def chat_template(self) -> str:
        """The Jinja chat template (``tokenizer.chat_template``) read from ``sft_utils/templates/`` (or from
        ``template`` itself when it is an absolute path). Raises FileNotFoundError naming the format."""
        path = TEMPLATE_DIR / self.template
        if not path.is_file():
            raise FileNotFoundError(f"chat format {self.name!r}: no template file {path}")
        return path.read_text(encoding="utf-8")

    def load_hint(self) -> str:
        """The call that loads a tokenizer holding this format's tokens, as an error message gives it."""
        own = next((name for name, known in COURSE_FORMATS.items() if known == self), None)
        argument = f"sft_utils.{own}" if own else f"<chat format {self.name!r}>"
        return f"sft_utils.load_tokenizer(chat_format={argument})"


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

#: ChatML (OpenAI's ChatML document, Qwen2's chat template): ``<|im_start|>`` 50277, ``<|im_end|>`` 50278 on
#: Pythia's tokenizer; a reply trains its text and ``<|im_end|>``, as TRL's ``{% generation %}`` templates do.
CHATML = ChatFormat(
    name="chatml",
    role_markers={PROMPTER: "<|im_start|>user\n", ASSISTANT: "<|im_start|>assistant\n", SYSTEM: "<|im_start|>system\n"},
    end_of_message="<|im_end|>",
    added_tokens=("<|im_start|>", "<|im_end|>"),
    pad_token=PYTHIA_PAD_TOKEN,
    train_marker=False,
    template="chatml.jinja",
    footer="\n",
)

#: Meta's Llama 3 prompt format: ``<|begin_of_text|>`` 50277, ``<|start_header_id|>`` 50278,
#: ``<|end_header_id|>`` 50279, ``<|eot_id|>`` 50280 on Pythia's tokenizer; a reply trains its text and
#: ``<|eot_id|>``, as TRL's Llama 3 training template does.
LLAMA3 = ChatFormat(
    name="llama-3",
    role_markers={
        role: f"<|start_header_id|>{name}<|end_header_id|>\n\n"
        for role, name in ((PROMPTER, "user"), (ASSISTANT, "assistant"), (SYSTEM, "system"))
    },
    end_of_message="<|eot_id|>",
    added_tokens=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    pad_token=PYTHIA_PAD_TOKEN,
    train_marker=False,
    template="llama3.jinja",
    prefix="<|begin_of_text|>",
)

#: Zephyr's layout (the chat template of HuggingFaceH4's zephyr-7b-beta: ``<|user|>\n…</s>\n<|assistant|>\n…</s>\n``),
#: the format notebook 06b's exercise asks a label mask for: ``<|system|>`` 50277, ``<|user|>`` 50278,
#: ``<|assistant|>`` 50279, ``</s>`` 50280 on Pythia's tokenizer; a reply trains its text and ``</s>``, not its
#: header nor the newline after ``</s>``. Not one of the course's formats (``sft_utils.exercises.ZEPHYR``).
ZEPHYR = ChatFormat(
    name="zephyr",
    role_markers={PROMPTER: "<|user|>\n", ASSISTANT: "<|assistant|>\n", SYSTEM: "<|system|>\n"},
    end_of_message="</s>",
    added_tokens=("<|system|>", "<|user|>", "<|assistant|>", "</s>"),
    pad_token=PYTHIA_PAD_TOKEN,
    train_marker=False,
    template="zephyr.jinja",
    footer="\n",
)

#: The course's formats by the name ``sft_utils`` exports them under.
COURSE_FORMATS = MappingProxyType({"OPEN_ASSISTANT": OPEN_ASSISTANT, "CHATML": CHATML, "LLAMA3": LLAMA3})


def check_chat_format(chat_format) -> ChatFormat:
    """``chat_format`` unchanged; TypeError unless it is a :class:`ChatFormat` (a format's name is not one)."""
    if not isinstance(chat_format, ChatFormat):
        raise TypeError(f"chat_format must be a ChatFormat (e.g. sft_utils.OPEN_ASSISTANT), got {chat_format!r:.60}")
    return chat_format
