"""environment.yml (conda) and pyproject.toml (pip) must list the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge's name -> PyPI's name


def split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    name = name.lower().replace("_", "-")
    return CONDA_TO_PIP.get(name, name), spec.replace(" ", "")


def pyproject_list() -> list[tuple[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        requirements += group
    return [split(r) for r in requirements]


def conda_list() -> list[tuple[str, str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    entries = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python=", "python>", "pip"))]
    return [split(d) for d in entries]


def pyproject_requirements() -> dict:
    return dict(pyproject_list())


def conda_requirements() -> dict:
    return dict(conda_list())


def test_same_packages_and_versions():
    assert conda_requirements() == pyproject_requirements()


def test_each_package_is_listed_once():
    """A merge once left datasets>=2.19 and datasets>=3.0 side by side; dicts above would hide the first."""
    for listed in (pyproject_list(), conda_list()):
        names = [name for name, _ in listed]
        assert sorted({n for n in names if names.count(n) > 1}) == []


def test_conda_env_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["--editable ."]


def test_python_version_is_allowed_by_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.lstrip(">=").split(".")))


def test_floors_file_pins_every_dependency_at_its_floor():
    """constraints-floors.txt (`make test-floors`: install these, run a toy training run) must test the floors
    that pyproject.toml claims: each dependency, at exactly its >= version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for name, spec in (split(r) for r in project["dependencies"]):
        floors[name] = Version(re.search(r">=([\w.]+)", spec).group(1))
    lines = (ROOT / "constraints-floors.txt").read_text().splitlines()
    pinned = {name: Version(v) for name, v in (line.split("==") for line in lines if line and line[0] != "#")}
    assert pinned == floors  # Version("1.26") == Version("1.26.0")
