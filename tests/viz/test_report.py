"""The mask report's page, drawn from a report built by hand: its summary, its chips and their colours, and that
it fetches nothing."""

import re

from sft_utils.viz import palette
from sft_utils.viz.report import FINDING_KINDS, ConversationMasks, Finding, MaskReport, TrlMasks, report_html


def report(**changes) -> MaskReport:
    """Two masked conversations (5 tokens cut to 4 with 1 trained and 1 padded; 3 tokens, 2 trained, TRL trains
    the first too) and one refused."""
    short = ConversationMasks(
        name="short",
        where="d.jsonl:1",
        tokens=["A", "␣b", "↵", "c", "d"],
        input_ids=[10, 11, 12, 13, 14],
        label_mask=[False, False, True, True, True],
        message_indices=[0, 0, 1, 1, 1],
        kept=4,
        findings=[Finding("reply-cut", "cut <here>")],
    )
    trl = TrlMasks(tokens=["x", "y", "z"], label_mask=[True, True, True], same_ids=True)
    other = ConversationMasks(
        name="other",
        where="d.jsonl:2",
        tokens=["x", "y", "z"],
        input_ids=[1, 2, 3],
        label_mask=[False, True, True],
        message_indices=[0, 1, 1],
        kept=3,
        padding=1,
        trl=trl,
        findings=[Finding("trl-differs", "TRL trains position 0")],
    )
    refused = ConversationMasks(
        name="bad", where="d.jsonl:3", refused="no reply", findings=[Finding("refused", "no reply")]
    )
    fields = {
        "data": "d.jsonl",
        "masked_by": "chat format chatml",
        "tokenizer": "Pythia's",
        "max_length": 4,
        "pad_token": "<|padding|>",
        "conversations": [short, other, refused],
        "trl": "compared with TRL",
    }
    return MaskReport(**(fields | changes))


def test_the_summary_counts_exactly():
    assert report().summary() == {
        "conversations": "3",
        "masked": "2",
        "refused": "1",
        "tokens": "7 (after max_length=4)",
        "trained tokens": "4 (57.1%)",
        "truncated": "1",
        "dropped (no trained target left)": "0",
        "padding to max_length": "1 (12.5% of the batch)",
        "TRL": "1 compared, 1 differ",
    }
    counts = report().kind_counts()
    assert list(counts) == list(FINDING_KINDS)
    assert counts["refused"] == counts["reply-cut"] == counts["trl-differs"] == 1 and sum(counts.values()) == 3


def test_the_page_draws_every_token_in_the_course_colours():
    page = report_html(report())
    chips = re.findall(r'<span class="chip (mask-\d)[^"]*"[^>]*style="background:([^;"]+)', page)
    trained = [c for m, c in chips if m == "mask-1"]
    untrained = [c for m, c in chips if m == "mask-0"]
    assert len(trained) == 3 + 2 and len(untrained) == 2 + 1  # short, other
    assert set(trained) == {palette.TRAINED} and set(untrained) == {palette.UNTRAINED}
    legend = re.findall(r'<span class="chip legend ([\w-]+)"[^>]*style="([^"]+)">([^<]+)<', page)
    assert [(kind, text) for kind, _, text in legend] == [
        ("mask-1", "trained"),
        ("mask-0", "not trained"),
        ("pad", "padding"),
        ("removed", "cut by max_length"),
        ("trl-diff", "TRL trains otherwise"),
    ]
    assert legend[0][1] == f"background:{palette.TRAINED}" and legend[2][1] == palette.PAD_STYLE
    assert page.count('class="chip mask-1 msg-1 removed"') == 1  # short's last token, past max_length=4
    assert '<span class="chip pad" title="1 padding positions up to max_length=4"' in page
    assert "padding × 1" in page and palette.PAD_STYLE in page
    assert page.count("<br>") == 1 + 3  # after short's "↵"; between the header's four lines
    assert 'class="chip mask-0 msg-0 trl-diff"' in page  # other's first token: TRL trains it
    assert "cut &lt;here&gt;" in page and "<here>" not in page  # findings are escaped
    assert '<section class="conversation has-findings" id="c2" data-kinds="refused">' in page
    assert page.count('class="tokens"') == 2  # no chips for the refused conversation


def test_the_page_is_self_contained():
    page = report_html(report())
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert not re.search(r"(src|href)=|@import|url\(|https?:", page)
    assert page.count("<script>") == 1 and "fetch" not in page


def test_without_trl_there_is_no_trl_switch():
    plain = report(trl="not asked for")
    plain.conversations[1].trl = None
    page = report_html(plain)
    assert 'id="trl-toggle"' not in page and "TRL trains otherwise" not in page
    assert 'id="findings-toggle"' in page
    assert plain.summary()["TRL"] == "not compared"


def test_a_trl_row_of_its_own_where_trl_tokenizes_otherwise():
    other = report()
    other.conversations[1].trl = TrlMasks(tokens=["xy", "z"], label_mask=[False, True], same_ids=False)
    page = report_html(other)
    assert "TRL tokenizes this conversation into 2 tokens and trains 1:" in page
    assert page.count('class="chip trl mask-') == 2
    assert not re.search(r'class="chip mask-\d msg-\d[^"]*trl-diff', page)  # no token of ours is outlined
