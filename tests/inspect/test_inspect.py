"""The mask report's command line and checks: ``python -m sft_utils.inspect`` on small files written here, and on the
course's data with each shipped chat format and with a template file."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sft_utils
from sft_utils import CHATML, OPEN_ASSISTANT, tokenize_conversation
from sft_utils.chat_format import TEMPLATE_DIR
from sft_utils.inspect import FORMATS, inspect_data
from sft_utils.inspect.__main__ import main
from sft_utils.inspect.masks import template_tokens

ROOT = Path(__file__).resolve().parents[2]

# A Mistral-style template (no {% generation %} block): "[/INST]" ends in punctuation, so a reply that starts with
# punctuation merges with it into one token on Pythia's BPE; a system message is refused by the template itself.
MISTRAL_STYLE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

# A known input: both forms (role/text, role/content), a reply cut by max_length=8, a conversation that max_length
# leaves with nothing to train, one refused (it opens with the assistant), a typed marker.
KNOWN = [
    {"id": "ok", "messages": [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello"}]},
    {
        "id": "cut",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "one two three four"}],
    },
    {
        "id": "dropped",
        "messages": [{"role": "prompter", "text": "a b c d e f g h"}, {"role": "assistant", "text": "ok"}],
    },
    {"id": "refused", "messages": [{"role": "assistant", "text": "I start"}, {"role": "prompter", "text": "no"}]},
    {
        "id": "typed",
        "messages": [{"role": "prompter", "text": "Is <|assistant|> a token?"}, {"role": "assistant", "text": "Yes"}],
    },
]


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "sft_utils.inspect", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def summary_rows(page: str) -> dict:
    """The summary table of a report page, label -> value."""
    table = re.search(r'<table class="summary">(.*?)</table>', page).group(1)
    return dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_command_line_reports_the_course_data_in_each_shipped_format(name, tmp_path, format_tokenizer, capsys):
    out = tmp_path / "report.html"
    assert main([str(sft_utils.course_data_path()), "--chat-format", name, "--no-trl", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    chat_format = FORMATS[name]
    tokenizer = format_tokenizer(chat_format)
    examples = [
        tokenize_conversation(c["messages"], tokenizer, chat_format=chat_format)
        for c in sft_utils.load_conversations(sft_utils.course_data_path())
    ]
    tokens, trained = sum(len(e["input_ids"]) for e in examples), sum(sum(e["label_mask"]) for e in examples)
    page = out.read_text(encoding="utf-8")
    rows = summary_rows(page)
    assert rows["conversations"] == rows["masked"] == "13"
    assert rows["tokens"] == str(tokens)
    assert rows["trained tokens"] == f"{trained} ({trained / tokens:.1%})"
    assert page.count('class="chip mask-1') == trained
    assert page.count('class="chip mask-0') == tokens - trained


def test_the_summary_counts_a_known_input_exactly(tmp_path):
    """ok: 6 tokens, 3 trained, 2 padding; cut: 9 tokens, 8 kept, 5 trained (marker and 4 words), its end cut;
    dropped and typed: 8 kept prompt tokens, none trained; refused: no mask."""
    out = tmp_path / "report.html"
    data = write_jsonl(tmp_path / "known.jsonl", KNOWN)
    assert main([str(data), "--chat-format", "open-assistant", "--max-length", "8", "--no-trl", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert summary_rows(page) == {
        "conversations": "5",
        "masked": "4",
        "refused": "1",
        "tokens": "30 (after max_length=8)",
        "trained tokens": "8 (26.7%)",
        "truncated": "3",
        "dropped (no trained target left)": "2",
        "padding to max_length": "2 (6.2% of the batch)",
        "TRL": "not compared",
    }
    kinds = dict(re.findall(r'<tr class="\w+" data-kind="([\w-]+)"><td>[\w-]+</td><td class="n">([^<]+)</td>', page))
    assert kinds == {
        "refused": "1",
        "end-untrained": "0",
        "boundary-merge": "0",
        "typed-marker": "1",
        "reply-cut": "1",
        "no-trained-token": "2",
        "trl-differs": "–",  # not compared (--no-trl)
    }
    assert page.count('class="chip pad"') == 1 and "padding × 2" in page
    assert len(re.findall(r'class="chip mask-\d msg-\d removed"', page)) == 1 + 5 + 6  # cut, dropped, typed
    assert "max_length=8 cuts reply (message 1) before its end token (position 8)" in page
    assert "message 0 types &#x27;&lt;|assistant|&gt;&#x27;: it stays text here" in page
    assert "conversation &#x27;refused&#x27;, message 0: expected role &#x27;prompter&#x27;" in page


def test_both_forms_of_a_message_give_the_same_masks(tmp_path, tokenizer):
    course = {"messages": [{"role": "system", "text": "Be brief."}, {"role": "prompter", "text": "Hi"}]}
    course["messages"].append({"role": "assistant", "text": "Hello there."})
    ecosystem = {
        "messages": [{"role": m["role"].replace("prompter", "user"), "content": m["text"]} for m in course["messages"]]
    }
    report = inspect_data(
        write_jsonl(tmp_path / "two.jsonl", [course, ecosystem]), chat_format=OPEN_ASSISTANT, trl=False
    )
    first, second = report.conversations
    expected = tokenize_conversation(course["messages"], tokenizer)
    for conversation in (first, second):
        assert conversation.input_ids == expected["input_ids"]
        assert conversation.label_mask == expected["label_mask"]
        assert conversation.message_indices == expected["message_indices"]
    assert [first.name, second.name] == ["two.jsonl:1", "two.jsonl:2"]


def test_a_template_file_masks_as_the_format_it_writes(tmp_path):
    """The course's ChatML template, masked by prefix diffing with its footer named, gives the CHATML format's masks
    (the conversation whose text types <|endoftext|> aside: the template's tokenizer makes it a special token)."""
    data = sft_utils.course_data_path()
    by_template = inspect_data(data, template=TEMPLATE_DIR / CHATML.template, footer="\n", trl=False)
    by_format = inspect_data(data, chat_format=CHATML, trl=False)
    assert "with the template's tokens <|im_start|>, <|im_end|> added" in by_template.tokenizer
    for t, f in zip(by_template.conversations, by_format.conversations):
        if t.name == "format-question":
            assert [x.kind for x in t.findings] == ["typed-marker"]
            assert t.input_ids != f.input_ids
            continue
        assert (t.input_ids, t.label_mask, t.message_indices) == (f.input_ids, f.label_mask, f.message_indices)
        assert t.findings == f.findings == []


def test_the_command_line_takes_a_template_file_and_names_a_boundary_merge(tmp_path):
    template = tmp_path / "mistral_style.jinja"
    template.write_text(MISTRAL_STYLE)
    data = write_jsonl(
        tmp_path / "hard.jsonl",
        [
            {
                "id": "dash",
                "messages": [
                    {"role": "user", "content": "List two fruits"},
                    {"role": "assistant", "content": "- apple\n- pear"},
                ],
            },
            {
                "id": "plain",
                "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
            },
            {
                "id": "sys",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello."},
                ],
            },
        ],
    )
    out = tmp_path / "report.html"
    done = run_cli(data, "--template", template, "--no-trl", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "findings: refused 1, boundary-merge 1" in done.stdout
    page = out.read_text(encoding="utf-8")
    # "[/INST]" + "-" is one token that starts in the header: trained (it carries the reply's "-"), and named.
    assert re.search(r"reply \(message 1\): trained token &#x27;\]-&#x27; \(position 10\)", page)
    assert (
        "message 0: the chat template refuses the conversation from this message on (role &#x27;system&#x27;)" in page
    )
    assert "TemplateError: Only user and assistant roles are supported!" in page
    assert summary_rows(page)["refused"] == "1"


NO_END = (
    "{% for m in messages %}{{ '<|user|>' if m['role'] == 'user' else '<|assistant|>' }}{{ m['content'] }}END"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


@pytest.mark.parametrize(
    "end, footer, tokens, finding",
    [
        ("<|end|>", "<|end|>", "<|end|>", "reply (message 1) ends with '<|end|>' (position 5), not trained"),
        ("", "", "", "reply (message 1) has no token after its text: no end to learn to stop at"),
    ],
)
def test_the_template_route_finds_an_untrained_end(end, footer, tokens, finding, tmp_path):
    """A reply whose end the mask leaves out (here: a footer named that is the template's end token), or a template
    that writes no end after a reply at all."""
    template = tmp_path / "t.jinja"
    template.write_text(NO_END.replace("END", f"{{{{ '{end}' }}}}" if end else ""))
    report = inspect_data(write_jsonl(tmp_path / "one.jsonl", [KNOWN[0]]), template=template, footer=footer, trl=False)
    (conversation,) = report.conversations
    expected = ["<|user|>", "Hi", end, "<|assistant|>", "Hello", end]
    assert conversation.tokens == [t for t in expected if t]
    assert conversation.label_mask == [t == "Hello" for t in conversation.tokens]
    assert conversation.message_indices == [0] * (2 + bool(end)) + [1] * (2 + bool(end))
    assert [(f.kind, f.text) for f in conversation.findings] == [("end-untrained", finding)]


def test_trl_trains_the_header_where_its_generation_block_holds_it(tmp_path, tokenizer):
    """A template whose {% generation %} block holds the whole reply, header included: TRL trains the header, the
    report (prefix diffing after the generation prompt) does not; the outlined tokens are each reply's header."""
    header_in_block = (
        r"{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}"
        r"{{ '<|im_start|>assistant\n' + m['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
        r"{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
        r"{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    template = tmp_path / "header_in_block.jinja"
    template.write_text(header_in_block)
    data = write_jsonl(tmp_path / "d.jsonl", [KNOWN[0], {"messages": [*KNOWN[1]["messages"], *KNOWN[0]["messages"]]}])
    report = inspect_data(data, template=template, footer="\n")
    assert report.trl.startswith("compared with TRL")
    for conversation, replies in zip(report.conversations, (1, 2)):
        assert conversation.trl.same_ids
        differs = conversation.trl_differs
        assert all(conversation.trl.label_mask[t] and not conversation.label_mask[t] for t in differs)
        assert "".join(conversation.tokens[t] for t in differs) == "<|im_start|>assistant↵" * replies
        assert [f.kind for f in conversation.findings] == ["trl-differs"]


def test_trl_that_cannot_train_a_template_is_said_and_nothing_compared(tmp_path):
    template = tmp_path / "mistral_style.jinja"
    template.write_text(MISTRAL_STYLE)
    report = inspect_data(write_jsonl(tmp_path / "d.jsonl", [KNOWN[0]]), template=template)
    assert "cannot train this with assistant_only_loss=True" in report.trl
    assert report.conversations[0].trl is None


def test_template_tokens_are_the_special_looking_strings_in_order():
    assert template_tokens("{{ '<|im_start|>' + x + '<|im_end|>\n<|im_start|>' }}<think></think>[INST]") == [
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "</think>",
    ]


def test_limit_reads_only_the_first_conversations(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", KNOWN)
    (tmp_path / "d.jsonl").write_text((tmp_path / "d.jsonl").read_text() + "{not json\n")
    report = inspect_data(data, chat_format=OPEN_ASSISTANT, limit=2, trl=False)
    assert [c.name for c in report.conversations] == ["ok", "cut"] and report.limited
    assert report.summary()["conversations"] == "2 (first ones, --limit)"


@pytest.mark.parametrize(
    "lines, args, message",
    [
        (None, ["--chat-format", "chatml"], "error: no data file {data}"),
        (['{"messages": []}', "{bad"], ["--chat-format", "chatml"], "error: d.jsonl:2: not valid JSON (Expecting"),
        (
            ['{"id": "x", "messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}'],
            ["--chat-format", "chatml"],
            (
                "error: conversation 'x (d.jsonl:1)', message 1: unknown role 'bot'; expected one of ['assistant', "
                "'prompter', 'system', 'user']"
            ),
        ),
        (
            [],
            ["--template", "{tmp}/broken.jinja"],
            "error: template broken.jinja cannot render: line 1: unexpected '}'",
        ),
        ([], ["--template", "{tmp}/none.jinja"], "error: no template file {tmp}/none.jinja"),
        ([], ["--chat-format", "zephyr"], "error: argument --chat-format: invalid choice: 'zephyr'"),
        ([], ["--chat-format", "chatml", "--max-length", "0"], "error: --max-length must be >= 1, got 0"),
        (
            [],
            ["--chat-format", "chatml", "--footer", "\\n"],
            "error: --include-header and --footer apply to --template",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(lines, args, message, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    if lines is not None:
        data.write_text("".join(line + "\n" for line in lines))
    (tmp_path / "broken.jinja").write_text("{% for m in messages %}{{ m.content }{% endfor %}")
    argv = [str(data), *(a.replace("{tmp}", str(tmp_path)) for a in args), "--out", str(tmp_path / "r.html")]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m sft_utils.inspect: error: ")
    assert message.replace("{data}", str(data)).replace("{tmp}", str(tmp_path)) in err
    assert not (tmp_path / "r.html").exists()


def test_an_error_leaves_no_traceback_in_a_real_process(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "tool", "content": "a"}]}\n')
    done = run_cli(data, "--chat-format", "chatml", "--out", tmp_path / "r.html")
    assert done.returncode == 2
    assert done.stderr == (
        "python -m sft_utils.inspect: error: conversation 'd.jsonl:1', message 0: unknown role 'tool'; "
        "expected one of ['assistant', 'prompter', 'system', 'user']\n"
    )
