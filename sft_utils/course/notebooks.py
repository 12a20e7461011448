"""Run the course's notebooks headless, and keep committed notebooks clean.

    python -m sft_utils.course.notebooks             # execute all into build/notebooks/, print a time table
    python -m sft_utils.course.notebooks --inplace   # re-execute and clean the committed ones
    python -m sft_utils.course.notebooks --check     # only check the committed notebooks (no execution)

Clean means: no widget state (tqdm's bars are widgets), no widget views in outputs (a widget's static
``text/html`` beside its view is kept, so the viewer of notebook 03 still shows its chips), no error outputs,
no machine paths, no nbval comments in code (nbval's controls are cell tags: ``nbval-check-output``,
``nbval-ignore-output``, ``nbval-skip``), every code cell executed. nbval then replays them in CI.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# A home, temp or project path printed into an output ties the notebook to one machine.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:root|home|Users|tmp|work|private|var/folders|opt|usr)/[^\s'\"]*")
# nbval also reads "# NBVAL_CHECK_OUTPUT"-style comments; the course keeps its controls in cell tags instead.
NBVAL_TAGS = ("nbval-check-output", "nbval-ignore-output", "nbval-skip")
NBVAL_COMMENT = re.compile(r"^\s*#+\s*(?:NBVAL_\w+|PYTEST_VALIDATE_IGNORE_OUTPUT)\s*$", re.MULTILINE)


# Two digits, then an optional letter for a notebook placed between two others (06b comes after 06, before 07).
NOTEBOOK_NAME = re.compile(r"\d\d[a-z]?_\w+\.ipynb")


def course_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``01_….ipynb`` …, ``06b_….ipynb``), in order."""
    return sorted(p for p in Path(directory).glob("[0-9][0-9]*.ipynb") if NOTEBOOK_NAME.fullmatch(p.name))


def nbval_tags(cell) -> list[str]:
    """The cell's tags that start with ``nbval`` (nbval's controls: see :data:`NBVAL_TAGS`)."""
    return [t for t in cell.get("metadata", {}).get("tags", []) if str(t).lower().startswith("nbval")]


def clean(nb) -> None:
    """Strip widget state and widget-only outputs, and per-run metadata, in place."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data", {})
            if WIDGET_MIME in data:
                data.pop(WIDGET_MIME)  # the view needs the live kernel's widget state
                if set(data) <= {"text/plain"}:
                    continue  # a progress bar's view: its plain text alone says nothing
                # A widget with a static rendering beside its view (MaskViewer's text/html) keeps it.
            kept.append(output)
        cell.outputs = kept


def problems(nb) -> list[str]:
    """What keeps a notebook from being committed: unexecuted cells, errors, widget state, machine paths."""
    found = []
    if "widgets" in nb.metadata:
        found.append("widget state in metadata")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.source.strip() and cell.execution_count is None:
            found.append(f"cell {i}: not executed")
        for comment in NBVAL_COMMENT.findall(cell.source):
            found.append(f"cell {i}: nbval comment {comment.strip()!r} (use a cell tag)")
        for tag in nbval_tags(cell):
            if tag not in NBVAL_TAGS:  # nbval ignores a misspelt tag silently
                found.append(f"cell {i}: unknown nbval tag {tag!r}")
        for output in cell.outputs:
            if output.output_type == "error":
                found.append(f"cell {i}: error output {output.get('ename')}")
            if WIDGET_MIME in output.get("data", {}):
                found.append(f"cell {i}: widget view in output")
            text = output.get("text", "") + "".join(
                v for k, v in output.get("data", {}).items() if k.startswith("text/") and isinstance(v, str)
            )
            for match in MACHINE_PATH.findall(text):
                found.append(f"cell {i}: machine path {match!r}")
    return found


def notebook_client(nb, folder: Path, *, timeout_s: int):
    """nbclient's client for ``nb`` in a fresh python3 kernel working in ``folder``, each cell limited to
    ``timeout_s`` seconds (also used by benchmarks/gpu_check.py)."""
    from nbclient import NotebookClient

    # Log level ERROR: hides ipykernel's warning about its local TCP transport on every start.
    return NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name="python3",
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(folder)}},
    )


def execute(path: Path, out_path: Path, *, timeout_s: int = 600) -> float:
    """Execute a notebook in a fresh kernel (working directory: its folder), clean it, write it; seconds."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    notebook_client(nb, path.parent, timeout_s=timeout_s).execute()
    elapsed = time.perf_counter() - start
    clean(nb)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_path)
    return elapsed


def main(argv=None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(prog="python -m sft_utils.course.notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: all numbered notebooks")
    parser.add_argument("--inplace", action="store_true", help="overwrite the notebooks with executed, clean ones")
    parser.add_argument(
        "--out", type=Path, default=Path("build/notebooks"), help="output folder (default build/notebooks)"
    )
    parser.add_argument("--check", action="store_true", help="check the notebooks as they are; execute nothing")
    args = parser.parse_args(argv)
    paths = args.notebooks or course_notebooks()
    failures = 0
    if not args.check:
        print(f"{'notebook':<28} {'seconds':>8}")
        total = 0.0
        for path in paths:
            out_path = path if args.inplace else args.out / path.name
            seconds = execute(path, out_path)
            total += seconds
            print(f"{path.name:<28} {seconds:>8.1f}", flush=True)
        print(f"{'total':<28} {total:>8.1f}")
        paths = [p if args.inplace else args.out / p.name for p in paths]
    for path in paths:
        for problem in problems(nbformat.read(path, as_version=4)):
            failures += 1
            print(f"{path.name}: {problem}")
    if not failures:
        print(f"{len(paths)} notebooks clean")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
