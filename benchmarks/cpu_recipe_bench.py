"""The lab's training loop (sections 2 and 6.5-6.7) outside the notebook, for choosing a recipe.

Same database of 100 images (seeded as in section 2), same `AttentionTest` (the solutions
notebook's), same loss and loop; the recipe is given on the command line. Offline the 10k
test split stands in for the training split: run 6x the epochs to compare recipes at the
number of steps they have over the real 60k split (docs/student-experience.md).

    .venv/bin/python benchmarks/cpu_recipe_bench.py --epochs 60 --lr 1e-4 --workers 0 --threads 1 --pre
    .venv/bin/python benchmarks/cpu_recipe_bench.py --epochs 12 --lr 1e-3 --workers 0 --threads 1 --pre
    .venv/bin/python benchmarks/cpu_recipe_bench.py --epochs 2 --lr 1e-3 --workers 2 --threads 2   # step time

--pre normalises all images once instead of per image (bit-identical batches, faster).
Prints the time per step (with `uptime`'s load) and the loss: minimum and mean of the last 100.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.utils.data.dataloader as dataloader  # noqa: E402
import torchvision.transforms as transforms  # noqa: E402

from coursekit import course  # noqa: E402
from coursekit.notebook_defs import load_definitions  # noqa: E402
from tests.standin.mnist import stand_in_mnist_class  # noqa: E402

COURSE = course.load()
A = COURSE.assignment()


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.split("load average:")[-1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--pre", action="store_true", help="normalise the dataset once, not per image")
    parser.add_argument("--seed", type=int, default=42, help="section 2's seed")
    parser.add_argument("--save", type=Path, default=None, help="write the per-step losses (.npy)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    AttentionTest = load_definitions(A.solutions_dir / f"{A.name}.ipynb")["AttentionTest"]

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    standin = stand_in_mnist_class(COURSE.mnist_root, COURSE.root / ".cache" / "mnist")
    dataset = standin(".", train=True, download=True, transform=transform)
    torch.manual_seed(args.seed)  # section 2
    rand_perm = torch.randperm(dataset.data.shape[0])[:A.settings["data"]["database"]]
    image_database = torch.cat([dataset[i][0].reshape(1, -1) for i in rand_perm])
    image_database_batches = image_database.unsqueeze(0).expand(args.batch, len(rand_perm), -1)
    if args.pre:  # the same float operations as ToTensor + Normalize, once for all images
        dataset = torch.utils.data.TensorDataset((dataset.data.float() / 255 - 0.5) / 0.5, dataset.targets)
    train_loader = dataloader.DataLoader(dataset, shuffle=True, batch_size=args.batch,
                                         num_workers=args.workers, drop_last=True)
    model = AttentionTest(num_of_examples=len(rand_perm), embed_dim=32, num_heads=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        for queries, _ in train_loader:
            X_q = queries.reshape(queries.shape[0], 1, -1)
            output, _ = model(X_q, image_database_batches)
            loss = (output - X_q).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print(f"  epoch {epoch + 1}: mean loss {np.mean(losses[-len(train_loader):]):.4f}", flush=True)
    took = time.perf_counter() - start
    print(f"epochs {args.epochs}, lr {args.lr:g}, batch {args.batch}, workers {args.workers}, "
          f"threads {torch.get_num_threads()}, {'pre-normalised' if args.pre else 'per-image transforms'}: "
          f"{took:.1f} s for {len(losses)} steps ({took / len(losses) * 1000:.1f} ms/step, load {load()}); "
          f"min loss {np.min(losses):.4f}, mean of the last 100 {np.mean(losses[-100:]):.4f}")
    if args.save:
        np.save(args.save, np.array(losses))


if __name__ == "__main__":
    main()
