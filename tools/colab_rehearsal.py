"""Rehearse the course on a stand-in Colab: every notebook, run top to bottom as "Run all" runs it there.

    make colab-rehearsal                      # = python tools/colab_rehearsal.py
    python tools/colab_rehearsal.py 01_format 08_finetune_pythia --reuse-venv

1. A fresh virtual environment (``build/colab-rehearsal/venv``) stands in for a Colab image: torch
   (``--torch``, default the pinned ``torch==2.13.0``: any other build on PyPI brings GBs of CUDA libraries),
   the newest transformers 4.x (``--transformers``), the packages Colab ships that the set-up cell watches,
   and a Jupyter kernel. sft-course is NOT installed: the notebooks' own set-up cell does that.
2. A stand-in ``google.colab`` package is imported when each kernel starts, as Colab's kernel imports the
   real one: ``drive.mount`` links the mount point to a temporary folder (the link is removed at the end),
   ``output``'s widget-manager switches do nothing.
3. The committed HEAD of ``$SFT_COURSE_REPO`` (default: this repository, ``file://``) is cloned once; its
   notebooks are run, and each kernel gets ``SFT_COURSE_REPO`` so that its set-up cell clones the same
   source. Each notebook opens in a fresh runtime (working folder ``content/``, like Colab's ``/content``;
   no clone and no sft-course yet): its set-up cell clones and pip-installs sft-course. When that cell
   prints ``RESTART NEEDED``, the kernel is restarted and the notebook run again from the top, as a learner
   would. No hub is reachable here: the kernels run with ``HF_HUB_OFFLINE=1`` and use the offline tokenizer
   (``python -m sft_utils.assets``; ``make setup`` builds it).

Executed copies go to ``build/colab-rehearsal/notebooks/``, the kernels' stderr to ``kernels.log`` beside
them. The last line is ``colab rehearsal: N/N notebooks ran (transformers X, torch Y)``; the exit status is 1
unless all ran.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINNED_TORCH = "torch==2.13.0"  # the Makefile's TORCH_SPEC
# What a Colab image already holds that the set-up cell watches or the kernel needs (sft-course's other
# dependencies are left to its install, as on Colab).
COLAB_IMAGE = ["numpy", "matplotlib", "tqdm", "ipywidgets", "ipykernel", "nbclient", "nbformat"]
SETUP_MARK = '"google.colab" in sys.modules'
CELL_TIMEOUT_S = 3600  # a cell's limit: the toy training runs of 04 and 07 take minutes, far more on a loaded machine

STAND_IN = {
    "__init__.py": '''"""A stand-in for Colab's google.colab (tools/colab_rehearsal.py): what the course's notebooks touch."""
from . import drive, output  # noqa: F401
''',
    "drive.py": '''"""drive.mount links the mount point to the rehearsal's temporary folder (Colab mounts Google Drive)."""
import os
from pathlib import Path


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    target = Path(os.environ["COLAB_REHEARSAL_DRIVE"])
    (target / "MyDrive").mkdir(parents=True, exist_ok=True)
    point = Path(mountpoint)
    if point.is_symlink() and point.resolve() == target.resolve():
        print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
              f'drive.mount("{mountpoint}", force_remount=True).')
        return
    if point.exists() and (not point.is_dir() or any(point.iterdir())):
        raise ValueError("Mountpoint must not already contain files")
    if point.exists():
        point.rmdir()
    point.parent.mkdir(parents=True, exist_ok=True)
    point.symlink_to(target, target_is_directory=True)
    with open(os.environ["COLAB_REHEARSAL_LINKS"], "a") as links:
        links.write(f"{point}\\n")
    print(f"Mounted at {mountpoint}")


def flush_and_unmount(timeout_ms=86400000):
    pass
''',
    "output.py": '''"""Colab's output helpers that notebooks call for widgets: nothing to switch in a Jupyter kernel."""


def enable_custom_widget_manager():
    pass


def disable_custom_widget_manager():
    pass


def clear(wait=False, output_tags=()):
    from IPython.display import clear_output

    clear_output(wait=wait)
''',
}


def sh(*command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


def make_venv(venv: Path, torch_spec: str, torch_index: str, transformers_spec: str) -> None:
    """The stand-in Colab image: torch first and alone (otherwise a dependency would pull a CUDA build)."""
    shutil.rmtree(venv, ignore_errors=True)
    sh(sys.executable, "-m", "venv", venv)
    pip = [venv / "bin/python", "-m", "pip", "install", "--quiet"]
    sh(*pip, "--upgrade", "pip")
    sh(*pip, torch_spec, *(["--index-url", torch_index] if torch_index else []))
    sh(*pip, transformers_spec, *COLAB_IMAGE)


def versions(python: Path) -> dict:
    code = "import torch, transformers; print(transformers.__version__, torch.__version__)"
    out = sh(python, "-c", code, capture_output=True, text=True, env=kernel_env({})).stdout.split()
    return {"transformers": out[0], "torch": out[1]}


def kernel_env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return env | extra


def cpu_seconds() -> float:
    """CPU time of this process's finished children (pip, kernels): a loaded machine inflates it less than the
    wall time (torch's threads still spin while they wait for a core)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fresh_runtime(python: Path, clone_dir: Path, content: Path) -> None:
    """A new Colab runtime: no clone, no sft-course (the dependencies pip added stay, like a warm cache)."""
    shutil.rmtree(clone_dir, ignore_errors=True)
    sh(python, "-m", "pip", "uninstall", "--quiet", "--yes", "sft-course", capture_output=True)
    content.mkdir(parents=True, exist_ok=True)


def run_notebook(path: Path, out_path: Path, content: Path, cell_timeout_s: int) -> int:
    """Run one notebook in a kernel of this interpreter (the rehearsal's venv); restart and run again from the
    top when the set-up cell says RESTART NEEDED. Returns the number of restarts; raises on a cell's error."""
    import nbformat
    from nbclient import NotebookClient

    for restarts in range(2):
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            timeout=cell_timeout_s,
            kernel_name="python3",
            extra_arguments=["--IPKernelApp.log_level=ERROR", "--IPKernelApp.exec_lines=import google.colab"],
            resources={"metadata": {"path": str(content)}},
        )
        client.reset_execution_trackers()
        restart = False
        try:  # the kernel's own stderr (pip's build messages from the set-up cell) goes to a log file
            with open(out_path.parent.parent / "kernels.log", "a") as log, client.setup_kernel(stderr=log):
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                    if cell.cell_type == "code" and SETUP_MARK in cell.source:
                        text = "".join(o.get("text", "") for o in cell.outputs)
                        if "Not on Colab" in text:
                            raise RuntimeError("the set-up cell did not see google.colab")
                        if "RESTART NEEDED" in text:
                            restart = True
                            break
        finally:  # also a failed run's cells, to read
            out_path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_path)
        if not restart:
            return restarts
        print(f"  {path.stem}: RESTART NEEDED: restarting the kernel, running again from the top", flush=True)
    raise RuntimeError("RESTART NEEDED again after a restart")


def run_all(args) -> int:
    """Inside the rehearsal's venv: run the notebooks one by one, each in a fresh runtime."""
    work = args.work
    python = Path(sys.executable)
    content, drive = work / "content", work / "drive"
    ran, failed = [], []
    print(f"{'notebook':<28} {'seconds':>8} {'CPU s':>8}  restarts", flush=True)
    for path in args.notebooks:
        fresh_runtime(python, Path(os.environ["SFT_COURSE_DIR"]), content)
        drive.mkdir(exist_ok=True)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        try:
            restarts = run_notebook(path, work / "notebooks" / path.name, content, args.cell_timeout)
        except Exception as error:  # noqa: BLE001 -- one failed notebook is reported; the others still run
            failed.append(path.stem)
            lines = str(error).strip().splitlines()
            print(f"{path.stem:<28} FAILED after {time.perf_counter() - start:.0f} s:", *lines[-15:], sep="\n  ")
            continue
        ran.append(path.stem)
        seconds, cpu_s = time.perf_counter() - start, cpu_seconds() - cpu_start
        print(f"{path.stem:<28} {seconds:>8.1f} {cpu_s:>8.1f}  {restarts}", flush=True)
    (work / "ran.txt").write_text("".join(f"{name}\n" for name in ran))
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="names such as 01_format (default: all course notebooks)")
    parser.add_argument("--torch", default=os.environ.get("TORCH_SPEC", PINNED_TORCH), help="torch requirement")
    parser.add_argument("--torch-index", default=os.environ.get("TORCH_INDEX", ""), help="pip index for torch")
    parser.add_argument("--transformers", default="transformers>=4,<5", help="default: the newest 4.x")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "colab-rehearsal")
    parser.add_argument(
        "--cell-timeout", type=int, default=CELL_TIMEOUT_S, help="seconds per cell (default %(default)s)"
    )
    parser.add_argument("--reuse-venv", action="store_true", help="keep the venv of the last rehearsal")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)  # inside the venv
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    if args.run:
        args.notebooks = [Path(p) for p in args.notebooks]
        return run_all(args)

    started = time.perf_counter()
    work, venv = args.work, args.work / "venv"
    source = os.environ.get("SFT_COURSE_REPO", f"file://{ROOT}")
    if source == f"file://{ROOT}" and sh("git", "-C", ROOT, "status", "--porcelain", capture_output=True).stdout:
        print("note: the rehearsal runs the committed HEAD; uncommitted changes are not in it")
    if not (args.reuse_venv and (venv / "bin/python").exists()):
        print(f"colab rehearsal: a fresh venv with {args.torch} and {args.transformers} …", flush=True)
        make_venv(venv, args.torch, args.torch_index, args.transformers)
    for stale in ("notebooks", "content", "drive", "repo"):
        shutil.rmtree(work / stale, ignore_errors=True)
    for stale in ("ran.txt", "kernels.log"):
        (work / stale).unlink(missing_ok=True)
    sh("git", "clone", "--quiet", "--depth", "1", source, work / "repo")
    stand_in = work / "stand-in" / "google" / "colab"  # no google/__init__.py: google.protobuf stays importable
    stand_in.mkdir(parents=True, exist_ok=True)
    for name, text in STAND_IN.items():
        (stand_in / name).write_text(text)
    links = work / "drive-links.txt"
    links.write_text("")
    sys.path.insert(0, str(work / "repo"))
    from sft_utils.course.notebooks import course_notebooks  # the clone's own list, read with this interpreter

    notebooks = course_notebooks(work / "repo" / "notebooks")
    if args.notebooks:
        notebooks = [p for p in notebooks if p.stem in args.notebooks or p.name in args.notebooks]
    env = kernel_env(
        {
            "PYTHONPATH": str(work / "stand-in"),  # the stand-in google.colab, nothing of this checkout
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(venv),
            "SFT_COURSE_REPO": source,
            "SFT_COURSE_DIR": str(work / "content" / "sft-course"),
            "COLAB_REHEARSAL_DRIVE": str(work / "drive"),
            "COLAB_REHEARSAL_LINKS": str(links),
            "HF_HUB_OFFLINE": "1",  # no hub here: the notebooks' offline fallbacks, said in their outputs
        }
    )
    command = [
        venv / "bin/python",
        Path(__file__).resolve(),
        "--run",
        "--work",
        work,
        "--cell-timeout",
        args.cell_timeout,
    ]
    command += notebooks
    try:
        status = subprocess.run([str(c) for c in command], check=False, env=env).returncode
    finally:
        for link in filter(None, links.read_text().splitlines()):
            if Path(link).is_symlink():
                Path(link).unlink()
    ran = len((work / "ran.txt").read_text().split()) if (work / "ran.txt").exists() else 0
    v = versions(venv / "bin/python")
    pinned = ", the pinned one: other torch builds on PyPI carry GBs of CUDA" if args.torch == PINNED_TORCH else ""
    print(f"rehearsal took {time.perf_counter() - started:.0f} s ({cpu_seconds():.0f} s of CPU time, all processes)")
    print(
        f"colab rehearsal: {ran}/{len(notebooks)} notebooks ran (transformers {v['transformers']}, torch {v['torch']}{pinned})"
    )
    return 0 if status == 0 and ran == len(notebooks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
