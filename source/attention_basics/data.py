"""MNIST through torchvision: finding the data root, clear errors, the autograder's slice.

torchvision's `MNIST` class wants the *uncompressed* idx files of both splits under
`<root>/MNIST/raw/`. Offline machines carry only the gzipped test split (read-only), so
we verify the archives against torchvision's own MD5 list, unpack them into a local
cache, and read them with torchvision's idx readers.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from coursekit.lab import DataError

TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _md5s() -> dict[str, str]:
    from torchvision.datasets import MNIST

    return {name.removesuffix(".gz"): md5 for name, md5 in MNIST.resources}


def _fix_hint() -> str:
    return ("Put the original MNIST files there (torchvision's layout <root>/MNIST/raw/) or set "
            "MNIST_ROOT to a folder that has them; offline, the test split is enough.")


def prepare_test_split(root: str | Path, cache: Path) -> Path:
    """Check the MNIST test split under `root` and return a torchvision root that has it unpacked.

    Raises `DataError` naming the path and the fix when the root, a file, or its checksum is wrong.
    """
    from torchvision.datasets.utils import calculate_md5

    root = Path(root)
    raw = root / "MNIST" / "raw"
    if not root.is_dir():
        raise DataError(f"MNIST data root {root} does not exist. {_fix_hint()}")
    if not raw.is_dir():
        raise DataError(f"MNIST data root {root} has no MNIST/raw/ folder. {_fix_hint()}")
    md5s = _md5s()
    out_raw = cache / "MNIST" / "raw"
    for name in TEST_FILES:
        plain, gz = raw / name, raw / f"{name}.gz"
        if gz.is_file():
            got = calculate_md5(str(gz))
            if got != md5s[name]:
                raise DataError(f"MNIST file {gz} is corrupt or not the original (MD5 {got}, "
                                f"expected {md5s[name]}). Replace it with the original file.")
            target = out_raw / name
            if not target.is_file() or target.stat().st_mtime < gz.stat().st_mtime:
                out_raw.mkdir(parents=True, exist_ok=True)
                tmp = out_raw / f".{name}.{os.getpid()}.tmp"
                with gzip.open(gz, "rb") as src:
                    tmp.write_bytes(src.read())
                os.replace(tmp, target)  # atomic: parallel runs never see half a file
        elif plain.is_file():
            out_raw.mkdir(parents=True, exist_ok=True)
            target = out_raw / name
            if not target.exists():
                target.symlink_to(plain.resolve())
        else:
            raise DataError(f"MNIST data root {root} lacks {gz} (the test split). {_fix_hint()}")
    return cache


def load_test_images(root: str | Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10k MNIST test images (uint8, 10000×28×28) and labels, read by torchvision's idx readers."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw = prepare_test_split(root, cache) / "MNIST" / "raw"
    try:
        images = read_image_file(str(raw / TEST_FILES[0])).numpy()
        labels = read_label_file(str(raw / TEST_FILES[1])).numpy()
    except Exception as exc:
        raise DataError(f"MNIST files in {raw} could not be read ({exc}). Delete {cache} "
                        f"and check the data root.") from exc
    if images.shape != (10000, 28, 28) or labels.shape != (10000,):
        raise DataError(f"MNIST test split in {raw} has unexpected shapes {images.shape}, "
                        f"{labels.shape}.")
    return images, labels


def make_bundle(path: Path, *, mnist_root: str | Path, cache: Path, seed: int, database: int,
                train: int, heldout: int) -> Path:
    """Write the autograder's small, deterministic slice of the test split as a compressed .npz.

    Disjoint random subsets (seeded): the `database` images, `train` training queries and
    `heldout` held-out queries. Stored as uint8; the checks normalise as the lab does.
    """
    images, _ = load_test_images(mnist_root, cache)
    rng = np.random.default_rng(seed)
    order = rng.permutation(images.shape[0])
    n_db, n_tr, n_ho = database, train, heldout
    parts = {
        "database": images[order[:n_db]],
        "train": images[order[n_db:n_db + n_tr]],
        "heldout": images[order[n_db + n_tr:n_db + n_tr + n_ho]],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez_compressed(tmp, **parts)
    os.replace(tmp, path)  # parallel graders never read half a file
    return path
