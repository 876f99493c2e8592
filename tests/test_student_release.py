"""The release as students run it: on (simulated) Colab from the .ipynb alone, and renamed.

Colab: an empty folder with only the notebook, otter absent throughout (the first cell
installs nothing, issue 20), a kernel otter recognises as Colab's (tests/colab_sim.py).
Offline the MNIST test split stands in for the training split (a harness cell after the
set-up cell says so) and training runs 1 epoch. The file the notebook tells the student
to upload is graded by `otter run` and `coursekit grade`.
"""

from __future__ import annotations

import re
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import (A, ANSWERED, COURSE, LAB, REF_FORWARD, REF_LOOKUP, REF_RETRIEVE, Spec, TOTAL,
                           UNANSWERED, WRONG, make_notebook, score_dict)
from coursekit.lab_notebook import COLAB_SUBMIT
from tests.colab_sim import colab_runtime

pytestmark = pytest.mark.slow

SOLUTION = Spec(REF_LOOKUP, REF_RETRIEVE, REF_FORWARD)
PASS = "✅ {q}: every public check passed (the hidden tests decide the grade)"
VARIANT = "w21_scaled_only_when_soft"  # passed every public check before issue 11
VARIANT_LOOKUP = ("❌ lookup with multiple queries (Q 3×4, K 5×4, soft=True): the scores are "
                  "scaled by √d; the lab's weights are softmax(QKᵀ), unscaled")
OTTER_PROBE = ("import importlib.util\n"
               "print('otter importable:', importlib.util.find_spec('otter') is not None)")
HARNESS = (
    "# test harness: offline, the MNIST test split stands in for the training split\n"
    f"import sys; sys.path.insert(0, {str(COURSE.root)!r})\n"
    "import torchvision.datasets\n"
    "from tests.standin.mnist import stand_in_mnist_class\n"
    "torchvision.datasets.MNIST = stand_in_mnist_class()\n")


def student_notebook(release: Path, spec: Spec, *, skip_ignored: bool = False) -> nbformat.NotebookNode:
    """The release with `spec`'s code in the stubs, a harness cell after the set-up cell,
    training shortened to one epoch (or, `skip_ignored`, without the data/training cells)."""
    nb = make_notebook(release, spec)
    assert nb.cells[0].metadata.get("cellView") == "form"  # the set-up cell comes first
    if skip_ignored:
        nb.cells = [c for i, c in enumerate(nb.cells)
                    if i == 0 or COURSE.rules.ignore_tag not in c.metadata.get("tags", [])]
    else:
        nb.cells.insert(1, nbformat.v4.new_code_cell(HARNESS))
        for cell in nb.cells:
            cell.source = re.sub(r"^(\s*)num_epochs = .*$", r"\1num_epochs = 1", cell.source, flags=re.M)
    return nb


def run(nb: nbformat.NotebookNode, folder: Path, kernel: str) -> nbformat.NotebookNode:
    NotebookClient(nb, timeout=900, kernel_name=kernel,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def shown(cell: nbformat.NotebookNode) -> list[str]:
    """The lines a code cell showed (its stream and plain-text outputs)."""
    text = ""
    for out in cell.get("outputs", []):
        text += out.get("text", "") + out.get("data", {}).get("text/plain", "")
    return [line for line in text.splitlines() if line.strip()]


def check_outputs(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    out = {}
    for cell in nb.cells:
        m = re.fullmatch(r'grader\.check\("(\w+)"\)', cell.source.strip())
        if m:
            out[m.group(1)] = shown(cell)
    return out


@pytest.fixture(scope="module")
def colab(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("colab")
    env = colab_runtime(root)
    for key, value in env.items():
        monkeypatch_module.setenv(key, value)
    monkeypatch_module.setenv("MNIST_ROOT", str(COURSE.mnist_root))
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("variant", ["solution", VARIANT])
def test_release_on_colab_checks_and_submits(built, colab, tmp_path, variant):
    folder = tmp_path / "content"  # Colab's working folder holds only the notebook
    folder.mkdir()
    spec = SOLUTION if variant == "solution" else WRONG[variant]
    # the solution runs top to bottom; the variant only its definitions and checks (faster)
    nb = student_notebook(built["release"], spec, skip_ignored=variant != "solution")
    nbformat.write(nb, folder / f"{A.name}.ipynb")
    nb.cells.append(nbformat.v4.new_code_cell(OTTER_PROBE))
    run(nb, folder, "colab")

    assert shown(nb.cells[0]) == []  # the first cell says nothing: no pip, no restart prompt
    assert shown(nb.cells.pop()) == ["otter importable: False"]  # nothing installed it
    site = next((colab / "venv" / "lib").glob("python3*/site-packages"))
    assert not (site / "otter").exists()
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".py") == ["lab_checks.py", "lab_notebook.py"]
    checks = check_outputs(nb)
    assert sorted(checks) == sorted(LAB.public_questions())  # in the notebook's order
    for question, lines in checks.items():
        if question in UNANSWERED:  # a question the corpus does not answer keeps its stub
            assert len(lines) == 1 and "not implemented yet" in lines[0], (question, lines)
        elif variant != "solution" and question == "lookup":
            assert lines == [VARIANT_LOOKUP]
        else:
            assert lines == [PASS.format(q=question)], (question, lines)
    check_all = [shown(c) for c in nb.cells if c.source.strip() == "grader.check_all()"]
    assert check_all == [[line for q in LAB.public_questions() for line in checks[q]]]  # the checks' order
    export = [c for c in nb.cells if c.source.strip().startswith("# Save your notebook")
              or "grader.export(" in c.source]
    assert shown(export[-1]) == [COLAB_SUBMIT]
    assert not list(folder.glob("*.zip"))  # on Colab the notebook itself is uploaded

    if variant != "solution":
        return
    text = "".join("".join(shown(c)) for c in nb.cells)
    assert "Minimum MSE loss" in text  # the lab's training and plots ran too
    # what the student downloads (File -> Download .ipynb) and uploads
    upload = tmp_path / f"{A.name}.ipynb"
    nbformat.write(nb, upload)
    from coursekit.batch.otter_run import otter_run
    from coursekit.grade import grade_all
    from tests.helpers import question_scores

    scores = question_scores(otter_run(upload, built["zip"]))
    assert scores == score_dict()
    rows = grade_all([upload], tmp_path / "graded", jobs=1, progress=False)
    assert [r.total for _, r in rows] == [TOTAL]


def test_renamed_notebook_checks_and_exports(built, tmp_path):
    """Saved as `attention_basics (1).ipynb` beside another notebook, in Jupyter."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    nb = student_notebook(built["release"], SOLUTION, skip_ignored=True)
    name = f"{A.name} (1).ipynb"
    nbformat.write(nb, folder / name)
    nbformat.write(nbformat.v4.new_notebook(), folder / "notes.ipynb")
    run(nb, folder, "python3")

    checks = check_outputs(nb)
    assert {q: checks[q] for q in ANSWERED} == {q: [PASS.format(q=q)] for q in ANSWERED}
    zips = list(folder.glob("*.zip"))
    assert len(zips) == 1 and zips[0].name.startswith(f"{A.name} (1)")
    with zipfile.ZipFile(zips[0]) as zf:
        assert name in zf.namelist()
    from coursekit.grade import grade_all

    rows = grade_all([zips[0]], tmp_path / "graded", jobs=1, progress=False)
    assert [r.total for _, r in rows] == [TOTAL]


def test_nbgrader_hub_public_checks_print_one_line_each(built, tmp_path):
    """On the hub (nbgrader), the read-only check cells print the same lines."""
    import shutil

    source = built["nbgrader_source"]
    folder = tmp_path / "hub"
    shutil.copytree(source.parent, folder)
    assert (folder / "lab_checks.py").is_file()  # nbgrader releases it beside the notebook
    nb = nbformat.read(source, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "lab_checks.report(" in cell.source or COURSE.rules.ignore_tag not in cell.metadata.get("tags", []):
            cells.append(cell)
        if cell.source.lstrip().startswith("def lookup("):  # a student's mistaken second try
            cells.append(nbformat.v4.new_code_cell(
                "def lookup(Q, K, soft=True):\n"
                + textwrap.indent(textwrap.dedent(WRONG[VARIANT].lookup).strip(), "    ") + "\n"))
    nb.cells = cells
    run(nb, folder, "python3")
    printed = {c.source.split("lab_checks.report(")[1].split(",")[0].strip("'\""): shown(c)
               for c in nb.cells if "lab_checks.report(" in c.source}
    # the hub's cells are the course's own (every answer given), but lookup's second try
    assert printed == {q: [VARIANT_LOOKUP] if q == "lookup" else [PASS.format(q=q)]
                       for q in LAB.public_questions()}
