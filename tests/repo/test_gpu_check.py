"""benchmarks/gpu_check.py --cpu-rehearsal: the GPU check's own code on a CPU at toy sizes, and its report's tables."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sft_utils.course.finetune import CELL_IDS

ROOT = Path(__file__).resolve().parents[2]


def table(report: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first markdown table after ``heading``."""
    section = report.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # past header and rule


@pytest.mark.slow
def test_cpu_rehearsal_writes_a_report_with_both_tables(tmp_path):
    out = tmp_path / "report.md"
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--cpu-rehearsal", "--notebook-timeout", "1800", "--out", str(out)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report.startswith("# GPU check (CPU rehearsal")
    assert "**Random weights**" in report and "trl 1.16" in report

    assert "The notebook failed" not in report
    cells = table(report, "## Notebook 08, cell by cell")
    estimated = {row[0].split("`")[1]: row for row in cells}
    assert set(CELL_IDS.values()) <= set(estimated), "every estimated cell of the notebook ran and was reported"
    for row in estimated.values():
        assert float(row[1]) > 0 and row[2].startswith("— (CPU") and row[3] == "yes"

    rows = table(report, "## Training throughput")
    routes = {(int(r[1]), r[2], r[3]) for r in rows}
    for length in (32, 64):
        assert (length, "fp32", "ours") in routes and (length, "fp32", "TRL, same settings") in routes
        assert any(key[0] == length and key[2] == "ours" and "scaler" in key[1] for key in routes)
        assert (length, "fp32, checkpointing", "TRL defaults") in routes  # TRL's own default, on a CPU without bf16
    for row in rows:
        tokens_per_s, mfu = row[4], row[5]
        assert re.fullmatch(r"[\d,]+", tokens_per_s) and float(tokens_per_s.replace(",", "")) > 0, row
        assert re.fullmatch(r"\d+\.\d%", mfu), row
        if row[3] == "ours":
            assert float(row[7]) > 0  # the estimate beside our step
