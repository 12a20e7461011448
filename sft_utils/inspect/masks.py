"""The masks of a data file, checked: what ``python -m sft_utils.inspect`` computes before it draws the page.

Each conversation is masked by the route its training will take: a course chat format through
:func:`sft_utils.tokenize_conversation` (memo steps 1-3), or a chat template file through
:func:`sft_utils.steps.template_mask.mask_from_template` (notebook 06b). Then the checks:

- a reply whose end token is untrained, or that has none (the model would not learn to stop);
- a boundary merge (template route): a trained token that starts before the reply's first character, or an
  untrained token that carries reply text (the course's formats tokenize each piece apart, so none arises there);
- a special token typed inside a message (it stays text in the course's formats; a template renderer makes it
  a special token);
- ``max_length``: a reply cut before its end token, a conversation left with no trained target (dropped);
- TRL: where ``trl.SFTTrainer`` with ``assistant_only_loss=True`` trains other tokens;
- a refused conversation, with the reason quoted (a :class:`~sft_utils.ConversationError`, or the template's
  own error).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..chat_format import ASSISTANT, COURSE_FORMATS, PYTHIA_PAD_TOKEN, ROLE_ALIASES, ChatFormat
from ..data.conversations import read_records, record_id
from ..scale.trl_route import ecosystem_messages, trl_label_masks
from ..scale.truncation import trained_target_count
from ..steps.format import ConversationError, conversation_name, normalize_messages
from ..steps.mask import check_max_length, require_reply, token_id, tokenize_conversation
from ..steps.template_mask import template_mask_details
from ..steps.tokenize import load_base_tokenizer, load_tokenizer
from ..viz.report import ConversationMasks, Finding, MaskReport, TrlMasks
from ..viz.text import token_strings

#: The course's formats by the name ``--chat-format`` takes: "open-assistant", "chatml", "llama-3".
FORMATS = {f.name: f for f in COURSE_FORMATS.values()}

# Strings a chat template writes that look like special tokens: <|im_start|>, <start_of_turn>, </s>.
_TEMPLATE_TOKEN = re.compile(r"<\|[^\s|<>]{1,60}\|>|</?[A-Za-z_][A-Za-z0-9_]{0,59}>")


def read_data(path, *, limit: int | None = None) -> tuple[list[tuple[str, dict]], bool]:
    """``([(where, record), …], limited)``: the first ``limit`` records of a JSONL file of conversations
    (:func:`sft_utils.data.conversations.read_records`), and whether ``limit`` left some unread.

    Raises FileNotFoundError for no such file; ConversationError naming the file and line for a line that is
    not UTF-8, not JSON or not an object with ``messages``, and for a message whose role is none of
    ``prompter``/``user``, ``assistant``, ``system`` (a role no format knows would be dropped or refused by every
    route; the whole file is refused, so that no conversation is masked without it). Other problems of a
    conversation are the report's to show (refused)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no data file {path}")
    records = []
    for where, record in read_records(path):
        if limit is not None and len(records) == limit:
            return records, True
        messages = record["messages"]
        for i, message in enumerate(messages if isinstance(messages, list) else []):
            role = message.get("role") if isinstance(message, dict) else None
            if isinstance(message, dict) and not (isinstance(role, str) and role in ROLE_ALIASES):
                named = record_id(record, where)
                name = conversation_name(where if named == where else f"{named} ({where})", i)
                raise ConversationError(f"{name}: unknown role {role!r}; expected one of {sorted(ROLE_ALIASES)}")
        records.append((where, record))
    return records, False


def template_tokens(chat_template: str) -> list[str]:
    """The strings ``chat_template`` writes that look like special tokens (``<|…|>``, ``<…>``, ``</…>``), in the
    order they first appear."""
    return list(dict.fromkeys(_TEMPLATE_TOKEN.findall(chat_template)))


def read_template(path) -> str:
    """The text of a chat template file; raises FileNotFoundError, or ValueError for a file that is not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no template file {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"template {path.name} is not UTF-8 (byte {e.start})") from None


# Rendered once to find a template that cannot render at all (its Jinja does not compile).
_PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def check_template_compiles(tokenizer, chat_template: str, name: str) -> None:
    """Raise ValueError, naming the file ``name`` and the line, when ``chat_template`` does not compile in
    transformers' Jinja environment (a syntax error, an unknown filter or tag). A template that compiles but
    refuses a conversation is the report's to show, conversation by conversation."""
    import jinja2

    try:
        _render(tokenizer, _PROBE, chat_template)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"template {name} cannot render: line {e.lineno}: {e.message}") from None
    except Exception:  # noqa: BLE001 - it compiled; refusing this probe conversation is allowed
        return


def template_tokenizer(name_or_path, chat_template: str):
    """``(tokenizer, added)``: the tokenizer ``name_or_path`` names as it ships (:func:`load_base_tokenizer`),
    with the special-looking strings of ``chat_template`` (:func:`template_tokens`) that it lacks added as special
    tokens, in order, and the template installed; ``added`` lists them. The pad token, when missing, becomes
    Pythia's ``<|padding|>`` (else the end-of-text token)."""
    tokenizer = load_base_tokenizer(name_or_path)
    vocab = tokenizer.get_vocab()
    added = [t for t in template_tokens(chat_template) if t not in vocab]
    tokenizer.add_tokens(added, special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PYTHIA_PAD_TOKEN if PYTHIA_PAD_TOKEN in vocab else tokenizer.eos_token
    tokenizer.chat_template = chat_template
    return tokenizer, added


def _render(tokenizer, messages, chat_template, generation_prompt=False):
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt, chat_template=chat_template
    )


def _try_render(tokenizer, messages, chat_template, generation_prompt=False) -> str | None:
    """The rendering of ``messages``, or None where the template refuses it (a prefix a strict template rejects)."""
    if not messages:
        return ""
    try:
        return _render(tokenizer, messages, chat_template, generation_prompt)
    except Exception:  # noqa: BLE001 - a refused prefix only gives no boundary; the full rendering succeeded
        return None


def _message_spans(tokenizer, messages, chat_template, text) -> list[tuple[int, int, int] | None]:
    """Per message, ``(start, text_start, text_end)`` in the rendering ``text``: where its header starts (the end
    of the rendering of the messages before it, when that is a prefix of ``text``; else the end of the previous
    content), and where its content lies, searched after the header (after the generation prompt for a reply;
    stripped where the template strips it). None for a content not found."""
    spans, position = [], 0
    for k, message in enumerate(messages):
        start = search_from = position
        before = _try_render(tokenizer, messages[:k], chat_template)
        if before is not None and text.startswith(before) and len(before) >= position:
            start = search_from = len(before)
        if message["role"] == ASSISTANT:
            prompt = _try_render(tokenizer, messages[:k], chat_template, generation_prompt=True)
            if prompt is not None and text.startswith(prompt) and len(prompt) >= search_from:
                search_from = len(prompt)
        content = message["content"]
        found = text.find(content, search_from)
        if found < 0:
            content = content.strip()
            found = text.find(content, search_from)
        if found < 0:
            spans.append(None)
            continue
        spans.append((start, found, found + len(content)))
        position = found + len(content)
    return spans


def special_tokens(tokenizer, extra=()) -> list[str]:
    """The tokenizer's special tokens (its named ones and every added token marked special; not Pythia's added
    runs of spaces), after ``extra``: what a typed marker is checked against."""
    added = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    return list(dict.fromkeys([*extra, *tokenizer.all_special_tokens, *added]))


def _typed_markers(messages, specials, where_it_matters: str) -> list[Finding]:
    findings = []
    for k, message in enumerate(messages):
        content = message.get("content", message.get("text"))
        typed = [s for s in specials if s in content]
        if typed:
            listed = ", ".join(repr(s) for s in typed)
            findings.append(Finding("typed-marker", f"message {k} types {listed}: {where_it_matters}"))
    return findings


def _reply_findings(conversation: ConversationMasks, replies, max_length) -> None:
    """Findings about each reply's end and cut: ``replies`` holds ``(message, first token, end token or None,
    end trained)`` per assistant message."""
    for k, first, end, end_trained in replies:
        if end is None:
            conversation.findings.append(
                Finding("end-untrained", f"reply (message {k}) has no token after its text: no end to learn to stop at")
            )
        elif not end_trained:
            token = conversation.tokens[end]
            conversation.findings.append(
                Finding("end-untrained", f"reply (message {k}) ends with {token!r} (position {end}), not trained")
            )
        if end is not None and first < conversation.kept <= end:
            conversation.findings.append(
                Finding(
                    "reply-cut",
                    f"max_length={max_length} cuts reply (message {k}) before its end token (position {end})",
                )
            )
    if len(conversation.input_ids) > conversation.kept and not trained_target_count(
        {"label_mask": conversation.label_mask[: conversation.kept]}
    ):
        conversation.findings.append(
            Finding("no-trained-token", f"max_length={max_length} leaves no trained target: dropped from training")
        )


def _refused(where: str, name, error: Exception) -> ConversationMasks:
    reason = str(error)
    if not isinstance(error, ConversationError):  # the template's own error, or transformers'
        reason = f"{conversation_name(name)}: the template raised {type(error).__name__}: {reason}"
    return ConversationMasks(name=name, where=where, refused=reason, findings=[Finding("refused", reason)])


def _masks(where, name, tokenizer, example, max_length) -> ConversationMasks:
    ids = example["input_ids"]
    kept = len(ids) if max_length is None else min(max_length, len(ids))
    return ConversationMasks(
        name=name,
        where=where,
        tokens=token_strings(tokenizer, ids) if ids else [],
        input_ids=list(ids),
        label_mask=[bool(m) for m in example["label_mask"]],
        message_indices=list(example["message_indices"]),
        kept=kept,
        padding=0 if max_length is None else max_length - kept,
    )


def format_masks(where, record, tokenizer, chat_format: ChatFormat, max_length=None) -> ConversationMasks:
    """One conversation masked by ``chat_format`` (:func:`sft_utils.tokenize_conversation`, untruncated; ``kept``
    says what ``max_length`` keeps, as its truncation would), with its findings; refused on a ConversationError."""
    name = record_id(record, where)
    try:
        messages = normalize_messages(record["messages"], conversation_id=name)
        example = tokenize_conversation(messages, tokenizer, chat_format=chat_format, conversation_id=name)
    except ConversationError as error:
        return _refused(where, name, error)
    conversation = _masks(where, name, tokenizer, example, max_length)
    end_id = token_id(tokenizer, chat_format.end_of_message)
    replies = []
    for k, message in enumerate(messages):
        if message["role"] == ASSISTANT:
            positions = [t for t, i in enumerate(conversation.message_indices) if i == k]
            ends = [t for t in positions if conversation.input_ids[t] == end_id]  # typed text is never the end id
            end = ends[-1] if ends else None
            replies.append((k, positions[0], end, end is not None and conversation.label_mask[end]))
    conversation.findings += _typed_markers(
        messages,
        special_tokens(tokenizer, chat_format.special_tokens),
        "it stays text here (tokenize_conversation); a chat template renderer (apply_chat_template, TRL) would "
        "make it a special token",
    )
    _reply_findings(conversation, replies, max_length)
    return conversation


def template_masks(
    where, record, tokenizer, chat_template: str, max_length=None, *, include_header: bool = False, footer: str = ""
) -> ConversationMasks:
    """One conversation masked by a chat template (:func:`mask_from_template`, with ``include_header`` and
    ``footer`` as there), its tokens assigned to messages by where they start in the rendering, with its findings
    (boundary merges too); refused on a ConversationError, or on any error the template raises on it."""
    name = record_id(record, where)
    try:
        messages = ecosystem_messages(require_reply(normalize_messages(record["messages"], conversation_id=name)))
        details = template_mask_details(  # the mask of mask_from_template, with the rendering and offsets it read
            messages,
            tokenizer,
            chat_template=chat_template,
            include_header=include_header,
            footer=footer,
            conversation_id=name,
        )
    except Exception as error:  # noqa: BLE001 - a template may raise anything on one conversation; report it
        return _refused(where, name, error)
    example = {"input_ids": details["input_ids"], "label_mask": details["label_mask"]}
    text, offsets = details["text"], details["offsets"]
    spans = _message_spans(tokenizer, messages, chat_template, text)
    starts = [(span[0], k) for k, span in enumerate(spans) if span]  # a token belongs to the last header before it
    message_indices = [max((k for b, k in starts if b <= s), default=0) for s, _ in offsets]
    conversation = _masks(where, name, tokenizer, {**example, "message_indices": message_indices}, max_length)
    conversation.findings += _typed_markers(
        messages,
        special_tokens(tokenizer),
        "the template's renderer makes it a special token here, as apply_chat_template does",
    )
    replies = []
    for k, message in enumerate(messages):
        if message["role"] == ASSISTANT and spans[k] is not None:
            following = next((span[0] for span in spans[k + 1 :] if span), len(text))
            replies.append(_template_reply(conversation, offsets, k, spans[k][1:], following))
    _reply_findings(conversation, replies, max_length)
    return conversation


def _template_reply(conversation: ConversationMasks, offsets, k: int, reply: tuple[int, int], following: int):
    """Boundary-merge findings of reply ``k`` (its content at characters ``reply``; the next message's header at
    ``following``), and its ``(message, first token, end token or None, end trained)`` for :func:`_reply_findings`:
    the end is the last trained token after the text and before the next header, else the first such token."""
    text_start, text_end = reply
    mask, tokens = conversation.label_mask, conversation.tokens
    for t, (s, e) in enumerate(offsets):
        if mask[t] and s < text_start < e:
            conversation.findings.append(
                Finding(
                    "boundary-merge",
                    f"reply (message {k}): trained token {tokens[t]!r} (position {t}) starts {text_start - s} "
                    "character(s) before the reply, in the header",
                )
            )
        elif not mask[t] and s < text_end and e > text_start and e > s:
            conversation.findings.append(
                Finding(
                    "boundary-merge",
                    f"reply (message {k}): untrained token {tokens[t]!r} (position {t}) carries reply text",
                )
            )
    body = [t for t, (s, e) in enumerate(offsets) if s < text_end and e > text_start]
    closing = [t for t, (s, e) in enumerate(offsets) if e > text_end and s < following and e > s]
    trained = [t for t in closing if mask[t]]
    end = trained[-1] if trained else (closing[0] if closing else None)
    first = body[0] if body else (end if end is not None else 0)
    return k, first, end, bool(trained)


def compare_with_trl(conversations, rows, tokenizer, chat_template=None) -> str:
    """Add TRL's masks (``assistant_only_loss=True``) to the masked ``conversations`` (``rows`` their
    ``{"messages": …}`` rows, in order) and a ``trl-differs`` finding where TRL trains other tokens; returns what
    the page says of TRL. TRL that is missing or refuses the template (e.g. no ``{% generation %}`` block and no
    training copy of it) leaves the report without the comparison, and the returned text says why."""
    if not conversations:
        return "no conversation to compare"
    try:
        import trl
    except ImportError:
        return "trl is not installed"
    try:
        examples = trl_label_masks(rows, tokenizer, chat_template=chat_template, assistant_only_loss=True)
    except Exception as error:  # noqa: BLE001 - the comparison is optional: say why it is missing, keep the report
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"TRL {trl.__version__} cannot train this with assistant_only_loss=True ({first})"
    if len(examples) != len(conversations):
        return f"TRL {trl.__version__} kept {len(examples)} of {len(conversations)} conversations: not compared"
    for conversation, example in zip(conversations, examples):
        same = list(example["input_ids"]) == conversation.input_ids
        conversation.trl = TrlMasks(
            tokens=token_strings(tokenizer, example["input_ids"]) if example["input_ids"] else [],
            label_mask=[bool(m) for m in example["label_mask"]],
            same_ids=same,
        )
        if not same:
            conversation.findings.append(
                Finding(
                    "trl-differs",
                    f"TRL tokenizes this conversation into {len(example['input_ids'])} tokens, not "
                    f"{len(conversation.input_ids)}, and trains {sum(conversation.trl.label_mask)}, not "
                    f"{sum(conversation.label_mask)} (its row of chips is shown below)",
                )
            )
        elif conversation.trl_differs:
            positions = conversation.trl_differs
            listed = ", ".join(map(str, positions[:8])) + (", …" if len(positions) > 8 else "")
            conversation.findings.append(
                Finding("trl-differs", f"TRL trains otherwise at {len(positions)} position(s): {listed} (outlined)")
            )
    return f"compared with TRL {trl.__version__} (SFTTrainer, assistant_only_loss=True)"


def _unbounded(tokenizer):
    """``tokenizer`` without its model's length limit: the report measures lengths against ``max_length`` itself, so
    transformers' warning about sequences longer than the model's would only be noise."""
    tokenizer.model_max_length = int(1e30)  # transformers' own "no limit" (VERY_LARGE_INTEGER)
    return tokenizer


def inspect_data(
    path,
    *,
    chat_format: ChatFormat | None = None,
    template=None,
    tokenizer_name=None,
    max_length: int | None = None,
    limit: int | None = None,
    trl: bool = True,
    include_header: bool = False,
    footer: str = "",
) -> MaskReport:
    """The :class:`~sft_utils.viz.report.MaskReport` of a JSONL file of conversations (the course's
    ``role``/``text`` form or the ecosystem's ``role``/``content``), masked by ``chat_format`` (a
    :class:`~sft_utils.ChatFormat`) or by the chat template in the file ``template`` (one of the two), with
    Pythia's tokenizer by default (``tokenizer_name``: any name or folder :func:`sft_utils.load_tokenizer` takes).
    ``max_length``: tokens kept per conversation (the rest drawn as cut, and padding counted up to it); ``limit``:
    read only the first conversations; ``trl``: compare with TRL's masks (seconds more); ``include_header`` and
    ``footer``: for a template, as :func:`mask_from_template` takes them.

    Raises ValueError for both or neither of ``chat_format`` and ``template``, a bad ``max_length`` or
    ``limit``, and a template that does not compile; FileNotFoundError for a missing file; ConversationError as
    :func:`read_data`; what :func:`sft_utils.load_tokenizer` raises for a tokenizer it cannot load.
    """
    if (chat_format is None) == (template is None):
        raise ValueError("give one of chat_format and template")
    check_max_length(max_length)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an int >= 1 (conversations), got {limit!r}")
    records, limited = read_data(path, limit=limit)
    name = tokenizer_name or "EleutherAI/pythia-70m"
    if chat_format is not None:
        tokenizer = _unbounded(load_tokenizer(name, verbose=False, chat_format=chat_format))
        source = f"{tokenizer.sft_source}, with {chat_format.name}'s tokens"
        masked_by = f"chat format {chat_format.name} (tokenize_conversation)"
        conversations = [format_masks(w, r, tokenizer, chat_format, max_length) for w, r in records]
        chat_template = None
    else:
        chat_template = read_template(template)
        tokenizer, added = template_tokenizer(name, chat_template)
        tokenizer = _unbounded(tokenizer)
        check_template_compiles(tokenizer, chat_template, Path(template).name)
        source = tokenizer.sft_source + (f", with the template's tokens {', '.join(added)} added" if added else "")
        masked_by = f"template {Path(template).name} (mask_from_template, prefix diffing)"
        conversations = [
            template_masks(w, r, tokenizer, chat_template, max_length, include_header=include_header, footer=footer)
            for w, r in records
        ]
    report = MaskReport(
        data=Path(path).name,
        masked_by=masked_by,
        tokenizer=source,
        max_length=max_length,
        pad_token=tokenizer.pad_token,
        conversations=conversations,
        limited=limited,
    )
    report.trl = "not asked for"
    if trl:
        masked = [(c, r) for c, (_, r) in zip(conversations, records) if c.refused is None]
        rows = [{"messages": ecosystem_messages(r["messages"])} for _, r in masked]
        report.trl = compare_with_trl([c for c, _ in masked], rows, tokenizer, chat_template)
    return report
