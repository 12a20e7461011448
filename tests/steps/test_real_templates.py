"""Prefix diffing on real chat templates of many model families (tests/templates/real/, sources in SOURCES.json),
checked against TRL's {% generation %}-tagged training templates and against the messages' own characters; the
table in docs/chat_templates.md is what tools/chat_template_table.py computes."""

import hashlib
import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "chat_template_table.py"
_spec = importlib.util.spec_from_file_location("chat_template_table", TOOL)
table_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(table_tool)


@pytest.fixture(scope="module")
def template_tokenizer():
    return table_tool.template_tokenizer()


def test_the_real_templates_are_the_recorded_files_of_at_least_ten_families():
    sources = table_tool.sources()
    families = {s["family"].split(" (")[0] for s in sources.values()}
    assert len(sources) >= 20 and len(families) >= 10
    claim = f"{len(sources)} real templates of {len(families)} model families"  # as the README and docs say it
    assert claim in (table_tool.ROOT / "README.md").read_text()
    assert f"The {len(sources)} templates below, of {len(families)} model families" in table_tool.DOC.read_text()
    for name, spec in sources.items():
        files = [(f"{name}.jinja", spec)] + ([(spec["training"]["file"], spec["training"])] if spec["training"] else [])
        for file, source in files:
            assert hashlib.sha256((table_tool.REAL / file).read_bytes()).hexdigest() == source["sha256"], file
            origin = source["source"]
            assert origin.endswith(file) if origin.startswith("trl==1.16.0") else origin.startswith("github.com/"), file


def test_every_template_masks_the_hard_cases_right_or_refuses_them(template_tokenizer):
    """Punctuation-first and empty-looking replies, typed markers, a system message, the course's prompter role:
    each template gives a mask that trains every reply's characters and no other message's, or a ConversationError
    (check_one raises on anything else)."""
    found = {
        name: {
            case: table_tool.check_one(name, messages, template_tokenizer, spec)[0]
            for case, messages in table_tool.HARD_CASES.items()
        }
        for name, spec in table_tool.sources().items()
    }
    assert found["llama3"] == dict.fromkeys(table_tool.HARD_CASES, "exact")
    assert found["phi3"] == dict.fromkeys(table_tool.HARD_CASES, "exact")  # its <|endoftext|> only after the end
    assert found["gemma"]["system message"] == "refused"  # "System role not supported", quoted
    assert set(found["qwen2_5"].values()) == {"differs"}  # TRL's training template trains the header's newline
    assert sum(o == "exact" for results in found.values() for o in results.values()) >= 60


@pytest.mark.slow
def test_the_documented_table_is_what_the_templates_give(template_tokenizer, course_conversations):
    found = table_tool.outcomes(template_tokenizer, table_tool.conversations(course_conversations))
    assert table_tool.table(found) == table_tool.documented_table()


@pytest.mark.slow
def test_every_template_masks_the_real_conversations_right_or_refuses_them(template_tokenizer, shared_conversations):
    named = {
        f"real {i}": messages
        for i, messages in enumerate(
            [[{"role": m["role"], "content": m["text"]} for m in c["messages"]] for c in shared_conversations]
        )
    }
    found = table_tool.outcomes(template_tokenizer, named)
    assert sum(o != "refused" for results in found.values() for o, _ in results.values()) > len(named) * 10
