"""`python -m sft_utils.check_env`: OK/FAIL per item, and a non-zero exit on a required FAIL."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from sft_utils.course import check_env
from sft_utils.course.check_env import FAIL, OK, WARN

ROOT = Path(__file__).resolve().parents[2]


def test_this_environment_passes_from_the_command_line():
    # The test environment is the course's own: every dependency is installed, the tokenizer built.
    result = subprocess.run(
        [sys.executable, "-m", "sft_utils.check_env"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    torch_version = importlib.metadata.version("torch")
    torch_range = next(Requirement(r).specifier for r, _ in check_env.requirements() if Requirement(r).name == "torch")
    assert f"OK    torch                {torch_version} ({torch_range})" in lines
    assert any(line.startswith("OK    python ") for line in lines)
    assert any(line.startswith("INFO  torch device ") for line in lines)
    # conftest sets HF_HUB_OFFLINE=1, inherited here: no connection is attempted.
    assert lines[-2].startswith("INFO  hub                  not tried")
    assert lines[-1].startswith("OK: ready for the course")


def test_every_dependency_of_pyproject_is_checked():
    names = {item.name.split(" ")[0] for item in check_env.run_checks()}
    assert {"torch", "transformers", "tokenizers", "numpy", "ipywidgets", "jupyterlab", "nbval"} <= names


def test_missing_or_too_old_required_package_fails(monkeypatch, capsys):
    monkeypatch.setattr(
        check_env,
        "requirements",
        lambda: [("torch>=99", None), ("surely-not-installed-pkg>=1", None), ("numpy>=1", None)],
    )
    assert check_env.main([]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  torch                {importlib.metadata.version('torch')}, but the course needs >=99" in out
    assert "FAIL  surely-not-installed-pkg not installed (needs >=1)" in out
    assert out.splitlines()[-1].startswith("FAIL: 2 required item(s): torch, surely-not-installed-pkg.")


def test_missing_optional_package_only_warns(monkeypatch, capsys):
    monkeypatch.setattr(check_env, "requirements", lambda: [("numpy>=1", None), ("surely-not-installed-pkg", "dev")])
    assert check_env.main([]) == 0
    out = capsys.readouterr().out
    assert "WARN  surely-not-installed-pkg [dev] not installed (needs any version)" in out
    assert "OK: ready for the course (1 optional item(s) to look at)" in out


@pytest.mark.parametrize(("hub", "status", "code"), [(False, FAIL, 1), (True, WARN, 0)])
def test_offline_tokenizer_is_required_only_without_the_hub(tmp_path, monkeypatch, capsys, hub, status, code):
    monkeypatch.setenv("SFT_COURSE_CACHE", str(tmp_path))  # an empty cache: no tokenizer built
    monkeypatch.setattr(check_env, "requirements", list)
    monkeypatch.setattr(check_env, "check_hub", lambda: (check_env.Item("hub", "INFO", "-", False), hub))
    item = check_env.check_offline_tokenizer(hub)
    assert item.status == status
    assert ("python -m sft_utils.assets" in item.detail) == (not hub)
    assert check_env.main([]) == code


def test_tokenizer_present_is_ok():
    from sft_utils.models.assets import offline_tokenizer_dir

    expected = OK if (offline_tokenizer_dir() / "tokenizer.json").is_file() else FAIL
    assert check_env.check_offline_tokenizer(False).status == expected


def test_missing_course_data_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(check_env, "course_data_path", lambda: tmp_path / "conversations.jsonl")
    assert check_env.check_data().status == FAIL


def test_requirements_come_from_pyproject():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pairs = check_env.requirements()
    assert [r for r, extra in pairs if extra is None] == project["dependencies"]
    assert [r for r, extra in pairs if extra == "dev"] == project["optional-dependencies"]["dev"]
