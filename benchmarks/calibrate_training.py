"""Calibrate the training check: the target the reference reaches, and the gradient tolerance.

The hidden training check (issue 19) compares, at three points of the reference's own
training run (its parameters at the start, middle and end, one batch each), the training
loss and its gradients through the student's forward with the reference's in float64.
This measures what that rests on, with the budget in course_config.TRAINING_CHECK:

1. **The target.** The reference's run (`checks.reference_training`) over many seeds
   (initialisation and batch order) against the target held-out MSE, and two models that
   learn nothing: the initial parameters ("frozen") and uniform weights.
2. **The tolerance.** `checks.gradient_errors` (the verdict's own code) for every correct
   submission of the test corpus, and for the wrong ones whose forward values are right but
   whose gradients are not, on the CPU (or `--device cuda`).

Writes docs/calibration.md (tables, margins) and docs/calibration.png; with `--device cuda`
docs/calibration-cuda.md and .png instead.

    .venv/bin/python benchmarks/calibrate_training.py --seeds 25 [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import course_config as cfg  # noqa: E402
from coursekit import checks, data  # noqa: E402
from coursekit.notebook_defs import load_definitions  # noqa: E402
from tests.corpus import CORRECT, write_corpus  # noqa: E402

# Wrong entries whose forward values are right (or right enough to run) but whose training
# is not the lab's: the tolerance must fail them.
WRONG_GRADIENTS = ("w28_optimizer_patched", "w34_keys_detached")


def no_learning(p: dict, training: dict) -> dict[str, float]:
    """Held-out MSE of models that learn nothing: the initial parameters, uniform weights."""
    with torch.random.fork_rng():
        torch.manual_seed(int(training["seed"]))
        frozen = checks.ReferenceAttention()
    db, held = p["data_database"].double(), p["data_heldout"].double()
    uniform = torch.full((held.shape[0], 1, db.shape[0]), 1 / db.shape[0], dtype=torch.float64)
    return {"frozen (no learning)": checks.heldout_mse(frozen, p),
            "uniform (no learning)": float((uniform @ db - held.unsqueeze(1)).pow(2).mean())}


def corpus_errors(p: dict, device: str) -> dict[str, float]:
    """The largest relative gradient error of each correct entry and of WRONG_GRADIENTS."""
    names = sorted(CORRECT) + list(WRONG_GRADIENTS)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_corpus(cfg.RELEASE_DIR / f"{cfg.ASSIGNMENT}.ipynb", Path(tmp), names):
            with contextlib.redirect_stdout(io.StringIO()):
                model = load_definitions(path)["AttentionTest"]
            arrays = checks.evaluate(checks.CALLS_BY_ID["training"], {"AttentionTest": model}, p,
                                     {"device": device})
            out[path.stem] = max(checks.gradient_errors({"training": arrays}, p).values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the sandbox
    device, tc, target = args.device, cfg.TRAINING_CHECK, cfg.TRAINING_CHECK["target_mse"]
    bundle = checks.load_bundle(data.make_bundle(ROOT / ".cache" / "calibration-bundle.npz"))
    p = checks.probes(bundle)
    start = time.perf_counter()
    runs = [checks.reference_training(p, {**tc, "seed": seed, "target_mse": None}).mse
            for seed in range(args.seeds)]
    flat = no_learning(p, tc)
    p = checks.probes(bundle, tc)  # the grader's points, with the course's seed
    errors = corpus_errors(p, device)
    elapsed = time.perf_counter() - start
    for name, err in errors.items():
        print(f"{name}: largest relative gradient error {err:.2e}", flush=True)

    margin_pass, margin_fail = target - max(runs), min(flat.values()) - target
    correct = [errors[n] for n in sorted(CORRECT)]
    wrong = [errors[n] for n in WRONG_GRADIENTS]
    tol = checks.GRAD_RTOL
    ok = margin_pass > 0 and margin_fail > 0 and max(correct) < tol < min(wrong)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.scatter(runs, [0] * len(runs), alpha=0.6, s=18, label="reference run")
    left.scatter(list(flat.values()), [1] * len(flat), alpha=0.6, s=18, label="no learning")
    left.axvline(target, color="red", linestyle="--", label=f"target {target}")
    left.set_yticks([0, 1], ["reference", "no learning"])
    left.set_xlabel("held-out MSE after the budget")
    left.set_title(f"Reference over {args.seeds} seeds")
    right.scatter([max(e, 1e-12) for e in correct], [0] * len(correct), s=18, label="correct")
    right.scatter(wrong, [1] * len(wrong), s=18, color="C3", label="wrong gradients")
    right.axvline(tol, color="red", linestyle="--", label=f"tolerance {tol:g}")
    right.set_xscale("log")
    right.set_yticks([0, 1], ["correct", "wrong"])
    right.set_xlabel("largest relative gradient error")
    right.set_title(f"Corpus on {device}")
    fig.tight_layout()
    stem = "calibration" if device == "cpu" else f"calibration-{device}"
    fig.savefig(ROOT / "docs" / f"{stem}.png", dpi=110)

    gpu = torch.cuda.get_device_name() if device == "cuda" else "none used"
    rows = "\n".join(f"| {name} | {err:.2e} | {'pass' if err <= tol else 'fail'} |"
                     for name, err in errors.items())
    flat_rows = "\n".join(f"| {name} | {mse:.4f} |" for name, mse in flat.items())
    (ROOT / "docs" / f"{stem}.md").write_text(f"""# Calibration of the training check ({device})

Generated by `.venv/bin/python benchmarks/calibrate_training.py --seeds {args.seeds} --device {device}`
({device}, GPU: {gpu}, {platform.machine()}, torch {torch.__version__}, 1 CPU thread as in the sandbox;
{elapsed:.0f} s for all runs).

## What the check is

Budget (course_config.TRAINING_CHECK): {tc['steps']} Adam steps, batch {tc['batch_size']},
lr {tc['lr']}, embed_dim {tc['embed_dim']}; {cfg.BUNDLE_TRAIN_QUERIES} training query images,
MSE on {cfg.BUNDLE_HELDOUT_QUERIES} held-out images of the MNIST test split, against a
100-image database, all disjoint.

The grader trains the lab's reference model itself, with this budget and the course's seed,
and keeps its parameters at the start, the middle and the end of the run, with one batch of
training queries each. The job gets those parameters, loads them into the student's model,
and returns the training loss `(output − query)²` and its gradient for every parameter; the
grader recomputes both in float64 and requires the loss within {checks.LOSS_RTOL:g} and every
gradient within a relative error of **{tol:g}** (`checks.GRAD_RTOL`). Equal losses and gradients
at the points of the run make the student's training the reference's, which reaches the
target (below); nothing the job does with an optimizer, a seed, the batches, the step count
or the parameters is used (the job runs none of them).

## 1. The target: the reference's run against models that learn nothing

| run | min MSE | median | max MSE | at or below target |
|---|---|---|---|---|
| reference, {args.seeds} seeds | {min(runs):.4f} | {statistics.median(runs):.4f} | {max(runs):.4f} | {sum(x <= target for x in runs)}/{len(runs)} |

| no learning | held-out MSE |
|---|---|
{flat_rows}

Target: **{target}**. Worst reference run {max(runs):.4f}: margin **{margin_pass:.4f}** below
the target. Best no-learning model {min(flat.values()):.4f}: margin **{margin_fail:.4f}** above it.
The grader refuses to start if the course's budget does not bring its reference run below the
target (`checks.reference_training`).

## 2. The tolerance: the correct corpus against wrong gradients ({device})

| corpus entry | largest relative gradient error | verdict |
|---|---|---|
{rows}

Worst correct entry {max(correct):.2e}, {tol / max(max(correct), 1e-300):.0f}x below the tolerance; best
wrong entry {min(wrong):.2e}, {min(wrong) / tol:.0f}x above it.
{'Every correct entry passes and every wrong one fails.' if ok else 'THE TOLERANCE DOES NOT SEPARATE THE GROUPS.'}
`w28_optimizer_patched` computes the embedding under `torch.no_grad()` and patches
`torch.optim.Adam` to triple the learning rate (2/2 before issue 19); `w34_keys_detached`
detaches the keys' embedding (its values are right).

![distribution]({stem}.png)
""")
    print(f"target {target}: pass margin {margin_pass:.4f}, fail margin {margin_fail:.4f}; "
          f"gradients: correct <= {max(correct):.2e}, wrong >= {min(wrong):.2e}; ok={ok}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
