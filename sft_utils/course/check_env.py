"""Is this environment ready for the course? One line per item: OK, WARN, FAIL or INFO.

    python -m sft_utils.check_env

Introduced in the README (set-up and troubleshooting). Checks, in order: the Python version; every
dependency of ``sft-course`` at the version its metadata asks for (the ``lab`` and ``dev`` extras are
optional: WARN, not FAIL); the torch device; the course's data file; the offline tokenizer; whether the
Hugging Face hub is reachable. The exit status is 1 when a required item FAILs, else 0.

The requirements are those of the checkout's ``pyproject.toml`` (else of the installed package's metadata):
one list, the one pip installs from.
"""

from __future__ import annotations

import platform
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..data.conversations import PROJECT_ROOT, course_data_path
from ..models.hub import hub_is_reachable, offline_mode_set

OK, WARN, FAIL, INFO = "OK", "WARN", "FAIL", "INFO"
OPTIONAL_EXTRAS = ("lab", "dev")


@dataclass(frozen=True)
class Item:
    """One checked item: ``status`` is OK, WARN, FAIL or INFO; only a FAIL of a required item fails the check."""

    name: str
    status: str
    detail: str
    required: bool = True

    def line(self) -> str:
        return f"{self.status:<5} {self.name:<20} {self.detail}"


def requirements() -> list[tuple[str, str | None]]:
    """``(requirement string, extra or None)`` for each dependency of sft-course: from the checkout's
    ``pyproject.toml`` when there is one (an editable install's metadata can lag behind it), else from
    the installed package's metadata."""
    pyproject = PROJECT_ROOT / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        pairs = [(r, None) for r in project["dependencies"]]
        return pairs + [(r, extra) for extra, rs in project["optional-dependencies"].items() for r in rs]
    pairs = []
    for entry in metadata.requires("sft-course") or []:
        requirement, _, marker = entry.partition(";")
        extra = marker.split("extra ==")[-1].strip().strip("'\"") if "extra ==" in marker else None
        pairs.append((requirement.strip(), extra))
    return pairs


def check_requirement(requirement: str, extra: str | None = None) -> Item:
    """Installed, and at a version the requirement allows? Uses ``packaging`` (a dependency of transformers)."""
    from packaging.requirements import Requirement

    parsed = Requirement(requirement)
    required = extra not in OPTIONAL_EXTRAS
    name = parsed.name + (f" [{extra}]" if extra else "")
    missing = FAIL if required else WARN
    try:
        version = metadata.version(parsed.name)
    except metadata.PackageNotFoundError:
        return Item(name, missing, f"not installed (needs {parsed.specifier or 'any version'})", required)
    if parsed.specifier and not parsed.specifier.contains(version, prereleases=True):
        return Item(name, missing, f"{version}, but the course needs {parsed.specifier}", required)
    return Item(name, OK, f"{version} ({parsed.specifier or 'any version'})", required)


def check_python() -> Item:
    minimum = (3, 11)
    version = platform.python_version()
    status = OK if sys.version_info[:2] >= minimum else FAIL
    return Item("python", status, f"{version} (>={minimum[0]}.{minimum[1]})")


def check_device() -> Item:
    """INFO: the device the notebooks will use (notebook 07 fine-tunes for real only on a GPU)."""
    try:
        import torch
    except ImportError:
        return Item("torch device", INFO, "unknown: torch is not installed", required=False)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Item("torch device", INFO, f"cuda: {props.name}, {props.total_memory / 1e9:.0f} GB", required=False)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return Item("torch device", INFO, "mps (Apple GPU); notebook 07 uses the CPU smoke mode", required=False)
    return Item("torch device", INFO, "cpu: notebooks 01-06 are fine; 07 runs its smoke mode", required=False)


def check_data() -> Item:
    path = course_data_path()
    if path.is_file():
        return Item("course data", OK, "data/conversations.jsonl")
    return Item("course data", FAIL, "data/conversations.jsonl missing: use a clone of the repository (README)")


def check_hub() -> tuple[Item, bool]:
    if offline_mode_set():
        return Item("hub", INFO, "not tried (offline mode set: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)", False), False
    reachable = hub_is_reachable()
    detail = "reachable: real Pythia weights" if reachable else "unreachable: offline tokenizer, random weights"
    return Item("hub", INFO, detail, required=False), reachable


def check_offline_tokenizer(hub_reachable: bool) -> Item:
    """Required only when the hub cannot be reached: then it is the only source of Pythia's tokenizer."""
    from ..models.assets import offline_tokenizer_dir

    folder = offline_tokenizer_dir()
    shown = _home_as_tilde(folder)
    if (folder / "tokenizer.json").is_file():
        return Item("offline tokenizer", OK, shown)
    if hub_reachable:
        return Item("offline tokenizer", WARN, f"absent ({shown}); the hub serves it now", required=False)
    return Item("offline tokenizer", FAIL, f"absent ({shown}): run `python -m sft_utils.assets` once online")


def _home_as_tilde(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if home != "/" and text.startswith(home) else text


def run_checks() -> list[Item]:
    items = [check_python()]
    items += [check_requirement(r, extra) for r, extra in requirements()]
    items.append(check_device())
    items.append(check_data())
    hub, reachable = check_hub()
    items += [check_offline_tokenizer(reachable), hub]
    return items


def main(argv=None) -> int:
    import argparse

    argparse.ArgumentParser(prog="python -m sft_utils.check_env", description=__doc__.split("\n")[0]).parse_args(argv)
    items = run_checks()
    for item in items:
        print(item.line())
    failed = [i.name for i in items if i.required and i.status == FAIL]
    if failed:
        print(f"FAIL: {len(failed)} required item(s): {', '.join(failed)}. See the README's troubleshooting.")
        return 1
    warned = sum(i.status == WARN for i in items)
    print("OK: ready for the course" + (f" ({warned} optional item(s) to look at)" if warned else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
