"""MNIST through torchvision: clear errors for a bad data root, a deterministic bundle."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import A, COURSE, LAB
from attention_basics import data
from coursekit.lab import DataError


def _copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(COURSE.mnist_root / "MNIST" / "raw", root / "MNIST" / "raw")
    return root


def test_missing_root_names_path_and_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        data.prepare_test_split(missing, cache=tmp_path / "cache")
    assert f"MNIST data root {missing} does not exist" in str(info.value)
    assert "MNIST_ROOT" in str(info.value)


def test_root_without_raw_folder(tmp_path):
    with pytest.raises(DataError, match="has no MNIST/raw/ folder"):
        data.prepare_test_split(tmp_path, cache=tmp_path / "cache")


def test_missing_file_is_named(tmp_path):
    root = _copy_root(tmp_path)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        data.prepare_test_split(root, cache=tmp_path / "cache")
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_corrupt_file_is_named(tmp_path):
    root = _copy_root(tmp_path)
    bad = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    bad.chmod(0o644)
    bad.write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(DataError) as info:
        data.prepare_test_split(root, cache=tmp_path / "cache")
    assert f"MNIST file {bad} is corrupt" in str(info.value)


def test_env_var_sets_root(tmp_path, monkeypatch):
    from coursekit import course

    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "elsewhere"))
    shutil.copy(COURSE.config_file, tmp_path / "course_config.py")  # a course read with it set
    (tmp_path / "source").symlink_to(COURSE.root / "source")
    moved = course.load(tmp_path / "course_config.py")
    assert moved.mnist_root == tmp_path / "elsewhere"
    with pytest.raises(DataError, match="elsewhere does not exist"):
        data.prepare_test_split(moved.mnist_root, cache=tmp_path / "cache")


def test_cli_build_reports_bad_root(tmp_path, monkeypatch, capsys):
    from coursekit.cli import main

    from coursekit import course

    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "missing"))
    shutil.copy(COURSE.config_file, tmp_path / "course_config.py")  # the course, read with it set
    (tmp_path / "source").symlink_to(COURSE.root / "source")
    monkeypatch.setenv("COURSEKIT_CONFIG", str(tmp_path / "course_config.py"))
    assert main(["build", "--no-run-tests"]) == 1
    assert course.load().mnist_root == tmp_path / "missing"
    err = capsys.readouterr().err
    assert f"coursekit build: MNIST data root {tmp_path / 'missing'} does not exist" in err


def test_bundle_is_deterministic_and_disjoint(tmp_path):
    a = LAB.make_data(tmp_path / "a.npz") or tmp_path / "a.npz"
    b = LAB.make_data(tmp_path / "b.npz") or tmp_path / "b.npz"
    with np.load(a) as x, np.load(b) as y:
        assert x.files == y.files
        for k in x.files:
            assert np.array_equal(x[k], y[k])
        assert x["database"].shape == (A.settings["data"]["database"], 28, 28)
        assert x["train"].shape == (A.settings["data"]["train"], 28, 28)
        assert x["heldout"].shape == (A.settings["data"]["heldout"], 28, 28)
        rows = {k: {r.tobytes() for r in x[k]} for k in x.files}
    assert not rows["heldout"] & rows["train"]
    assert not rows["database"] & rows["heldout"]


def test_stand_in_serves_test_split(capsys):
    import torchvision.transforms as T

    from tests.standin.mnist import stand_in_mnist_class

    cls = stand_in_mnist_class()
    ds = cls(".", train=True, download=True, transform=T.ToTensor())
    assert len(ds) == 10000
    assert tuple(ds[0][0].shape) == (1, 28, 28)
    assert "test split (10k images) stands in for the training split" in capsys.readouterr().out
