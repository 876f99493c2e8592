"""The solutions notebook runs top to bottom offline, every cell including the plots.

Offline there is no MNIST training split: the test split stands in for it (the
notebook prints so), and section 6.5's training recipe (10 epochs on a GPU, 2 on a
CPU) becomes 1 epoch for the test.
"""

from __future__ import annotations

import re
import shutil

import nbformat
from nbclient import NotebookClient

from tests.helpers import A, COURSE

RECIPE_MARK = 'if device.type == "cpu":'
EPOCHS_LINE = re.compile(r"^(\s*)num_epochs = \d+\b.*$", re.M)


def shorten_training(nb: nbformat.NotebookNode) -> None:
    """One epoch instead of the recipe's: both `num_epochs = N` lines (the GPU's, the CPU's)
    of section 6.5's recipe cell become `num_epochs = 1`."""
    recipe = [c for c in nb.cells if RECIPE_MARK in c.source and "num_epochs = " in c.source]
    assert len(recipe) == 1, "the training recipe cell (section 6.5) changed: update this test"
    recipe[0].source, n = EPOCHS_LINE.subn(r"\1num_epochs = 1", recipe[0].source)
    assert n == 2, "the recipe no longer sets num_epochs for the GPU and the CPU: update this test"
    assert not any("num_epochs = " in c.source for c in nb.cells if c is not recipe[0])


def test_solutions_notebook_executes_offline(built, tmp_path, monkeypatch):
    nb = nbformat.read(built["solutions"], as_version=4)
    shorten_training(nb)
    harness = nbformat.v4.new_code_cell(
        "# test harness: offline, the MNIST test split stands in for the training split\n"
        f"import sys; sys.path.insert(0, {str(COURSE.root)!r})\n"
        "import torchvision.datasets\n"
        "from tests.standin.mnist import stand_in_mnist_class\n"
        "torchvision.datasets.MNIST = stand_in_mnist_class()\n")
    nb.cells.insert(0, harness)
    # grader.export saves a zip next to the notebook: work in a scratch folder
    shutil.copy(built["solutions"], tmp_path / f"{A.name}.ipynb")
    monkeypatch.setenv("MNIST_ROOT", str(COURSE.mnist_root))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = {i: c.get("outputs", []) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    errors = [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
    assert errors == []
    text = "".join(o.get("text", "") for outs in outputs.values() for o in outs)
    assert "test split (10k images) stands in for the training split" in text
    assert "Shape of image_database (100, 784)" in text
    assert "Minimum MSE loss" in text
    images = sum(1 for outs in outputs.values() for o in outs if "image/png" in o.get("data", {}))
    assert images >= 10  # every plot of the lab was drawn
    checks = [c for c in nb.cells if c.source.startswith("grader.check(")]
    for cell in checks:
        shown = "".join(str(o.get("data", o.get("text", ""))) for o in cell.outputs)
        assert "passed" in shown, (cell.source, shown[:300])
