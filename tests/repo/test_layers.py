"""The package's layers: who may import whom, where markers are named, and the public API that stays."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sft_utils
from sft_utils.chat_format import COURSE_FORMATS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sft_utils"
# A layer may import from its own rank or below: the memo's steps never depend on the loop or the course.
RANKS = {
    "chat_format": 0,
    "models": 1,
    "steps": 2,
    "data": 3,
    "scale": 3,
    "viz": 4,
    "train": 5,
    "inspect": 5,
    "course": 6,
}


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def layer(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if parts[0] in RANKS else None


def imported_layers(path: Path):
    """(line, layer) of every sft_utils module that ``path`` imports, relative or absolute."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = list(package[: len(package) - node.level + 1]) + (node.module or "").split(".")
            else:
                target = (node.module or "").split(".")
            names = [target + [alias.name] for alias in node.names] if target == ["sft_utils"] else [target]
            for name in names:
                if name[0] == "sft_utils" and len(name) > 1 and name[1] in RANKS:
                    yield node.lineno, name[1]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_their_own_rank_or_below(path):
    own = layer(path)
    if own is None:
        return
    wrong = [(line, other) for line, other in imported_layers(path) if RANKS[other] > RANKS[own]]
    assert not wrong, f"{path.relative_to(ROOT)} ({own}) imports a higher layer: {wrong}"


def _code_strings(tree):
    """String constants of a module, its docstrings left out (they may show a format to a reader)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


TOKENS = {token for chat_format in COURSE_FORMATS.values() for token in chat_format.special_tokens}


def marker_literals(source: str) -> list:
    """Code strings that are a token alone, or a token glued to text as code builds strings ("<|prompter|>" +
    text); docstrings and prose (which has spaces) may name a token to a reader."""
    return [
        node
        for node in _code_strings(ast.parse(source))
        if node.value in TOKENS or (" " not in node.value and any(t in node.value for t in TOKENS))
    ]


def test_only_the_chat_format_names_a_marker():
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for path in modules()
        if path.name != "chat_format.py"
        for node in marker_literals(path.read_text())
    ]
    assert not found, "marker strings outside sft_utils/chat_format.py:\n" + "\n".join(found)


def test_the_marker_scan_finds_a_literal_marker():
    source = '"""Docs: <|prompter|>."""\nA = "<|prompter|>"\nB = "x<|endoftext|>"\nHINT = "say <|prompter|> here"\n'
    assert [node.value for node in marker_literals(source)] == ["<|prompter|>", "x<|endoftext|>"]


def test_nothing_but_the_precision_policy_asks_torch_about_bf16():
    askers = [p.relative_to(PACKAGE) for p in modules() if "is_bf16_supported" in p.read_text()]
    assert [str(p) for p in askers] == ["train/precision.py"]


# Every name the package exported before its layers existed (one per line): users import them from sft_utils.
STABLE_API = (Path(__file__).with_name("stable_api.txt")).read_text().split()


def test_the_public_api_stays_importable():
    assert set(STABLE_API) | {"ChatFormat", "OPEN_ASSISTANT", "resolve_precision"} <= set(sft_utils.__all__)
    assert all(hasattr(sft_utils, name) for name in sft_utils.__all__)
    from sft_utils.exercises import check  # the notebooks' `sft_utils.exercises.check(...)`

    assert check is sft_utils.exercises.check


@pytest.mark.parametrize(
    "module", ["sft_utils.train", "sft_utils.assets", "sft_utils.course.notebooks", "sft_utils.inspect"]
)
def test_command_line_entry_points_answer_help(module):
    command = [sys.executable, "-m", module, "--help"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert f"python -m {module}" in result.stdout or "usage:" in result.stdout
