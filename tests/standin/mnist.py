"""A torchvision MNIST that serves the test split for both splits: for running the lab
notebook offline in tests and benchmarks (it never downloads, and says that the test split
stands in for the training split). Test-only: it moved here from the lab's data module."""

from __future__ import annotations

from pathlib import Path


def stand_in_mnist_class(root: str | Path | None = None, cache: Path | None = None) -> type:
    """A `torchvision.datasets.MNIST` subclass over the test split under `root` (default: the
    course's MNIST root), unpacked into `cache` (default: the course's `.cache/mnist`) by the
    lab's `data.prepare_test_split`."""
    from torchvision.datasets import MNIST

    from coursekit import course

    settings = course.load()
    settings.assignment().lab()  # imports the lab's package
    from attention_basics.data import TEST_FILES, prepare_test_split

    unpacked = prepare_test_split(root or settings.mnist_root, cache or settings.root / ".cache" / "mnist")

    class StandInMNIST(MNIST):
        def __init__(self, root: str = "", train: bool = True, transform=None,
                     target_transform=None, download: bool = False) -> None:
            if train:
                print("[offline] MNIST test split (10k images) stands in for the training split")
            super().__init__(str(unpacked), train=False, transform=transform,
                             target_transform=target_transform, download=False)

        @property
        def raw_folder(self) -> str:  # torchvision derives it from the class name
            return str(unpacked / "MNIST" / "raw")

        def _check_exists(self) -> bool:
            return all((Path(self.raw_folder) / name).is_file() for name in TEST_FILES)

    return StandInMNIST
