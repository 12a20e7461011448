import json

import pytest

from sft_utils import ConversationError, load_conversations


def write(tmp_path, lines):
    path = tmp_path / "convs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_both_forms_and_names_lines(tmp_path):
    path = write(
        tmp_path,
        [
            json.dumps(
                {"id": "a", "messages": [{"role": "prompter", "text": "q"}, {"role": "assistant", "text": "r"}]}
            ),
            "",
            json.dumps({"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "r2"}]}),
        ],
    )
    convs = load_conversations(path)
    assert [c["id"] for c in convs] == ["a", "convs.jsonl:3"]
    assert convs[1]["messages"] == [{"role": "prompter", "text": "q2"}, {"role": "assistant", "text": "r2"}]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "convs.jsonl:2: not valid JSON"),
        ("[1, 2]", "convs.jsonl:2: expected a JSON object with a 'messages' list"),
        (
            '{"id": "x", "messages": [{"role": "prompter", "text": ""}]}',
            "conversation 'x (convs.jsonl:2)', message 0: text is empty",
        ),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    good = json.dumps({"messages": [{"role": "prompter", "text": "q"}]})
    with pytest.raises(ConversationError) as err:
        load_conversations(write(tmp_path, [good, line]))
    assert message in str(err.value)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "convs.jsonl"
    good = json.dumps({"messages": [{"role": "prompter", "text": "q"}]}).encode()
    path.write_bytes(
        good + b"\n" + '{"messages": [{"role": "prompter", "text": "caf\u00e9"}]}'.encode("latin-1") + b"\n"
    )
    with pytest.raises(ConversationError, match="convs.jsonl:2: not UTF-8"):
        load_conversations(path)


def test_a_byte_order_mark_and_a_null_id_are_fine(tmp_path):
    path = tmp_path / "convs.jsonl"
    line = json.dumps({"id": None, "messages": [{"role": "prompter", "text": "q"}]})
    path.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n")
    assert [c["id"] for c in load_conversations(path)] == ["convs.jsonl:1"]


def test_course_data_ids_are_unique_and_cover_the_promised_cases(course_conversations):
    ids = [c["id"] for c in course_conversations]
    assert len(ids) == len(set(ids))
    tags = {t for c in course_conversations for t in c["tags"]}
    assert {"memo", "single-turn", "multi-turn", "system", "code", "list", "non-english"} <= tags
    assert any(m["role"] == "system" for c in course_conversations for m in c["messages"])
