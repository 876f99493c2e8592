"""Time a student's Restart & Run All: the whole solutions notebook, cell by cell (issue 11).

Builds release and solutions into a temporary folder (never into the repository), takes
the solutions notebook (the three stubs filled in) and executes it top to bottom with
nbclient, as tests/test_notebook.py does. Prints one row per code cell that took at
least 0.05 s, the kernel's start-up, and the totals.

Offline (no `train-images-idx3-ubyte[.gz]` under MNIST_ROOT/MNIST/raw/) MNIST's 10k test
split stands in for the 60k training split; the training cell (section 6.7), whose time
grows with the size of the split, is then also shown ×6, an estimate for the real split.

    unshare --pid --fork --mount-proc .venv/bin/python benchmarks/student_run.py            # as released
    unshare --pid --fork --mount-proc .venv/bin/python benchmarks/student_run.py --recipe lab

--recipe auto (default) runs the notebook as released: section 6.5 picks the CPU recipe on
a CPU and the lab's own recipe on a GPU. --recipe lab disables 6.5's CPU branch, so the
lab's own recipe (10 epochs, lr 1e-4, 2 loader workers) runs on this machine: the "before".
--epochs N shortens the run (both num_epochs lines of 6.5), for a quick look; --set NAME=VALUE
(repeatable) overrides a recipe variable after 6.5's choice, e.g. --set num_workers=2.
Timings depend on the machine's load: the script prints `uptime` before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from coursekit import course  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()

SCALE = 6  # 60k training images / the 10k test split that stands in for them
CPU_BRANCH = 'if device.type == "cpu":'
TRAINING_LOOP = "for _ in trange(num_epochs"
HARNESS = (
    "# student_run.py: offline, the MNIST test split stands in for the training split\n"
    f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
    "import torchvision.datasets\n"
    "from coursekit.course import load as _load_course\n"
    "from tests.standin.mnist import stand_in_mnist_class\n"
    "_course = _load_course()\n"
    "torchvision.datasets.MNIST = stand_in_mnist_class(_course.mnist_root, _course.root / '.cache' / 'mnist')\n")
SUMMARY = (
    "# student_run.py: the loss numbers of the run\n"
    "print('student_run: %d steps, min loss %.4f, mean of the last 100 losses %.4f, threads %d'\n"
    "      % (len(loss_logger), np.min(loss_logger), np.mean(loss_logger[-100:]), torch.get_num_threads()))\n")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def has_training_split(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return any((raw / name).is_file() for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"))


def prepare(nb: nbformat.NotebookNode, recipe: str, epochs: int | None, overrides: list[str],
            stand_in: bool) -> None:
    setup = [c for c in nb.cells if CPU_BRANCH in c.source]
    assert len(setup) == 1, f"no single cell with {CPU_BRANCH!r} (section 6.5): update this script"
    if recipe == "lab":
        setup[0].source = setup[0].source.replace(
            CPU_BRANCH, "if False:  # student_run.py --recipe lab: the lab's own recipe on this machine")
    if epochs is not None:
        setup[0].source = re.sub(r"^(\s*)num_epochs = \d+\b.*$", rf"\g<1>num_epochs = {epochs}",
                                 setup[0].source, flags=re.M)
    if overrides:
        lines = setup[0].source.splitlines()
        at = next(i for i, ln in enumerate(lines) if ln.startswith("print("))
        lines[at:at] = [f"{o}  # student_run.py --set" for o in overrides]
        setup[0].source = "\n".join(lines)
    if stand_in:
        nb.cells.insert(0, nbformat.v4.new_code_cell(HARNESS))
    nb.cells.append(nbformat.v4.new_code_cell(SUMMARY))


def seconds(cell: nbformat.NotebookNode) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def label(cell: nbformat.NotebookNode) -> str:
    lines = [ln.strip() for ln in cell.source.splitlines() if ln.strip()]
    code = [ln for ln in lines if not ln.startswith(("#", '"""'))] or lines or [""]
    return code[0][:46]


def text_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=["auto", "lab"], default="auto")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--keep", type=Path, default=None, help="write the executed notebook here")
    parser.add_argument("--min", type=float, default=0.05, help="hide cells faster than this (s)")
    args = parser.parse_args()

    import torch

    from coursekit.build import build

    root = COURSE.mnist_root
    stand_in = not has_training_split(root)
    os.environ["MNIST_ROOT"] = str(root)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"cuda {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    print(f"recipe: {args.recipe}" + (f", epochs forced to {args.epochs}" if args.epochs else "")
          + "".join(f", {o}" for o in args.overrides)
          + (f"; offline: the 10k test split stands in for the training split (×{SCALE} = 60k estimate)"
             if stand_in else "; the real training split"))
    with tempfile.TemporaryDirectory(prefix="student-run-") as tmp:
        tmp = Path(tmp)
        built = build(out_root=tmp / "build", run_tests=False, quiet=True)
        nb = nbformat.read(built["solutions"], as_version=4)
        prepare(nb, args.recipe, args.epochs, args.overrides, stand_in)
        work = tmp / "work"
        work.mkdir()
        shutil.copy(built["solutions"], work / f"{A.name}.ipynb")  # grader.export needs it
        print(f"before: {uptime()}", flush=True)
        start = time.perf_counter()
        NotebookClient(nb, timeout=3600, kernel_name="python3", record_timing=True,
                       resources={"metadata": {"path": str(work)}}).execute()
        wall = time.perf_counter() - start
        print(f"after:  {uptime()}")
        if args.keep:
            nbformat.write(nb, args.keep)

    rows, section = [], ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            m = re.search(r"^#+\s*(.+)$", cell.source, flags=re.M)
            section = m.group(1)[:28] if m else section
            continue
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            raise SystemExit(f"cell {i} raised {errors[0].get('ename')}: {errors[0].get('evalue')}")
        t = seconds(cell)
        scaled = t * SCALE if stand_in and TRAINING_LOOP in cell.source else t
        rows.append((i, section, label(cell), t, scaled))

    cells_total = sum(r[3] for r in rows)
    scaled_total = sum(r[4] for r in rows)
    print(f"\n{'cell':>4}  {'section':<28}  {'code':<46}  {'s':>7}  {'60k est.':>8}")
    for i, sec, code, t, scaled in rows:
        if t >= args.min:
            est = f"{scaled:8.1f}" if scaled != t else f"{'':>8}"
            print(f"{i:>4}  {sec:<28}  {code:<46}  {t:7.1f}  {est}")
    print(f"{'':>4}  {'(all code cells)':<28}  {'':<46}  {cells_total:7.1f}  {scaled_total:8.1f}")
    print(f"{'':>4}  {'(kernel start, transport)':<28}  {'':<46}  {wall - cells_total:7.1f}")
    print(f"{'':>4}  {'(whole run, wall clock)':<28}  {'':<46}  {wall:7.1f}  "
          f"{wall - cells_total + scaled_total:8.1f}")
    for cell in nb.cells:
        for line in text_of(cell).splitlines():
            if line.startswith(("Training on", "Minimum MSE loss", "student_run:", "[offline]")):
                print(line)


if __name__ == "__main__":
    main()
