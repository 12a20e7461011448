"""The table of real chat templates in docs/chat_templates.md: what prefix diffing makes of each.

Each template under tests/templates/real/ (sources in SOURCES.json there) masks the course's conversations and a
few hard cases with ``mask_from_template``, on Pythia's tokenizer with every template's special tokens added.
Each mask is checked against an independent one: the ``{% generation %}`` blocks of TRL's training version of the
template (``return_assistant_tokens_mask``), and the characters of each message in the rendered text (a reply's
text must be trained, another message's never). A conversation's outcome is *exact* (the same mask as TRL's),
*differs* (TRL's training template trains scaffolding tokens ours does not, or the reverse: listed), or *refused*
(a ConversationError, reason given). Any other exception, or a reply's text left untrained, fails.

    python tools/chat_template_table.py           # print the table
    python tools/chat_template_table.py --write   # and write it into docs/chat_templates.md
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "templates" / "real"
DOC = ROOT / "docs" / "chat_templates.md"
BEGIN, END = "<!-- real-template table: begin -->", "<!-- real-template table: end -->"

# Strings that templates write as special tokens: <|…|>, <｜…｜>, <start_of_turn>, <|START_OF_TURN_TOKEN|>, …
_SPECIAL = re.compile(
    r"<\|[^|<>\s]{1,40}\|>|<｜[^<>\s]{1,40}｜>|<(?:start|end)_of_(?:turn|utterance)>|<\|?[A-Z_]{4,40}\|?>"
)

HARD_CASES = {
    "punctuation-first replies": [
        {"role": "user", "content": "List two colours."},
        {"role": "assistant", "content": "- red\n- blue"},
        {"role": "user", "content": "Define x."},
        {"role": "assistant", "content": "(x is a variable)"},
        {"role": "user", "content": "Quote it."},
        {"role": "assistant", "content": '"To be or not to be."'},
        {"role": "user", "content": "Bold it."},
        {"role": "assistant", "content": "<b>bold</b>"},
    ],
    "empty-looking replies": [
        {"role": "user", "content": "Say nothing much."},
        {"role": "assistant", "content": "\n\n..."},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": " . "},
    ],
    "typed role markers": [
        {"role": "user", "content": "Type <|im_start|>assistant\n, [/INST] and <|assistant|> for me."},
        {"role": "assistant", "content": "Here: <|im_end|> [INST] <|user|> <start_of_turn>model done."},
    ],
    "system message": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
    ],
    "prompter role, multi-turn": [
        {"role": "prompter", "content": "One?"},
        {"role": "assistant", "content": "1"},
        {"role": "prompter", "content": "Two?"},
        {"role": "assistant", "content": "2"},
        {"role": "prompter", "content": "Three?"},
        {"role": "assistant", "content": "3!"},
    ],
}


def sources() -> dict:
    return json.loads((REAL / "SOURCES.json").read_text())["templates"]


def template_text(name: str, spec: dict) -> str:
    """The template as its source says to read it (``load``: ``flatten`` drops the indentation and newlines that
    chujiezheng/chat_templates' files carry for reading, as that repository's README does)."""
    text = (REAL / f"{name}.jinja").read_text()
    return text.replace("    ", "").replace("\n", "") if spec.get("load") == "flatten" else text


def template_tokenizer():
    """Pythia's offline tokenizer with every real template's special tokens added (one tokenizer for all)."""
    import sft_utils

    tokenizer = sft_utils.load_tokenizer(verbose=False)
    tokens = set()
    for path in sorted(REAL.glob("*.jinja")):
        tokens.update(_SPECIAL.findall(path.read_text()))
    tokenizer.add_special_tokens({"additional_special_tokens": sorted(tokens)})
    return tokenizer


def conversations(course) -> dict:
    """name -> messages in the ecosystem's form (the course's ``prompter`` kept: mask_from_template maps it)."""
    found = {c["id"]: [{"role": m["role"], "content": m["text"]} for m in c["messages"]] for c in course}
    return {**found, **HARD_CASES}


def _as_user(messages):
    return [{"role": "user" if m["role"] == "prompter" else m["role"], "content": m["content"]} for m in messages]


def _content_spans(text: str, messages) -> list[tuple[int, int, bool]]:
    """(start, end, is_reply) of each message's stripped text in ``text``, found in order."""
    spans, position = [], 0
    for message in messages:
        content = message["content"].strip()
        start = text.find(content, position)
        assert start >= 0, f"{content!r} not in the rendering"
        spans.append((start, start + len(content), message["role"] == "assistant"))
        position = start + len(content)
    return spans


def _written_reference(ours: dict, messages, end: str) -> list[bool]:
    """The mask that trains each reply's text and the ``end`` the template writes right after it (its end token),
    found in the rendered text by characters alone."""
    trained, replies = [], [m for m in messages if m["role"] == "assistant"]
    for start, stop, is_reply in _content_spans(ours["text"], _as_user(messages)):
        if is_reply:
            text, message = ours["text"], replies.pop(0)
            leading = message["content"][: len(message["content"]) - len(message["content"].lstrip())]
            if leading and text[start - len(leading) : start] == leading:
                start -= len(leading)  # the reply's own leading whitespace, kept by a template that does not strip it
            while stop < len(text) and text[stop].isspace() and not text.startswith(end, stop):
                stop += 1  # the reply's own trailing whitespace, kept by a template that does not strip it
            assert text.startswith(end, stop), f"the reply is not followed by {end!r}"
            trained.append((start, stop + len(end)))
    return [any(s < b and max(e, s + 1) > a for a, b in trained) for s, e in ours["offsets"]]


def check_one(name: str, messages, tokenizer, spec: dict) -> tuple[str, object]:
    """('exact' | 'differs' | 'refused', detail) of one conversation under template ``name``; raises AssertionError
    on a wrong mask (a reply's text untrained, another message's trained) and lets any other exception through."""
    from sft_utils import ConversationError
    from sft_utils.steps.template_mask import template_mask_details

    original = template_text(name, spec)
    try:
        ours = template_mask_details(messages, tokenizer, chat_template=original, **spec["options"])
    except ConversationError as error:
        return "refused", str(error).split(": ", 1)[-1]
    offsets, mask = ours["offsets"], ours["label_mask"]
    for start, end, is_reply in _content_spans(ours["text"], _as_user(messages)):
        touched = [m for (s, e), m in zip(offsets, mask, strict=True) if s < end and e > start]
        assert all(touched) if is_reply else not any(touched), (name, "wrong mask on", ours["text"][start:end])
    if "reference_end" in spec:
        ids, their_mask = ours["input_ids"], _written_reference(ours, messages, spec["reference_end"])
    else:
        reference = REAL / (spec["training"]["file"] if spec["training"] else f"{name}.jinja")
        theirs = tokenizer.apply_chat_template(
            _as_user(messages),
            chat_template=reference.read_text(),
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, their_mask = list(theirs["input_ids"]), [bool(m) for m in theirs["assistant_masks"]]
    shared = next((i for i, (a, b) in enumerate(zip(ids, ours["input_ids"])) if a != b), min(len(ids), len(mask)))
    differs = Counter()
    for i in range(shared):
        if mask[i] != their_mask[i]:
            differs[("+" if their_mask[i] else "−") + repr(tokenizer.decode([ids[i]]))] += 1
    for i in range(shared, len(ids)):
        differs[("+" if their_mask[i] else "") + "written " + repr(tokenizer.decode([ids[i]]))] += 1
    for i in range(shared, len(mask)):
        differs["not written " + repr(tokenizer.decode([ours["input_ids"][i]]))] += 1
    return ("differs", differs) if differs else ("exact", None)


def outcomes(tokenizer, named_conversations) -> dict:
    """template -> {conversation name -> (outcome, detail)}."""
    return {
        name: {c: check_one(name, messages, tokenizer, spec) for c, messages in named_conversations.items()}
        for name, spec in sources().items()
    }


def _reason(text: str) -> str:
    text = re.sub(r"message \d+", "message k", re.sub(r"\s+", " ", text.replace("|", "\\|")))
    return text if len(text) <= 110 else text[:107] + "…"


def _origin(spec: dict) -> str:
    """Where the template comes from, and what its reference is, in a few words."""
    if spec["source"].startswith("trl=="):
        return "TRL 1.16.0" + ("" if spec["training"] else " (own tags)")
    repository, commit = spec["source"].split(" @ ")[0].removeprefix("github.com/"), spec["source"].split(" @ ")[1][:7]
    return f"{repository}@{commit}"


def table(found: dict) -> str:
    """The Markdown table of ``outcomes``."""
    specs = sources()
    rows = [
        "| template | family | from | options | exact | differs from the reference (tokens, by design) | refused (why) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, results in found.items():
        counts = Counter(outcome for outcome, _ in results.values())
        tokens = Counter()
        for outcome, detail in results.values():
            if outcome == "differs":
                tokens.update(dict.fromkeys(detail, 1))
        differs = ", ".join(f"{t} ({n})" for t, n in sorted(tokens.items())).replace("|", "\\|")
        refused = Counter(_reason(d) for o, d in results.values() if o == "refused")
        why = "; ".join(f"{r} ({n})" for r, n in refused.most_common(2))
        options = ", ".join(f"`{k}={v!r}`" for k, v in specs[name]["options"].items()) or "—"
        total = len(results)
        differs = f"{counts['differs']}: {differs}" if counts["differs"] else "—"
        why = f"{counts['refused']}: {why}" if counts["refused"] else "—"
        rows.append(
            f"| `{name}` | {specs[name]['family']} | {_origin(specs[name])} | {options} | {counts['exact']}/{total} | "
            f"{differs} | {why} |"
        )
    return "\n".join(rows)


def documented_table() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()


def main() -> None:
    import sft_utils

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the table into docs/chat_templates.md")
    args = parser.parse_args()
    course = sft_utils.load_conversations(sft_utils.course_data_path())
    rendered = table(outcomes(template_tokenizer(), conversations(course)))
    print(rendered)
    if args.write:
        text = DOC.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        DOC.write_text(text[:start] + "\n" + rendered + "\n" + text[end:])


if __name__ == "__main__":
    main()
