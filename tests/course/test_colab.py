"""Every notebook opens with an "Open in Colab" badge for its own path, a set-up cell that installs sft_utils
on Colab only (from sft_utils.REPO_URL, keeping Colab's torch and numpy), and a version cell nbval ignores."""

import importlib.metadata
import re
import subprocess
import sys
import types

import nbformat
import pytest

import sft_utils
from sft_utils.course.colab import COLAB_BADGE, COLAB_CLONE_DIR, badge_markdown, colab_url
from sft_utils.course.notebooks import NOTEBOOK_DIR, course_notebooks

ROOT = NOTEBOOK_DIR.parent
NAMES = [p.stem for p in course_notebooks()]
BADGE = re.compile(r"\[!\[Open In Colab\]\((?P<image>[^)]+)\)\]\((?P<url>[^)]+)\)")


def cells(name):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4).cells


def setup_cell(name):
    found = [c for c in cells(name) if c.cell_type == "code" and '"google.colab" in sys.modules' in c.source]
    assert len(found) == 1, f"{name}: expected one Colab set-up cell"
    return found[0]


def test_colab_url_of_a_notebook():
    assert colab_url("notebooks/01_format.ipynb") == (
        "https://colab.research.google.com/github/sft-course/sft-course/blob/main/notebooks/01_format.ipynb"
    )
    assert sft_utils.REPO_URL == "https://github.com/sft-course/sft-course"
    with pytest.raises(ValueError, match="notebook path"):
        colab_url("/abs/01_format.ipynb")


@pytest.mark.parametrize("name", NAMES)
def test_badge_points_at_this_notebook(name):
    badges = [m for c in cells(name) if c.cell_type == "markdown" for m in BADGE.finditer(c.source)]
    assert len(badges) == 1, f"{name}: expected one Colab badge"
    assert badges[0]["image"] == COLAB_BADGE
    assert badges[0]["url"] == colab_url(f"notebooks/{name}.ipynb")
    first = cells(name)[0]
    assert first.cell_type == "markdown" and first.source.startswith(badge_markdown(f"notebooks/{name}.ipynb"))


@pytest.mark.parametrize("name", NAMES)
def test_setup_cell_uses_repo_url_and_only_prints_outside_colab(name):
    cell = setup_cell(name)
    assert cells(name).index(cell) == 1, "the set-up cell comes right after the badge"
    assert re.findall(r'REPO_URL = "([^"]+)"', cell.source) == [sft_utils.REPO_URL]
    assert "https://" not in cell.source.replace(f'"{sft_utils.REPO_URL}"', "")  # no second address
    outputs = [o.get("text", "") for o in cell.outputs]
    assert outputs == ["Not on Colab: nothing to install.\n"]


@pytest.mark.parametrize("name", NAMES)
def test_version_cell_output_is_ignored_by_nbval(name):
    cell = cells(name)[2]
    assert cell.metadata.get("tags") == ["nbval-ignore-output"]
    assert "NBVAL" not in cell.source
    for package in ("python", "torch", "transformers", "sft_utils"):
        assert package in cell.source


@pytest.mark.parametrize("name", NAMES)
def test_setup_cell_is_short_and_explained_in_one_line(name):
    source = setup_cell(name).source
    first, *rest = source.splitlines()
    assert first.startswith("#@title Set-up:") and '{ display-mode: "form" }' in first
    assert len(source.splitlines()) <= 32
    # No paragraph of comments: the title line is the explanation; short comments on code lines only.
    assert not any(line.lstrip().startswith("#") for line in rest)


def test_every_notebook_has_the_same_setup_cell():
    assert len({setup_cell(name).source for name in NAMES}) == 1


class FakePip:
    """Stands in for subprocess.run on a fake Colab: records commands; pip 'upgrades' what it is told to."""

    def __init__(self, versions, upgrades, pip_fails=False):
        self.versions, self.upgrades, self.commands, self.pip_fails = versions, upgrades, [], pip_fails

    def run(self, command, check=False, capture_output=False):
        self.commands.append(command)
        if "pip" not in command:  # git: fails loudly by itself
            assert check
            return subprocess.CompletedProcess(command, 0)
        assert capture_output  # setuptools' build notes stay out of the notebook unless pip fails
        if self.pip_fails:
            return subprocess.CompletedProcess(command, 1, b"", b"noise\nERROR: No matching distribution found\n")
        self.versions.update(self.upgrades, **{"sft-course": "0.1.0"})
        return subprocess.CompletedProcess(command, 0, b"", b"BuildBackendWarning: Editable installation.\n")

    def version(self, name):
        if name not in self.versions:
            raise importlib.metadata.PackageNotFoundError(name)
        return self.versions[name]


def run_setup_on_fake_colab(monkeypatch, upgrades, pip_fails=False):
    versions = {"torch": "2.8.0+cu126", "numpy": "2.0.2", "transformers": "4.57.1", "tqdm": "4.67.1"}
    fake = FakePip(versions, upgrades, pip_fails)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", fake.run)
    monkeypatch.setattr(importlib.metadata, "version", fake.version)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(setup_cell(NAMES[0]).source, {})  # noqa: S102 -- the committed cell itself, on a fake Colab
    return fake.commands


def test_on_colab_it_clones_and_installs_keeping_torch_and_numpy(monkeypatch, capsys):
    monkeypatch.delenv("SFT_COURSE_REPO", raising=False)
    monkeypatch.delenv("SFT_COURSE_DIR", raising=False)
    commands = run_setup_on_fake_colab(monkeypatch, upgrades={})
    assert commands[0] == ["git", "clone", "--quiet", "--depth", "1", sft_utils.REPO_URL, COLAB_CLONE_DIR]
    pip = commands[1]
    assert pip[:4] == [sys.executable, "-m", "pip", "install"]
    assert pip[-4:] == ["-e", COLAB_CLONE_DIR, "torch==2.8.0+cu126", "numpy==2.0.2"]
    assert not any(flag in pip for flag in ("-U", "--upgrade", "--force-reinstall"))
    assert sys.path[0] == COLAB_CLONE_DIR
    assert "no restart needed" in capsys.readouterr().out


def test_on_colab_pip_s_output_shows_only_when_the_install_fails(monkeypatch, capsys):
    monkeypatch.setenv("SFT_COURSE_DIR", "/nowhere/sft-course")
    run_setup_on_fake_colab(monkeypatch, upgrades={})
    captured = capsys.readouterr()
    assert "Editable installation" not in captured.out + captured.err
    with pytest.raises(RuntimeError, match="pip install failed:\nnoise\nERROR: No matching distribution found"):
        run_setup_on_fake_colab(monkeypatch, upgrades={}, pip_fails=True)


def test_the_clone_source_and_folder_can_be_overridden(monkeypatch, tmp_path):
    """SFT_COURSE_REPO (a fork or a local clone, as the Colab rehearsal uses) and SFT_COURSE_DIR."""
    monkeypatch.setenv("SFT_COURSE_REPO", "file:///somewhere/sft-course")
    monkeypatch.setenv("SFT_COURSE_DIR", str(tmp_path / "clone"))
    commands = run_setup_on_fake_colab(monkeypatch, upgrades={})
    assert commands[0] == [
        "git",
        "clone",
        "--quiet",
        "--depth",
        "1",
        "file:///somewhere/sft-course",
        str(tmp_path / "clone"),
    ]
    assert commands[1][-4:-2] == ["-e", str(tmp_path / "clone")]
    assert sys.path[0] == str(tmp_path / "clone")


def test_on_colab_it_asks_for_a_restart_when_an_imported_package_changed(monkeypatch, capsys):
    # tqdm is imported in this process (pytest's plugins or sft_utils), as it would be in a Colab runtime.
    import tqdm  # noqa: F401

    run_setup_on_fake_colab(monkeypatch, upgrades={"tqdm": "4.70.0"})
    out = capsys.readouterr().out
    assert "pip changed tqdm" in out and "RESTART NEEDED" in out


def fake_colab_drive(monkeypatch):
    """A stand-in ``google.colab`` whose ``drive.mount`` records where it was asked to mount; returns that list."""
    from types import ModuleType

    mounted = []
    colab, drive = ModuleType("google.colab"), ModuleType("google.colab.drive")
    drive.mount = mounted.append
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google", sys.modules.get("google") or ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    return mounted


def test_a_run_folder_is_local_by_default_even_on_colab(monkeypatch):
    from pathlib import Path

    from sft_utils.course.colab import run_folder

    assert run_folder("resume-demo") == Path("checkpoints/resume-demo")
    assert run_folder("resume-demo", use_drive=True) == Path("checkpoints/resume-demo")  # not on Colab
    mounted = fake_colab_drive(monkeypatch)
    assert run_folder("resume-demo") == Path("checkpoints/resume-demo")
    assert mounted == []  # the default never asks for Drive's permission: "Run all" runs through
    for bad in ("", "a/b", "..", None):
        with pytest.raises(ValueError, match="one folder name"):
            run_folder(bad)
    with pytest.raises(TypeError, match="use_drive must be True or False"):
        run_folder("resume-demo", use_drive="yes")


def test_a_run_folder_on_drive_when_asked_on_colab(monkeypatch, tmp_path):
    from sft_utils.course.colab import run_folder

    mounted = fake_colab_drive(monkeypatch)
    folder = run_folder("resume-demo", use_drive=True, drive_root=str(tmp_path))
    assert folder == tmp_path / "MyDrive/sft-course/resume-demo"
    assert mounted == [str(tmp_path)]


def test_notebook_08_leaves_drive_off_and_runs_its_cell_on_fake_colab_without_mounting(monkeypatch):
    from sft_utils.course import colab

    cell = next(c for c in cells("08_finetune_pythia") if "run_folder(" in c.source)
    assert re.search(r"^USE_GOOGLE_DRIVE = False\b", cell.source, re.MULTILINE), "Drive is opt-in, off by default"
    assert "use_drive=USE_GOOGLE_DRIVE" in cell.source
    mounted = fake_colab_drive(monkeypatch)
    assignment = next(line for line in cell.source.splitlines() if line.startswith("RUN_DIR = "))
    scope = {"run_folder": colab.run_folder, "USE_GOOGLE_DRIVE": False}
    exec(assignment, scope)  # noqa: S102 -- the committed line itself, on a fake Colab
    assert str(scope["RUN_DIR"]) == "checkpoints/resume-demo" and mounted == []


@pytest.mark.parametrize("name", NAMES)
def test_no_notebook_waits_for_input_unless_asked(name):
    for cell in cells(name):
        if cell.cell_type != "code":
            continue
        assert "drive.mount(" not in cell.source, f"{name}: mounts Drive, which waits for permission"
        assert not re.search(r"(?<![\w.])input\(", cell.source), f"{name}: input() waits for the learner"
        assert "getpass" not in cell.source, f"{name}: getpass waits for the learner"
