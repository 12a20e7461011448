"""``python -m sft_utils.inspect DATA.jsonl (--chat-format NAME | --template FILE.jinja) --out report.html``.

Writes the mask report (:mod:`sft_utils.inspect`) and prints its summary. Errors in the input (a missing file,
a line that is not JSON, an unknown role, a template that does not compile, a tokenizer that cannot be loaded)
print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .masks import FORMATS, inspect_data

PROG = "python -m sft_utils.inspect"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage itself is in --help)."""

    def error(self, message):
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(
        prog=PROG,
        description="A mask report for your own data: which tokens each conversation trains, and what looks wrong, "
        "as one self-contained HTML page.",
    )
    parser.add_argument("data", help="JSONL file, one conversation a line: {'messages': [{'role', 'text'|'content'}]}")
    route = parser.add_mutually_exclusive_group(required=True)
    route.add_argument("--chat-format", choices=sorted(FORMATS), help="mask as the course's format does")
    route.add_argument(
        "--template",
        metavar="FILE.jinja",
        help="mask by rendering this chat template (prefix diffing); the tokenizer gets the special-looking "
        "strings it writes (<|…|>, <…>) as added tokens where it lacks them",
    )
    parser.add_argument(
        "--tokenizer", metavar="NAME_OR_PATH", help="hub name or folder (default: Pythia's, offline copy if needed)"
    )
    parser.add_argument("--max-length", type=int, help="tokens kept per conversation (the rest drawn as cut)")
    parser.add_argument("--limit", type=int, help="read only the first N conversations")
    parser.add_argument("--no-trl", action="store_true", help="skip the comparison with TRL's masks (faster)")
    parser.add_argument(
        "--include-header", action="store_true", help="--template: train each reply's header too (mask_from_template)"
    )
    parser.add_argument(
        "--footer",
        default="",
        help=r"--template: what the template writes after every message's end token, left untrained (e.g. '\n')",
    )
    parser.add_argument("--out", required=True, metavar="report.html", help="the page to write")
    args = parser.parse_args(argv)
    for name in ("max_length", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.chat_format and (args.include_header or args.footer):
        parser.error("--include-header and --footer apply to --template only")
    # "\n" typed on the command line is a newline; any other character stays as it is.
    args.footer = args.footer.encode("latin-1", "backslashreplace").decode("unicode_escape")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report = inspect_data(
            args.data,
            chat_format=FORMATS[args.chat_format] if args.chat_format else None,
            template=args.template,
            tokenizer_name=args.tokenizer,
            max_length=args.max_length,
            limit=args.limit,
            trl=not args.no_trl,
            include_header=args.include_header,
            footer=args.footer,
        )
        from ..viz.report import report_html

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report_html(report), encoding="utf-8")
    except (ValueError, OSError) as error:  # ConversationError is a ValueError; FileNotFoundError an OSError
        message = " ".join(str(error).split()) if str(error).strip() else type(error).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    summary = report.summary()
    print(f"masks: {report.masked_by}; tokenizer: {report.tokenizer}")
    print("; ".join(f"{label} {value}" for label, value in summary.items()))
    counts = {kind: n for kind, n in report.kind_counts().items() if n}
    print("findings: " + (", ".join(f"{kind} {n}" for kind, n in counts.items()) if counts else "none"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
