"""Talk to your model: a greedy reply drawn as chips, each coloured by the probability the model gave it.

Introduced in notebook 07_train_it_yourself and used again in 08_finetune_pythia. :func:`reply_chips` draws one
reply as static HTML (the same string the widget shows, so a saved notebook reads the same on GitHub);
:class:`ChatWidget` is a text box, a send button and optional ready-made questions, built on core
``ipywidgets`` only (Text, Button, Dropdown, HTML), so it runs in JupyterLab, Notebook 7, VS Code and Colab.
The widget knows nothing of models: it calls a ``respond(message, on_token)`` function, which
:func:`sft_utils.train.chat.chat` builds from a model with :func:`sft_utils.train.chat.reply_tokens`.

A reply here is any object with the fields of :class:`sft_utils.train.chat.TokenReply`: ``tokens`` (each token
as text, whitespace visible), ``ids``, ``probabilities``, ``stopped_at`` (the token that ended it, or None),
``stop_probability``, ``stop_reason`` (``"end of message"``, ``"role marker"``, ``"length"``, or
``"generating"`` while it streams), ``max_new_tokens`` and ``message`` (the prompter's text).
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from .palette import INK, LABEL_TEXT, STOP_STYLE, WARNING_TEXT, probability_color, probability_legend_html

_CHIP = (
    "display:inline-block;margin:1px;padding:0 3px;border-radius:3px;font:12px/18px monospace;white-space:pre;color:"
    + INK
)
_STOP_TEXT = {
    "end of message": "stopped at the end of message {token} (p = {p:.0%}): the model closed its reply",
    "role marker": "stopped at the role marker {token} (p = {p:.0%}): the model began a turn that is not its own",
    "length": "stopped by length: max_new_tokens = {n} reached without an end of message",
    "generating": "generating…",
}


def stop_text(reply) -> str:
    """One line saying why ``reply`` ended (its ``stop_reason``), with the stop token and its probability."""
    return _STOP_TEXT[reply.stop_reason].format(
        token=reply.stopped_at, p=reply.stop_probability or 0.0, n=reply.max_new_tokens
    )


def _chip(classes: str, text: str, tooltip: str, style: str) -> str:
    return (
        f'<span class="chip {classes}" title="{html.escape(tooltip, quote=True)}" style="{_CHIP};{style}">'
        f"{html.escape(text)}</span>"
    )


def reply_chips(reply) -> str:
    """Static HTML of one reply: the prompter's message, one chip per reply token (class ``chat-token``,
    ``data-p`` its probability, the tooltip its id and probability), the stop token's chip (``chat-stop``) if
    one ended it, the stop reason (``sft-chat-stop``) and the colour legend (``sft-chat-legend``)."""
    chips = [
        _chip("chat-token", token, f"id {i} · p = {p:.4f}", probability_color(p)).replace(
            'class="chip chat-token"', f'class="chip chat-token" data-p="{p:.4f}"'
        )
        for token, i, p in zip(reply.tokens, reply.ids, reply.probabilities, strict=True)
    ]
    if reply.stopped_at is not None:
        chips.append(_chip("chat-stop", reply.stopped_at, f"p = {reply.stop_probability:.4f}", STOP_STYLE))
    message = html.escape(reply.message)
    return (
        f'<div class="sft-chat-reply" data-stop="{reply.stop_reason}" style="margin:4px 0">'
        f'<div style="font-size:12px;color:{LABEL_TEXT}">prompter: <b>{message}</b></div>'
        f'<div class="sft-chat-tokens">{"".join(chips) or "<i>(no token yet)</i>"}</div>'
        f'<div class="sft-chat-stop" style="font-size:12px;color:{LABEL_TEXT}">{html.escape(stop_text(reply))}</div>'
        f"<div>{probability_legend_html()}</div></div>"
    )


class ChatWidget(widgets.VBox):
    """A prompter message in, the model's greedy reply out, token by token as probability chips.

    Args:
        respond: ``respond(message, on_token) -> reply``: generates the reply to the prompter's ``message`` (a
            str), calling ``on_token(partial_reply)`` after each token; :func:`sft_utils.train.chat.chat` builds it.
        questions: ready-made prompter messages (e.g. held-out questions), offered in a dropdown; picking one
            puts it in the text box. The first is answered when the widget is built, so that a saved notebook
            shows a reply.

    Controls (public attributes, ``.value`` sets them from code): ``questions`` (Dropdown, absent without
    questions), ``text`` (Text: the message), ``send_button`` (Button), ``html`` (HTML widget
    holding the reply's chips). :meth:`send` sends from code and returns the reply.

    Raises TypeError for a ``respond`` that is not callable or ``questions`` that are not strings.
    """

    def __init__(self, respond, *, questions=()):
        if not callable(respond):
            raise TypeError(f"respond must be a function respond(message, on_token), got {type(respond).__name__}")
        if isinstance(questions, str) or not all(isinstance(q, str) for q in questions):
            raise TypeError("questions must be a list of prompter messages (strings)")
        self.respond, self.reply = respond, None
        self.text = widgets.Text(
            placeholder="Type a prompter message, then send",
            description="you",
            layout=widgets.Layout(width="70%"),
        )
        self.send_button = widgets.Button(description="send", button_style="primary", icon="paper-plane")
        self.html = widgets.HTML()
        rows = []
        if questions:
            self.questions = widgets.Dropdown(
                options=list(questions), value=questions[0], description="try", layout=widgets.Layout(width="70%")
            )
            self.questions.observe(lambda change: setattr(self.text, "value", change["new"] or ""), names="value")
            rows.append(self.questions)
            self.text.value = questions[0]
        rows += [widgets.HBox([self.text, self.send_button]), self.html]
        super().__init__(rows)
        self.send_button.on_click(lambda _: self.send())
        if questions:
            self.send()

    def send(self, message: str | None = None):
        """Reply to ``message`` (default: the text box's), drawing each token as it comes; returns the reply.
        An empty message draws a note instead."""
        message = self.text.value if message is None else message
        if not message.strip():
            self.html.value = f'<div class="sft-chat-error" style="color:{WARNING_TEXT}">⚠ type a message first</div>'
            return None
        self.send_button.disabled = True
        try:
            self.reply = self.respond(message, lambda partial: setattr(self.html, "value", reply_chips(partial)))
        finally:
            self.send_button.disabled = False
        self.html.value = reply_chips(self.reply)
        return self.reply

    def _repr_mimebundle_(self, **kwargs):
        """The widget view for live frontends, plus ``text/html`` of the last reply for everything else."""
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = str(self.reply) if self.reply is not None else "ChatWidget (no reply yet)"
        bundle["text/html"] = self.html.value
        return bundle
