"""The interactive token-mask viewer: pick a conversation, a view and a ``max_length``; see the chips.

Introduced in notebook 03_mask; used again in 04_shift and 06_masked_loss. Built on core ``ipywidgets``
only (Dropdown, Textarea, ToggleButtons, IntSlider, HTML), so it runs in JupyterLab, Notebook 7, VS Code
and Colab without extensions. What it draws is the static HTML of :mod:`sft_utils.viz.chips`; its
``_repr_mimebundle_`` offers that HTML beside the widget view, so a saved notebook (whose widget state is
stripped by :mod:`sft_utils.notebooks`) still shows the chips on GitHub and in nbconvert output.
"""

from __future__ import annotations

import html
import json

import ipywidgets as widgets

from ..chat_format import OPEN_ASSISTANT, ChatFormat, check_chat_format
from ..data.conversations import course_data_path, load_conversations
from ..steps.format import ASSISTANT, PROMPTER, ConversationError, check_conversations, normalize_messages
from ..steps.mask import tokenize_conversation
from ..steps.project import check_model
from ..steps.tokenize import check_tokenizer, load_tokenizer
from .chips import shifted_chips, token_chips
from .palette import WARNING_TEXT

VIEW_OPTIONS = [("message index", "message"), ("role", "role"), ("label mask", "label_mask"), ("shifted", "shifted")]
_WIDE_LABEL = {"description_width": "initial"}  # show "conversation" and "max_length" in full
TYPED = "typed"  # the picker's value when the conversation comes from the text box


def parse_typed_conversation(text: str, *, chat_format: ChatFormat = OPEN_ASSISTANT) -> list[dict]:
    """A conversation typed into the viewer's text box -> normalised messages.

    Two forms: JSON (a list of ``{"role", "text"|"content"}`` messages, or an object with a ``messages``
    list, as one line of ``data/conversations.jsonl``); or plain lines, one message a line, alternating
    prompter, assistant, prompter, … (blank lines are skipped; write ``\\n`` for a newline inside a message).

    Raises ConversationError (naming the typed conversation) on empty text, invalid JSON, a JSON object
    without ``messages``, a single plain line (a prompt without a reply; the message names any of
    ``chat_format``'s marker tokens typed in it), or invalid messages; TypeError when ``text`` is not a str (messages
    already parsed go to :func:`sft_utils.normalize_messages`) or ``chat_format`` not a ChatFormat.
    """
    check_chat_format(chat_format)
    if not isinstance(text, str):
        raise TypeError(f"text must be the str typed in the text box, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ConversationError("typed conversation: the text box is empty")
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConversationError(
                f"typed conversation: not valid JSON ({e.msg}, line {e.lineno}); text that starts with [ or {{ "
                "is read as JSON, so start a plain first line with another character"
            ) from None
        if isinstance(data, dict) and "messages" not in data:
            raise ConversationError("typed conversation: a JSON object needs a 'messages' list")
        messages = data.get("messages") if isinstance(data, dict) else data
    else:
        lines = [line.strip().replace("\\n", "\n") for line in text.splitlines() if line.strip()]
        if len(lines) == 1:  # else "no assistant message" from tokenize_conversation, about generation prompts
            tokens = dict.fromkeys(map(chat_format.marker_token, chat_format.role_markers))
            markers = [m for m in tokens if m in lines[0]]
            typed = f"; markers typed in a line ({', '.join(markers)}) stay plain text" if markers else ""
            raise ConversationError(
                "typed conversation: one line is the prompter's message only; write the assistant's reply on the "
                f"next line (one message a line){typed}"
            )
        messages = [{"role": (PROMPTER, ASSISTANT)[i % 2], "text": line} for i, line in enumerate(lines)]
    return normalize_messages(messages, conversation_id="typed")


def _named(conversations) -> list[tuple[str, list]]:
    """(name, messages) pairs from loaded conversations (dicts with ``messages``) or bare message lists.

    A name used twice gets `` (2)``, `` (3)`` …, so that every conversation stays reachable from the picker.
    Raises TypeError for one conversation passed where a list of them is expected."""
    conversations = check_conversations(conversations, bare_lists=True)
    named, seen = [], {}
    for i, c in enumerate(conversations):
        if isinstance(c, dict) and "messages" in c:
            name, messages = str(c.get("id", f"conversation {i}")), c["messages"]
        else:
            name, messages = f"conversation {i}", c
        seen[name] = seen.get(name, 0) + 1
        named.append((name if seen[name] == 1 else f"{name} ({seen[name]})", messages))
    return named


class MaskViewer(widgets.VBox):
    """Token chips of one conversation with controls: picker, text box, view, ``max_length``.

    Args:
        conversations: dicts with ``messages`` (and ``id``), as :func:`sft_utils.load_conversations`
            returns, or bare message lists; default: this course's ``data/conversations.jsonl``.
        tokenizer: from :func:`sft_utils.load_tokenizer` (default: loaded here).
        model: optional causal LM; adds the ``loss`` view, the per-token cross-entropy of each target
            (``MaskedCrossEntropyLoss(reduction="none")``, nats) drawn as red intensity.
        selected: the name of the conversation shown first (default: the first).
        view: ``"message"``, ``"role"``, ``"label_mask"``, ``"shifted"`` or ``"loss"``.
        chat_format: the format the conversations are tokenized in (:mod:`sft_utils.chat_format`; default
            Open-Assistant's); the tokenizer must hold its tokens (``load_tokenizer(chat_format=…)``, the default
            tokenizer is loaded so).

    Controls (public attributes, set ``.value`` to drive them from code): ``picker`` (Dropdown of names,
    plus ``"typed"``), ``text`` (Textarea: JSON or alternating lines; typing switches the picker to it),
    ``view`` (ToggleButtons), ``max_length`` (IntSlider, 1 … number of tokens), ``html`` (HTML widget
    holding :meth:`to_html`).

    Raises ValueError on an empty list of conversations or an unknown ``selected`` / ``view``; TypeError for
    a single conversation (a dict, or one list of messages) where the list of conversations goes, a ``tokenizer``
    that is not a tokenizer object (a name: load it first), a ``model`` that is not a transformers model or a
    ``chat_format`` that is not a ChatFormat. A tokenizer without the format's tokens shows its ValueError (naming
    the token and the call that loads it) in place of the chips.
    """

    def __init__(
        self,
        conversations=None,
        tokenizer=None,
        *,
        model=None,
        selected=None,
        view="label_mask",
        chat_format: ChatFormat = OPEN_ASSISTANT,
    ):
        check_chat_format(chat_format)
        if tokenizer is None:
            tokenizer = load_tokenizer(verbose=False, chat_format=chat_format)
        check_tokenizer(tokenizer)
        if model is not None:
            check_model(model)
        if conversations is None:
            conversations = load_conversations(course_data_path())
        self.conversations = dict(_named(conversations))
        if not self.conversations:
            raise ValueError("MaskViewer needs at least one conversation")
        names = list(self.conversations)
        if selected is not None and selected not in self.conversations:
            raise ValueError(f"no conversation named {selected!r}; choose one of {names}")
        views = VIEW_OPTIONS + ([("loss", "loss")] if model is not None else [])
        if view not in [v for _, v in views]:
            raise ValueError(f"view must be one of {[v for _, v in views]}, got {view!r}")
        self.tokenizer, self.model, self.chat_format = tokenizer, model, chat_format
        self._losses = {}  # conversation key -> per-target loss, computed once

        self.picker = widgets.Dropdown(
            options=[*((n, n) for n in names), ("✎ typed below", TYPED)],
            value=selected or names[0],
            description="conversation",
            style=_WIDE_LABEL,
        )
        self.text = widgets.Textarea(
            placeholder='Type a conversation: JSON [{"role": "prompter", "text": "…"}, …] or one message a line, '
            "prompter first",
            layout=widgets.Layout(width="100%", height="4em"),
        )
        self.view = widgets.ToggleButtons(
            options=views, value=view, description="view", style={**_WIDE_LABEL, "button_width": "auto"}
        )
        self.max_length = widgets.IntSlider(
            min=1, max=2, value=2, description="max_length", style=_WIDE_LABEL, layout=widgets.Layout(width="60%")
        )
        self.html = widgets.HTML()
        super().__init__([self.picker, self.view, self.text, self.max_length, self.html])

        self._messages, self._example, self._error = None, None, ""
        self.picker.observe(self._on_conversation, names="value")
        self.text.observe(self._on_text, names="value")
        self.view.observe(self._render, names="value")
        self.max_length.observe(self._render, names="value")
        self._on_conversation()

    # --- what is shown -------------------------------------------------------------------------
    @property
    def conversation_name(self) -> str:
        return self.picker.value if self.picker.value != TYPED else "typed"

    def _on_text(self, change=None):
        if self.picker.value == TYPED:
            self._on_conversation()
        else:
            self.picker.value = TYPED  # fires _on_conversation

    def _on_conversation(self, change=None):
        try:
            if self.picker.value == TYPED:
                messages = parse_typed_conversation(self.text.value, chat_format=self.chat_format)
            else:
                messages = self.conversations[self.picker.value]
            example = tokenize_conversation(
                messages, self.tokenizer, conversation_id=self.conversation_name, chat_format=self.chat_format
            )
        except (ConversationError, ValueError) as e:
            self._messages, self._example, self._error = None, None, str(e)
            self._render()
            return
        self._messages, self._example, self._error = messages, example, ""
        n = len(example["input_ids"])
        # Widen first, then set the value, so the slider never clips the new length.
        with self.max_length.hold_trait_notifications():
            self.max_length.max = max(n, 2)
            self.max_length.value = n
        self._render()

    def _token_loss(self):
        """Per-target CE (nats, 0 on untrained targets) of the whole conversation, from ``self.model``."""
        key = json.dumps(self._messages, sort_keys=True)
        if key not in self._losses:
            import torch

            from ..steps.loss import MaskedCrossEntropyLoss
            from ..steps.shift import shift_for_next_token

            device = next(self.model.parameters()).device  # the model may sit on a GPU
            example = {k: torch.tensor([self._example[k]], device=device) for k in ("input_ids", "label_mask")}
            batch = shift_for_next_token(example)
            with torch.no_grad():
                logits = self.model(input_ids=batch["input_ids"]).logits
            loss = MaskedCrossEntropyLoss(reduction="none")(logits, batch["targets"], batch["label_masks"])
            self._losses[key] = loss[0].tolist()
        return self._losses[key]

    def to_html(self) -> str:
        """The static HTML of what the viewer shows now (the same string as ``self.html.value``)."""
        if self._example is None:
            return f'<div class="sft-chips-error" style="color:{WARNING_TEXT}">⚠ {html.escape(self._error)}</div>'
        title = f"{self.conversation_name} · {self.view.label} view"
        options = {"max_length": self.max_length.value, "title": title, "chat_format": self.chat_format}
        if self.view.value == "shifted":
            return shifted_chips(self._example, self.tokenizer, **options)
        if self.view.value == "loss":
            return shifted_chips(self._example, self.tokenizer, token_loss=self._token_loss(), **options)
        return token_chips(self._example, self.tokenizer, view=self.view.value, **options)

    def _render(self, change=None):
        self.html.value = self.to_html()

    # --- display -------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs):
        """The widget view for live frontends, plus ``text/html`` of the current chips for everything else."""
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = f"MaskViewer({self.conversation_name!r}, view={self.view.value!r})"
        bundle["text/html"] = self.to_html()
        return bundle
