"""Calibrate the training check: held-out MSE over many seeds, learning vs not learning.

Runs the hidden training check's own code (`checks.evaluate` on the training call, then
the trusted `checks.heldout_mse`) with the budget in course_config.TRAINING_CHECK for:

- the solution's AttentionTest (must always pass),
- "frozen": the same model whose gradients never reach its parameters (learns nothing),
- "uniform": attention weights replaced by uniform weights (learns nothing).

Writes docs/calibration.md (table, margins) and docs/calibration.png (the distribution);
with `--device cuda` docs/calibration-cuda.md and .png instead. Grading trains on CUDA where
the grading machine has a GPU (course_config.TRAINING_CHECK["device"] "auto", docs/gpu.md):
both tables must show the same separation.

    .venv/bin/python benchmarks/calibrate_training.py --seeds 25 [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import course_config as cfg  # noqa: E402
from coursekit import checks, data  # noqa: E402
from coursekit.notebook_defs import load_definitions  # noqa: E402


def variants() -> dict[str, type]:
    """The solution and two models that cannot learn, built on the solution's class."""
    Reference = load_definitions(cfg.SOLUTIONS_DIR / f"{cfg.ASSIGNMENT}.ipynb")["AttentionTest"]

    class Frozen(Reference):
        def forward(self, img, image_database):
            output, weights = super().forward(img, image_database)
            anchor = sum(p.sum() for p in self.parameters()) * 0  # keeps backward() valid
            return torch.bmm(weights.detach(), image_database) + anchor, weights.detach()

    class Uniform(Reference):
        def forward(self, img, image_database):
            _, weights = super().forward(img, image_database)
            uniform = torch.full_like(weights, 1 / image_database.shape[1])
            anchor = sum(p.sum() for p in self.parameters()) * 0
            return torch.bmm(uniform, image_database) + anchor, uniform

    return {"solution": Reference, "frozen (no learning)": Frozen, "uniform (no learning)": Uniform}


def heldout(model: type, p: dict, seed: int, device: str) -> float:
    training = {**cfg.TRAINING_CHECK, "seed": seed, "device": device}
    out = checks.evaluate(checks.CALLS_BY_ID["training"], {"AttentionTest": model}, p, training)
    try:
        return checks.heldout_mse({"training": out}, p)
    except checks.CheckFailed:  # weights not from attention (uniform): MSE of what it returned
        db, held = p["data_database"].double(), p["data_heldout"].double()
        w = torch.from_numpy(out["weights"]).double()
        return float((torch.matmul(w, db) - held.unsqueeze(1)).pow(2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the sandbox
    device = args.device
    bundle_path = data.make_bundle(ROOT / ".cache" / "calibration-bundle.npz")
    p = checks.probes(checks.load_bundle(bundle_path))
    target = cfg.TRAINING_CHECK["target_mse"]
    results: dict[str, list[float]] = {}
    start = time.perf_counter()
    for name, model in variants().items():
        results[name] = [heldout(model, p, seed, device) for seed in range(args.seeds)]
        print(f"{name}: min {min(results[name]):.4f} max {max(results[name]):.4f}", flush=True)
    elapsed = time.perf_counter() - start

    sol = results["solution"]
    nolearn = [x for k, v in results.items() if k != "solution" for x in v]
    margin_pass, margin_fail = target - max(sol), min(nolearn) - target
    ok = margin_pass > 0 and margin_fail > 0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for i, (name, values) in enumerate(results.items()):
        ax.scatter(values, [i] * len(values), alpha=0.6, label=name, s=18)
    ax.axvline(target, color="red", linestyle="--", label=f"target {target}")
    ax.set_yticks(range(len(results)), list(results))
    ax.set_xlabel("held-out MSE after the training check's budget")
    ax.set_title(f"Training check over {args.seeds} seeds ({device})")
    fig.tight_layout()
    stem = "calibration" if device == "cpu" else f"calibration-{device}"
    fig.savefig(ROOT / "docs" / f"{stem}.png", dpi=110)

    tc = cfg.TRAINING_CHECK
    rows = "\n".join(
        f"| {name} | {min(v):.4f} | {statistics.median(v):.4f} | {max(v):.4f} | "
        f"{sum(x <= target for x in v)}/{len(v)} |" for name, v in results.items())
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none used"
    (ROOT / "docs" / f"{stem}.md").write_text(f"""# Calibration of the training check ({device})

Generated by `.venv/bin/python benchmarks/calibrate_training.py --seeds {args.seeds} --device {device}`
({device}, GPU: {gpu}, {platform.machine()}, torch {torch.__version__}, 1 CPU thread as in the sandbox;
{elapsed:.0f} s for all runs).

Budget (course_config.TRAINING_CHECK): {tc['steps']} Adam steps, batch {tc['batch_size']},
lr {tc['lr']}, embed_dim {tc['embed_dim']}; trained on {cfg.BUNDLE_TRAIN_QUERIES} query images,
MSE measured on {cfg.BUNDLE_HELDOUT_QUERIES} held-out images of the MNIST test split, against a
100-image database, all disjoint. The MSE is computed by the grader from the model's
parameters (`attn_output_weights @ database` vs the query), never taken from student code.

| model | min MSE | median | max MSE | runs at or below target |
|---|---|---|---|---|
{rows}

Target: **{target}**. Worst correct run {max(sol):.4f}: margin **{margin_pass:.4f}** below the
target. Best no-learning run {min(nolearn):.4f}: margin **{margin_fail:.4f}** above it.
{'Every correct run passes and every no-learning run fails.' if ok else 'THE TARGET DOES NOT SEPARATE THE GROUPS.'}

The seed varies the model's initialisation and the order of training batches. A model whose
weights are detached cannot even be trained (its loss has no gradient) and fails before any
MSE is measured; "frozen" is the variant that trains without error but learns nothing.

![distribution]({stem}.png)
""")
    print(f"target {target}: pass margin {margin_pass:.4f}, fail margin {margin_fail:.4f}, ok={ok}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
