"""The mask report's page: one self-contained HTML file that shows which tokens of your data are trained.

Written by ``python -m sft_utils.inspect`` (:mod:`sft_utils.inspect`), which reads the data, masks it and hands
the tokens, masks and findings over in a :class:`MaskReport`; this module only draws them. The page needs no
network: its CSS is inline, and one small inline script switches two views (the outline of the tokens that TRL
trains otherwise; only the conversations with a finding). Chips look as in notebook 03
(:mod:`sft_utils.viz.chips`) and take their colours from :mod:`sft_utils.viz.palette`: trained, untrained,
padding (one chip for all the padding a ``max_length`` batch adds), truncated (struck through).
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field

from .chips import _CHIP, counts_text
from .palette import DIFFERS, INK, MASK_COLORS, MUTED, PAD_STYLE, REMOVED_STYLE, RULE, WARNING

#: What each kind of finding means, in the order the summary lists them.
FINDING_KINDS = {
    "refused": "conversation refused: no mask, so training would stop on it (the reason is quoted)",
    "end-untrained": "a reply whose end token is untrained (or that has none): the model does not learn to stop",
    "boundary-merge": "a token that joins the header and the reply: a trained token that starts before the reply's "
    "first character, or an untrained one that carries reply text",
    "typed-marker": "a special token typed inside a message's text",
    "reply-cut": "max_length cuts a reply: its end token is lost",
    "no-trained-token": "max_length leaves no trained target: dropped from training",
    "trl-differs": "TRL (assistant_only_loss=True) trains other tokens, or tokenizes the conversation otherwise",
}


@dataclass
class Finding:
    """One thing worth a look in one conversation: ``kind`` (a key of :data:`FINDING_KINDS`) and a sentence."""

    kind: str
    text: str


@dataclass
class TrlMasks:
    """What TRL's ``SFTTrainer`` trains on one conversation: its tokens (strings, whitespace visible) and
    ``label_mask``, and whether its ids are the report's own (then compared token by token)."""

    tokens: list[str]
    label_mask: list[bool]
    same_ids: bool


@dataclass
class ConversationMasks:
    """One conversation as the page draws it.

    Attributes:
        name: its ``id`` (else ``"<file>:<line>"``).
        where: ``"<file>:<line>"``.
        tokens: each token's string, whitespace made visible (:func:`sft_utils.viz.token_strings`); T of them,
            before truncation.
        input_ids, label_mask, message_indices: one per token (lists of int, bool, int).
        kept: tokens that ``max_length`` keeps (T without one); the others are drawn struck through.
        padding: padding positions a batch padded to ``max_length`` adds (one chip says how many).
        trl: TRL's masks (None: not compared).
        findings: what the checks found, in order.
        refused: why the conversation has no mask (None when it has one).
    """

    name: str
    where: str
    tokens: list[str] = field(default_factory=list)
    input_ids: list[int] = field(default_factory=list)
    label_mask: list[bool] = field(default_factory=list)
    message_indices: list[int] = field(default_factory=list)
    kept: int = 0
    padding: int = 0
    trl: TrlMasks | None = None
    findings: list[Finding] = field(default_factory=list)
    refused: str | None = None

    @property
    def trained(self) -> int:
        """Trained tokens among the kept ones."""
        return sum(self.label_mask[: self.kept])

    @property
    def trl_differs(self) -> list[int]:
        """Positions whose trained / untrained state TRL's mask flips ([] unless compared token by token)."""
        if self.trl is None or not self.trl.same_ids:
            return []
        return [t for t, (a, b) in enumerate(zip(self.label_mask, self.trl.label_mask)) if a != b]

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}


@dataclass
class MaskReport:
    """Everything the page shows.

    Attributes:
        data: the data file's name.
        masked_by: how the masks were made (a chat format and ``tokenize_conversation``, or a template file and
            ``mask_from_template``).
        tokenizer: where the tokenizer came from, and what was added to it.
        max_length: the truncation length (None: none).
        pad_token: the padding token's string.
        conversations: one :class:`ConversationMasks` each, in file order.
        trl: how TRL was compared, or why it was not.
        limited: True when ``--limit`` stopped reading before the end of the file.
    """

    data: str
    masked_by: str
    tokenizer: str
    max_length: int | None
    pad_token: str
    conversations: list[ConversationMasks]
    trl: str = "not compared"
    limited: bool = False

    def summary(self) -> dict[str, str]:
        """The summary table's rows, label -> value (exact counts; shares rounded to 0.1%)."""
        masked = [c for c in self.conversations if c.refused is None]
        tokens = sum(c.kept for c in masked)
        trained = sum(c.trained for c in masked)
        padding = sum(c.padding for c in masked)
        kinds = self.kind_counts()
        rows = {
            "conversations": f"{len(self.conversations)}" + (" (first ones, --limit)" if self.limited else ""),
            "masked": str(len(masked)),
            "refused": str(kinds["refused"]),
            "tokens": f"{tokens}" + (f" (after max_length={self.max_length})" if self.max_length else ""),
            "trained tokens": f"{trained} ({_share(trained, tokens)})",
            "truncated": str(sum(c.kept < len(c.input_ids) for c in masked)),
            "dropped (no trained target left)": str(kinds["no-trained-token"]),
        }
        if self.max_length:
            rows["padding to max_length"] = f"{padding} ({_share(padding, tokens + padding)} of the batch)"
        compared = [c for c in masked if c.trl is not None]
        rows["TRL"] = f"{len(compared)} compared, {kinds['trl-differs']} differ" if compared else "not compared"
        return rows

    def kind_counts(self) -> Counter:
        """Conversations with at least one finding of each kind (every kind of :data:`FINDING_KINDS` present)."""
        counts = Counter(dict.fromkeys(FINDING_KINDS, 0))
        for conversation in self.conversations:
            counts.update(conversation.kinds())
        return counts


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


_PAGE_CSS = f"""
body{{font:14px/1.45 system-ui,sans-serif;color:{INK};margin:24px auto;max-width:1180px;padding:0 16px}}
h1{{font-size:20px;margin:0 0 4px}} h2{{font-size:15px;margin:0 0 4px}}
.meta{{color:{MUTED};margin:0 0 14px}}
table{{border-collapse:collapse;margin:6px 0 14px}}
td,th{{border-bottom:1px solid {RULE};padding:2px 10px 2px 0;text-align:left;vertical-align:top}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}} th,td:first-child{{white-space:nowrap}}
.zero{{color:{MUTED}}}
.top{{display:flex;gap:28px;align-items:flex-start}} .summary td{{white-space:nowrap}} .kinds td:last-child{{font-size:12px}}
.chip{{{_CHIP}}}
.removed{{{REMOVED_STYLE}}}
.conversation{{border-top:1px solid {RULE};padding:10px 0}}
.where{{color:{MUTED};font-weight:normal;font-size:12px}}
.counts{{font:12px monospace;color:{MUTED}}}
.findings{{margin:4px 0;padding-left:18px;color:{WARNING}}}
.tokens{{line-height:22px;margin-top:4px}}
.trl-row{{display:none;margin-top:4px}}
body.trl-on .trl-row{{display:block}}
body.trl-on .trl-diff{{outline:2px solid {DIFFERS};outline-offset:-2px}}
body.findings-only .conversation:not(.has-findings){{display:none}}
.controls label{{margin-right:16px}}
"""

# Two views switched by a class on <body>; nothing is fetched.
_SCRIPT = """
for (const [box, name] of [["trl-toggle", "trl-on"], ["findings-toggle", "findings-only"]]) {
  const input = document.getElementById(box);
  if (input) input.addEventListener("change", () => document.body.classList.toggle(name, input.checked));
}
"""


def _chip(classes: list[str], text: str, tooltip: str, style: str) -> str:
    return (
        f'<span class="{" ".join(classes)}" title="{html.escape(tooltip, quote=True)}" style="{style}">'
        f"{html.escape(text)}</span>"
    )


def _token_chips(conversation: ConversationMasks, max_length) -> str:
    differs = set(conversation.trl_differs)
    chips = []
    for t, (text, token_id, trained) in enumerate(
        zip(conversation.tokens, conversation.input_ids, conversation.label_mask)
    ):
        classes = ["chip", f"mask-{int(trained)}", f"msg-{conversation.message_indices[t]}"]
        style = f"background:{MASK_COLORS[bool(trained)]}"
        tooltip = f"position {t} · id {token_id} · {text} · message {conversation.message_indices[t]} · " + (
            "trained" if trained else "not trained"
        )
        if t >= conversation.kept:
            classes.append("removed")
            style += ";" + REMOVED_STYLE
            tooltip += f" · cut by max_length={max_length}"
        if t in differs:
            classes.append("trl-diff")
            tooltip += " · TRL: " + ("not trained" if trained else "trained")
        chips.append(_chip(classes, text, tooltip, style))
        if "↵" in text:
            chips.append("<br>")  # keep the text's lines
    if conversation.padding:
        chips.append(
            _chip(
                ["chip", "pad"],
                f"padding × {conversation.padding}",
                f"{conversation.padding} padding positions up to max_length={max_length}",
                PAD_STYLE,
            )
        )
    return "".join(chips)


def _trl_row(trl: TrlMasks) -> str:
    chips = []
    for t, (text, trained) in enumerate(zip(trl.tokens, trl.label_mask)):
        tooltip = f"TRL position {t} · {text} · " + ("trained" if trained else "not trained")
        chips.append(
            _chip(["chip", "trl", f"mask-{int(trained)}"], text, tooltip, f"background:{MASK_COLORS[bool(trained)]}")
        )
        if "↵" in text:
            chips.append("<br>")
    return (
        f'<div class="trl-row"><div class="counts">TRL tokenizes this conversation into {len(trl.tokens)} tokens '
        f"and trains {sum(trl.label_mask)}:</div>{''.join(chips)}</div>"
    )


def _conversation(index: int, conversation: ConversationMasks, max_length) -> str:
    kinds = sorted(conversation.kinds())
    classes = "conversation has-findings" if kinds else "conversation"
    parts = [
        f'<section class="{classes}" id="c{index}" data-kinds="{" ".join(kinds)}">',
        f'<h2>{html.escape(str(conversation.name))} <span class="where">{html.escape(conversation.where)}</span></h2>',
    ]
    if conversation.refused is None:
        n = len(conversation.input_ids)
        label_mask = conversation.label_mask[: conversation.kept] + [False] * conversation.padding
        attention = [1] * conversation.kept + [0] * conversation.padding
        counts = counts_text(label_mask, attention, removed=n - conversation.kept, max_length=max_length)
        parts.append(f'<div class="counts">{html.escape(counts)}</div>')
    if conversation.findings:
        items = "".join(
            f'<li class="finding" data-kind="{f.kind}">{html.escape(f.text)}</li>' for f in conversation.findings
        )
        parts.append(f'<ul class="findings">{items}</ul>')
    if conversation.refused is None:
        parts.append(f'<div class="tokens">{_token_chips(conversation, max_length)}</div>')
        if conversation.trl is not None and not conversation.trl.same_ids:
            parts.append(_trl_row(conversation.trl))
    parts.append("</section>")
    return "".join(parts)


def _summary(report: MaskReport) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in report.summary().items()
    )
    counts = dict(report.kind_counts())
    if not any(c.trl is not None for c in report.conversations):
        counts["trl-differs"] = "–"  # not compared: no count to give
    kinds = "".join(
        f'<tr class="{"kind" if counts[kind] not in (0, "–") else "zero"}" data-kind="{kind}"><td>{kind}</td>'
        f'<td class="n">{counts[kind]}</td><td>{html.escape(meaning)}</td></tr>'
        for kind, meaning in FINDING_KINDS.items()
    )
    return (
        f'<div class="top"><table class="summary">{rows}</table>'
        '<table class="kinds"><tr><th>findings by kind</th><th>conversations</th><th>what it means</th></tr>'
        f"{kinds}</table></div>"
    )


def _legend(max_length, compared: bool) -> str:
    items = [
        _chip(["chip", "legend", "mask-1"], "trained", "label_mask 1", f"background:{MASK_COLORS[True]}"),
        _chip(["chip", "legend", "mask-0"], "not trained", "label_mask 0", f"background:{MASK_COLORS[False]}"),
    ]
    if max_length:
        items.append(_chip(["chip", "legend", "pad"], "padding", f"padding up to max_length={max_length}", PAD_STYLE))
        cut = f"background:{MASK_COLORS[False]};{REMOVED_STYLE}"
        items.append(_chip(["chip", "legend", "removed"], "cut by max_length", "truncated", cut))
    if compared:
        untrained = f"background:{MASK_COLORS[False]}"
        items.append(_chip(["chip", "legend", "trl-diff"], "TRL trains otherwise", "outlined", untrained))
    return f'<div class="legend">legend: {" ".join(items)}</div>'


def report_html(report: MaskReport) -> str:
    """The whole page (a str of HTML5): a header naming the data, the masks' route and the tokenizer; the summary
    (conversations, tokens, trained share, truncated, dropped and padding counts, TRL) and the findings by kind;
    two switches; then each conversation: its counts line, its findings, its chips (and TRL's own row of chips
    where TRL's ids are not the report's). Self-contained: no link, script or font is fetched."""
    compared = any(c.trl is not None for c in report.conversations)
    controls = ['<label><input type="checkbox" id="findings-toggle"> only conversations with a finding</label>']
    if compared:
        controls.insert(
            0, '<label><input type="checkbox" id="trl-toggle" checked> show where TRL trains otherwise</label>'
        )
    meta = [
        f"masks: {report.masked_by}",
        f"tokenizer: {report.tokenizer}",
        f"max_length: {report.max_length or 'none'}",
        f"TRL: {report.trl}",
    ]
    body = "".join(_conversation(i, c, report.max_length) for i, c in enumerate(report.conversations))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Mask report: {html.escape(report.data)}</title><style>{_PAGE_CSS}</style></head>"
        f'<body class="{"trl-on" if compared else ""}">'
        f"<h1>Mask report: {html.escape(report.data)}</h1>"
        f'<p class="meta">{"<br>".join(html.escape(m) for m in meta)}</p>'
        f"{_summary(report)}"
        f'<div class="controls">{"".join(controls)}</div>'
        f"{_legend(report.max_length, compared)}"
        f'<div class="conversations">{body}</div>'
        f"<script>{_SCRIPT}</script></body></html>"
    )
