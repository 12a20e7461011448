"""The package and tests follow one format (ruff, settings in pyproject.toml), so diffs stay about content."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ruff(*args):
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, check=False)


CODE_DIRS = ("sft_utils", "tests", "benchmarks", "notebooks/solutions", "tools")


def test_ruff_check_passes():
    result = ruff("check", *CODE_DIRS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied():
    result = ruff("format", "--check", *CODE_DIRS)
    assert result.returncode == 0, f"run `ruff format {' '.join(CODE_DIRS)}`:\n" + result.stdout + result.stderr
