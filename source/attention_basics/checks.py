"""The hidden checks: hidden inputs, how student code is called on them, and the verdicts.

Grading is split in three steps so that student code never runs where verdicts are made:

1. `probes()` makes the hidden inputs from fixed seeds (deterministic).
2. `evaluate(call, defs, probes)` calls the student's definitions on them and returns
   plain arrays. It runs in the *untrusted* process, next to the student's code.
3. `verdict(case, outputs, probes)` compares those arrays with the reference, computed
   here, and raises `CheckFailed` with one line naming the failed property. It runs in
   the *trusted* process, which never executes student code.

`coursekit.lab.Lab.run_case` chains the three in one process for trusted code (the
master's solution at build time, nbgrader's validate), while `coursekit.engine` runs step 2
in a sandboxed process. Messages never show hidden inputs, test code or reference outputs.

This module depends on torch and numpy only: the build copies it into the autograder.

Its size (~650 lines): one verdict per property, each with the causes its message names
(issue 11); split by question, the shared hidden inputs and reference model would scatter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from coursekit.calling import StudentError
from coursekit.lab import Case, CheckFailed

# The untrusted side (what the sandbox imports), re-exported for the trusted side.
from .calls import (CALLS, CALLS_BY_ID, EMBED_DIM, FORWARD_SETS, IMAGE_DIM,  # noqa: F401 - re-exported
                    LOOKUP_SHAPE_NAMES, MODEL_SEED, NUM_DB, NUM_HEADS, Arrays, evaluate,
                    parameter_names, training_points)

RTOL = 1e-4
ATOL = 1e-5
_SEED = 1234  # hidden inputs; never shown to students
MODEL_BATCH = 4
_ADAM = torch.optim.Adam  # the reference's optimiser, bound before any notebook cell could patch it


def _fail(message: str) -> None:
    raise CheckFailed(message)


# --- 1. hidden inputs ------------------------------------------------------------

def _gen(offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(_SEED + offset)


_LOOKUP_SHAPES = {"single": ((1, 4), (NUM_DB, 4)), "multi": ((8, 16), (NUM_DB, 16)),
                  "batched": ((4, 3, 16), (4, NUM_DB, 16))}
DESCRIBE = {"single": "a single query", "multi": "multiple queries",
            "batched": "a batch of queries (3-D)"}


def probes(bundle: Arrays | None = None, training: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Every hidden input, by name. `bundle` (database/train/heldout images) and `training`
    (the course's settings) add the training check's points (`reference_training`)."""
    p: dict[str, torch.Tensor] = {}
    for i, (name, (qs, ks)) in enumerate(_LOOKUP_SHAPES.items()):
        g = _gen(i)
        p[f"q_{name}"] = torch.randn(qs, generator=g)
        p[f"k_{name}"] = torch.randn(ks, generator=g)
        g = _gen(40 + i)  # sharper softmax: rows must still sum to 1
        p[f"qs_{name}"] = 3 * torch.randn(qs, generator=g)
    g = _gen(20)
    perm = torch.randperm(NUM_DB, generator=g)
    p["onehot_perm"] = perm
    p["onehot_k"] = torch.nn.functional.one_hot(torch.arange(NUM_DB), NUM_DB)[perm]
    p["onehot_idx"] = torch.randint(0, NUM_DB, (5,), generator=g)
    p["onehot_q"] = torch.nn.functional.one_hot(p["onehot_idx"], NUM_DB)
    for i, (name, ws, vs) in enumerate([("single", (1, NUM_DB), (NUM_DB, IMAGE_DIM)),
                                        ("multi", (8, NUM_DB), (NUM_DB, IMAGE_DIM)),
                                        ("batched", (4, 2, NUM_DB), (4, NUM_DB, IMAGE_DIM))]):
        g = _gen(50 + i)
        p[f"w_{name}"] = torch.softmax(torch.randn(ws, generator=g), -1)
        p[f"v_{name}"] = torch.rand(vs, generator=g) * 2 - 1
    g = _gen(60)
    images = torch.rand(NUM_DB, IMAGE_DIM, generator=g) * 2 - 1
    perm = torch.randperm(NUM_DB, generator=g)
    wanted = torch.randint(0, NUM_DB, (3,), generator=g)
    p["ret_images"], p["ret_v"], p["ret_wanted"] = images, images[perm], wanted
    p["ret_w"] = torch.nn.functional.one_hot(torch.argsort(perm)[wanted], NUM_DB).float()
    g = _gen(70)
    p["model_db"] = (torch.rand(NUM_DB, IMAGE_DIM, generator=g) * 2 - 1).unsqueeze(0).expand(
        MODEL_BATCH, -1, -1).contiguous()
    p["model_img"] = torch.rand(MODEL_BATCH, 1, IMAGE_DIM, generator=g) * 2 - 1
    for tag, (offset, scale) in zip(FORWARD_SETS, ((80, 2.0), (81, 2.5))):
        for name, value in chosen_parameters(_SEED + offset, scale).items():
            p[f"fwd_{tag}.{name}"] = value
    if bundle is not None:
        for key in ("database", "train", "heldout"):
            p[f"data_{key}"] = torch.from_numpy(
                bundle[key].astype(np.float32) / 255.0 * 2 - 1).reshape(-1, IMAGE_DIM)
        if training is not None:
            p.update(reference_training(p, training).points)
    return p


def chosen_parameters(seed: int, scale: float) -> dict[str, torch.Tensor]:
    """Parameters of the lab's model that the grader chooses for the forward check: the
    default initialisation, seeded, with the embedding and the attention's projections
    scaled by `scale` and non-zero biases, so that the attention weights are far from
    uniform (the default's are within 20% of 1/100: zeroed parameters would pass)."""
    with torch.random.fork_rng(devices=[]):  # the global generator is the student's
        torch.manual_seed(seed)
        model = ReferenceAttention()
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            model.img_mlp[0].weight.mul_(scale)
            model.mha.in_proj_weight.mul_(scale)
            model.mha.in_proj_bias.copy_(0.1 * torch.randn(model.mha.in_proj_bias.shape, generator=g))
            model.mha.out_proj.bias.copy_(0.1 * torch.randn(model.mha.out_proj.bias.shape, generator=g))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass(frozen=True)
class ReferenceRun:
    """The reference's training with the course's budget: its points and held-out MSE."""

    points: dict[str, torch.Tensor]  # train_K.<parameter> and the batch train_idx_K, per point
    mse: float


def reference_training(p: dict[str, torch.Tensor], training: dict[str, Any]) -> ReferenceRun:
    """Train the lab's reference model as the lab does (Adam on the MSE of retrieval vs
    query, the course's seed, steps, batch size and learning rate) and keep its parameters
    at the start, the middle and the end, each with one batch of training queries: the
    points where the training check compares the student's gradients with these.

    Raises ValueError when the budget does not bring the reference to the target MSE (a
    course setting that no correct submission could meet).
    """
    steps, batch = int(training["steps"]), int(training["batch_size"])
    if steps < 2 or batch < 1:  # three distinct points need two steps at least
        raise ValueError(f"the training budget needs at least 2 steps and a batch of 1 or more "
                         f"(steps {steps}, batch_size {batch})")
    with torch.random.fork_rng(devices=[]):  # this side's global generator stays as it was
        torch.manual_seed(int(training["seed"]))
        model = ReferenceAttention()
    optimizer = _ADAM(model.parameters(), lr=float(training["lr"]))
    db, train = p["data_database"], p["data_train"]
    g = torch.Generator().manual_seed(int(training["seed"]))
    keep = sorted({0, steps // 2, steps})
    points: dict[str, torch.Tensor] = {}
    for step in range(steps + 1):
        idx = torch.randint(0, train.shape[0], (batch,), generator=g)
        if step in keep:
            k = str(keep.index(step))
            points.update({f"train_{k}.{n}": v.detach().clone() for n, v in model.state_dict().items()})
            points[f"train_idx_{k}"] = idx
        if step == steps:
            break
        x_q = train[idx].unsqueeze(1)
        loss = (torch.matmul(model.weights(x_q, db), db) - x_q).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    run = ReferenceRun(points, heldout_mse(model, p))
    target = training.get("target_mse")
    if target is not None and not run.mse <= float(target):
        raise ValueError(f"the training budget does not bring the reference model to the target: held-out "
                         f"MSE {run.mse:.4f} > {float(target):.4f} (see docs/calibration.md)")
    return run


def heldout_mse(model: "ReferenceAttention", p: dict[str, torch.Tensor]) -> float:
    """Held-out MSE of `attn_output_weights @ database` against the queries, in float64."""
    ref = ReferenceAttention().double()
    ref.load_state_dict({k: v.detach().double() for k, v in model.state_dict().items()})
    db, held = p["data_database"].double(), p["data_heldout"].double()
    with torch.no_grad():
        w = ref.weights(held.unsqueeze(1), db)
    return float((torch.matmul(w, db) - held.unsqueeze(1)).pow(2).mean())


def load_bundle(path: str | Path) -> Arrays:
    """The bundled MNIST slice (uint8 arrays database/train/heldout), read without pickle."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in ("database", "train", "heldout")}



# --- 3. verdicts (trusted side) --------------------------------------------------

class ReferenceAttention(nn.Module):
    """The lab's AttentionTest (given __init__, reference forward), for recomputing."""

    def __init__(self, embed_dim: int = EMBED_DIM, num_heads: int = NUM_HEADS) -> None:
        super().__init__()
        self.img_mlp = nn.Sequential(nn.Linear(IMAGE_DIM, embed_dim))
        self.mha = nn.MultiheadAttention(embed_dim=embed_dim, num_heads=num_heads, batch_first=True)

    def weights(self, img: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
        """Attention weights of queries `img` (B, 1, 784) over databases `db` (B, N, 784)
        or one database (N, 784) shared by every query (embedded once: the same numbers)."""
        x_q = self.img_mlp(img)
        x_kv = self.img_mlp(db) if db.dim() == 3 else self.img_mlp(db).expand(img.shape[0], -1, -1)
        return self.mha(x_q, x_kv, x_kv)[1]


def _reference_model(p: dict[str, torch.Tensor], prefix: str) -> ReferenceAttention:
    """The reference model (float64) with the grader's parameter set `prefix`."""
    model = ReferenceAttention().double()
    model.load_state_dict({k: p[v].double() for k, v in parameter_names(p, prefix).items()})
    return model.eval()


def _close(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, atol: float = ATOL) -> bool:
    a = torch.as_tensor(np.asarray(a, dtype=np.float64))
    b = torch.as_tensor(np.asarray(b, dtype=np.float64))
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=RTOL, atol=atol))


def _scores(p: dict[str, torch.Tensor], q: str, k: str) -> torch.Tensor:
    return torch.matmul(p[q].double(), p[k].double().transpose(-2, -1))


Outputs = dict[str, "Arrays | StudentError"]

# What the lab's mistakes look like, named where a verdict recognises one (issue 11).
HARD_SOFTMAX = "applies a softmax when soft=False (hard attention returns the raw scores Q Kᵀ)"
HARD_SCALED = "scales by √d when soft=False (hard attention: raw scores Q Kᵀ, no scaling)"
HARD_OTHER = "the result is not the raw scores Q Kᵀ (soft=False: no softmax, no scaling)"
SOFT_SCALED = "scales the scores by √d: the lab's softmax(Q Kᵀ) has no scaling"
SOFT_OVER_QUERIES = "softmax over the queries, not the keys (take it over the last dimension)"
SOFT_OVER_BATCH = "softmax over the batch, not the keys (take it over the last dimension)"
SOFT_RAW = "the weights are not softmax(Q Kᵀ): these are the raw scores (soft=True applies a softmax over the keys)"
SOFT_OTHER = "the weights are not softmax(Q Kᵀ) over the keys"
# The input kinds of retrieve's hidden cases (DESCRIBE names lookup's).
DESCRIBE_WEIGHTS = {"single": "the weights of a single query", "multi": "the weights of multiple queries",
                    "batched": "a batch of weights (3-D)"}
_BATCHED = {"lookup": DESCRIBE["batched"], "retrieve": DESCRIBE_WEIGHTS["batched"]}


class _Why(Exception):
    """Why one call fails a property, without saying which call: the verdict says where.
    `student`: the student's code failed (raised, not implemented...), not a property."""

    def __init__(self, text: str, student: bool = False, where: str | None = None) -> None:
        super().__init__(text)
        self.student = student
        self.where = where  # says where, instead of the verdict's mode (`hard lookup`)


def _arrays(outputs: Outputs, call_id: str) -> Arrays:
    out = outputs.get(call_id)
    if isinstance(out, StudentError):
        raise _Why(out.kind, student=True)
    if out is None:
        raise _Why("gave no result", student=True)
    return out


def _get(outputs: Outputs, call_id: str, what: str) -> Arrays:
    """The arrays of one call, or a failure naming what went wrong in the student's code."""
    try:
        return _arrays(outputs, call_id)
    except _Why as why:
        _fail(f"{what}: {why}")


def _checked(outputs: Outputs, call_id: str, shape: tuple[int, ...], need_float: bool = True) -> np.ndarray:
    """One call's value, of the expected shape and type; else `_Why`."""
    out = _arrays(outputs, call_id)
    value = out.get("value")
    if value is None or tuple(value.shape) != shape:
        raise _Why(f"returned a result of the wrong shape (expected {shape})")
    if value.dtype.kind not in "fiub":
        raise _Why("returned values that are not numbers")
    if need_float and value.dtype.kind != "f":  # the array's own dtype: no claim of the job's
        raise _Why("must return a float tensor, not an integer one")
    return value


def _student_error_line(o: Outputs, target: str, why: _Why) -> str | None:
    """One line for a failure of the student's code that is not this case's alone.

    When every call of `target` the grader made failed the same way, the line names the
    function only (`lookup: not implemented yet`); when exactly the batched ones did, it
    names the batched input (`lookup with a batch of queries (3-D): raised RuntimeError`).
    Then every case of the question says the same line, which the feedback lists once.
    """
    ids = [c.id for c in CALLS if c.target == target and c.id in o]
    failing = [c for c in ids if isinstance(o[c], StudentError) and o[c].kind == str(why)]
    if failing and failing == ids:
        return f"{target}: {why}"
    if failing and failing == [c for c in ids if c.endswith("_batched")]:
        return f"{target} with {_BATCHED[target]}: {why}"
    return None


def _judge_all(o: Outputs, target: str, modes: dict[str, str], kinds: dict[str, str],
               judge: Callable[[str, str], None]) -> None:
    """Run `judge(mode, kind)` for every mode and input kind; fail with one line.

    The line gives the first failure's cause and names exactly where that cause occurs:
    the modes (`soft lookup`, `hard lookup`; `lookup` when all) and input kinds that fail
    with it (none named when every kind does).
    """
    failures: list[tuple[str, str, _Why]] = []
    for mode in modes:
        for kind in kinds:
            try:
                judge(mode, kind)
            except _Why as why:
                failures.append((mode, kind, why))
    if not failures:
        return
    mode, kind, why = failures[0]
    if why.student and (line := _student_error_line(o, target, why)):
        _fail(line)
    same = {(m, k) for m, k, w in failures if str(w) == str(why)}
    fail_modes = [m for m in modes if any(m == fm for fm, _ in same)]
    fail_kinds = [k for k in kinds if any(k == fk for _, fk in same)]
    if same != {(m, k) for m in fail_modes for k in fail_kinds}:  # not a rectangle: the first only
        fail_modes, fail_kinds = [mode], [kind]
    where = why.where or (modes[fail_modes[0]] if len(fail_modes) == 1 else target)
    if len(fail_kinds) < len(kinds):
        where += " with " + " and ".join(kinds[k] for k in fail_kinds)
    _fail(f"{where}: {why}")


def _lookup_shape(p: dict[str, torch.Tensor], name: str) -> tuple[int, ...]:
    return tuple(p[f"q_{name}"].shape[:-1]) + (p[f"k_{name}"].shape[-2],)


def _looks_softmaxed(got: np.ndarray, scores: torch.Tensor) -> bool:
    """Rows in [0, 1] summing to 1 that rank the keys as the scores do: a softmax was applied."""
    got = np.asarray(got, dtype=np.float64)
    return bool(np.isfinite(got).all() and (got >= 0).all() and (got <= 1 + ATOL).all()
                and _close(got.sum(-1), np.ones(got.shape[:-1])) and _orders_like(got, scores))


def _hard_cause(got: np.ndarray, scores: torch.Tensor, d: int) -> _Why:
    """Why hard weights are not the raw scores: a softmax, the √d scaling, or else."""
    if _close(got, scores / d ** 0.5):
        return _Why(HARD_SCALED)
    if _looks_softmaxed(got, scores):
        return _Why(HARD_SOFTMAX)
    return _Why(HARD_OTHER)


def _soft_cause(got: np.ndarray, scores: torch.Tensor, d: int) -> _Why | None:
    """The recognised mistake behind soft weights that are not softmax(QKᵀ), if any."""
    if _close(got, torch.softmax(scores / d ** 0.5, dim=-1)):
        return _Why(SOFT_SCALED)
    for dim in range(scores.dim() - 1):
        if _close(got, torch.softmax(scores, dim=dim)):
            return _Why(SOFT_OVER_QUERIES if dim == scores.dim() - 2 else SOFT_OVER_BATCH)
    if _close(got, scores):
        return _Why(SOFT_RAW)
    return None


_SOFT, _HARD = {"soft": "soft lookup"}, {"hard": "hard lookup"}


def v_lookup_shapes(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Soft and hard lookup give (n_q, n_k) or (B, n_q, n_k) weights."""
    _judge_all(o, "lookup", {**_SOFT, **_HARD}, DESCRIBE, lambda mode, name: _checked(
        o, f"lookup_{mode}_{name}", _lookup_shape(p, name)))


def v_lookup_hard_scores(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Hard lookup (`soft=False`) returns the raw scores QKᵀ: no softmax, no scaling."""
    def judge(mode: str, name: str) -> None:
        got = _checked(o, f"lookup_hard_{name}", _lookup_shape(p, name))
        scores = _scores(p, f"q_{name}", f"k_{name}")
        if not _close(got, scores):
            raise _hard_cause(got, scores, p[f"q_{name}"].shape[-1])

    _judge_all(o, "lookup", _HARD, DESCRIBE, judge)


def v_lookup_one_hot(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Integer one-hot queries against shuffled one-hot keys find exactly the right key."""
    expected = np.zeros((5, NUM_DB))
    expected[np.arange(5), torch.argsort(p["onehot_perm"])[p["onehot_idx"]].numpy()] = 1.0
    wanted = {"2d": expected, "batched": np.broadcast_to(expected, (2, 5, NUM_DB))}

    def judge(mode: str, kind: str) -> None:
        want = wanted[kind]
        got = _checked(o, "lookup_onehot" + ("_batched" if kind == "batched" else ""), want.shape)
        if not np.array_equal(got.astype(np.float64), want):
            why = _hard_cause(got.astype(np.float64), torch.from_numpy(np.ascontiguousarray(want)), NUM_DB)
            if str(why) == HARD_OTHER:
                why = _Why("one-hot queries against shuffled one-hot keys must give exactly one 1 "
                           "per row, at the matching key")
            why.where = "hard lookup"  # a softmax or scaling reads as in the raw-scores case
            raise why

    _judge_all(o, "lookup", {"hard": "hard lookup of one-hot integer tensors"},
               {"2d": "2-D inputs", "batched": "batched inputs (3-D)"}, judge)


def v_lookup_soft_softmax(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Soft lookup (also the default) equals softmax(QKᵀ) over the keys."""
    def judge(mode: str, name: str) -> None:
        scores = _scores(p, f"q_{name}", f"k_{name}")
        got = _checked(o, f"lookup_{mode}_{name}", tuple(scores.shape))
        if not _close(got, torch.softmax(scores, dim=-1)):
            if mode == "default":
                raise _Why("does not default to soft=True")
            raise _soft_cause(got, scores, p[f"q_{name}"].shape[-1]) or _Why(SOFT_OTHER)

    _judge_all(o, "lookup", _SOFT, DESCRIBE, judge)
    _judge_all(o, "lookup", {"default": "lookup(Q, K) without `soft`"}, DESCRIBE, judge)


def _orders_like(weights: np.ndarray, scores: torch.Tensor) -> bool:
    """Each row's weights rank the keys as its scores do (softmax is strictly increasing).

    The key with the highest score gets (within tolerance, for near-ties) the largest
    weight, and strictly more than the key with the lowest score: weights that ignore
    the scores, constant ones included, fail.
    """
    s = scores.numpy()
    top = np.take_along_axis(weights, s.argmax(-1)[..., None], -1)[..., 0]
    bottom = np.take_along_axis(weights, s.argmin(-1)[..., None], -1)[..., 0]
    largest = top >= weights.max(-1) - (ATOL + RTOL * np.abs(weights.max(-1)))
    return bool(largest.all() and (top > bottom).all())


# Soft weights are a softmax of the scores at some temperature t > 0 (the lab's t = 1, or
# the √d scaling's t = 1/√d), within these: a hard maximum or any other distribution
# that merely orders the keys as the scores do is not.
TEMPERATURE_ATOL = 1e-4


def softmax_temperature(got: np.ndarray, scores: torch.Tensor) -> float | None:
    """The t > 0 with got ≈ softmax(t · scores) over the last dimension, or None.

    t is fitted (least squares over every row) on the logarithms of the weights above
    1e-30, centred per row; then every weight must agree within TEMPERATURE_ATOL (and
    RTOL). A one-hot row has a single positive weight and no t of its own: it agrees only
    where the fitted softmax is itself one-hot to that tolerance.
    """
    w = torch.from_numpy(np.asarray(got, dtype=np.float64))
    s = scores.double()
    if w.shape != s.shape or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        return None
    positive = w > 1e-30
    count = positive.sum(-1, keepdim=True).clamp(min=1)
    log_w = torch.where(positive, w.clamp(min=1e-300).log(), torch.zeros_like(w))
    mean_log = log_w.sum(-1, keepdim=True) / count
    mean_s = torch.where(positive, s, torch.zeros_like(s)).sum(-1, keepdim=True) / count
    ds = torch.where(positive, s - mean_s, torch.zeros_like(s))
    dl = torch.where(positive, log_w - mean_log, torch.zeros_like(w))
    denominator = float((ds * ds).sum())
    t = float((ds * dl).sum()) / denominator if denominator > 0 else 1.0
    if not (np.isfinite(t) and t > 0):
        return None
    fitted = torch.softmax(t * s, dim=-1)
    return t if bool(torch.allclose(w, fitted, rtol=RTOL, atol=TEMPERATURE_ATOL)) else None


def v_lookup_soft_rows(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Soft weights on sharper queries are a softmax of the scores QKᵀ over the keys, at
    some temperature (the lab's, or scaled by √d): rows are distributions that follow the
    scores as a softmax does, not a hard maximum or another ordering of the keys."""
    def judge(mode: str, name: str) -> None:
        got = _checked(o, f"lookup_sharp_{name}", _lookup_shape(p, name)).astype(np.float64)
        scores = _scores(p, f"qs_{name}", f"k_{name}")
        if not np.isfinite(got).all():
            raise _Why("the weights contain inf or nan")
        if (got < 0).any() or not _close(got.sum(-1), np.ones(got.shape[:-1])):
            raise _soft_cause(got, scores, p[f"qs_{name}"].shape[-1]) or _Why(
                "rows of the weights do not sum to 1")
        if not _orders_like(got, scores):
            raise _soft_cause(got, scores, p[f"qs_{name}"].shape[-1]) or _Why(
                "the weights do not order the keys as the scores Q Kᵀ do "
                "(the best-matching key must get the largest weight)")
        if softmax_temperature(got, scores) is None:
            raise _soft_cause(got, scores, p[f"qs_{name}"].shape[-1]) or _Why(
                "the weights are not a softmax of the scores Q Kᵀ over the keys "
                "(a hard maximum, one-hot rows, is not soft attention)")

    _judge_all(o, "lookup", _SOFT, DESCRIBE, judge)


def v_retrieve_values(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """retrieve(weights, V) equals weights @ V, for 2-D and batched inputs."""
    def judge(mode: str, name: str) -> None:
        reference = torch.matmul(p[f"w_{name}"].double(), p[f"v_{name}"].double())
        got = _checked(o, f"retrieve_{name}", tuple(reference.shape), need_float=False)
        if not _close(got, reference):
            raise _Why("the result is not weights @ V")

    _judge_all(o, "retrieve", {"retrieve": "retrieve"}, DESCRIBE_WEIGHTS, judge)


def v_retrieve_one_hot(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """One-hot weights over shuffled values retrieve exactly the matching image."""
    def judge(mode: str, kind: str) -> None:
        got = _checked(o, "retrieve_onehot", (3, IMAGE_DIM), need_float=False)
        if not np.array_equal(got.astype(np.float32), p["ret_images"][p["ret_wanted"]].numpy()):
            raise _Why("one-hot weights over shuffled values must return exactly the matching image",
                       where="retrieve")

    _judge_all(o, "retrieve", {"retrieve": "retrieve with one-hot weights"}, {"onehot": ""}, judge)


def _forward(o: Outputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Output and weights of forward for each of the grader's parameter sets, checked for shape."""
    out = _get(o, "forward", "AttentionTest.forward")
    shapes = {"output": (MODEL_BATCH, 1, IMAGE_DIM), "weights": (MODEL_BATCH, 1, NUM_DB)}
    for tag in FORWARD_SETS:
        for key, shape in shapes.items():
            value = out.get(f"{key}_{tag}")
            if value is None or tuple(value.shape) != shape:
                label = "output" if key == "output" else "attn_output_weights"
                _fail(f"AttentionTest.forward: {label} has the wrong shape (expected {shape})")
    return {tag: (out[f"output_{tag}"].astype(np.float64), out[f"weights_{tag}"].astype(np.float64))
            for tag in FORWARD_SETS}


def v_forward_shapes(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """forward returns output (B, 1, 784) and weights (B, 1, 100)."""
    _forward(o)


def _model_weights(p: dict[str, torch.Tensor], tag: str) -> torch.Tensor:
    """The reference's attention weights on the forward inputs, with the grader's set `tag`."""
    with torch.no_grad():
        return _reference_model(p, f"fwd_{tag}").weights(p["model_img"].double(), p["model_db"].double())


def v_forward_weights(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """The weights are a distribution over the 100 images and are the model's attention
    weights, with parameters the grader chose and loaded (two sets: they must follow them)."""
    for tag, (_, w) in _forward(o).items():
        if (w < 0).any() or not _close(w.sum(-1), np.ones(w.shape[:-1])):
            _fail("AttentionTest.forward: the weights are not a distribution over the 100 "
                  "database images (rows must be non-negative and sum to 1)")
        if not _close(w, _model_weights(p, tag), atol=1e-4):
            _fail("AttentionTest.forward: the weights are not the attention weights of self.mha "
                  "for the embedded query against the embedded database (keys = values)")


def v_forward_output(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """The output is the retrieval with the model's attention weights @ image_database.

    The weights are the reference's at the grader's parameters (as in v_forward_weights),
    not taken from forward: an output that ignores the model must not pass by matching
    its own made-up weights.
    """
    for tag, (output, _) in _forward(o).items():
        expected = torch.matmul(_model_weights(p, tag), p["model_db"].double())
        if not _close(output, expected, atol=1e-4):
            _fail("AttentionTest.forward: the output is not the retrieval "
                  "attn_output_weights @ image_database (with the attention weights of self.mha)")


# The training check compares gradients at the grader's points (docs/calibration.md):
# float32 on a CPU or a GPU against float64 here differs by far less than these.
LOSS_RTOL = 1e-4
GRAD_RTOL = 1e-3
_NO_GRADIENT_HINT = {"img_mlp": " (is the embedding computed under torch.no_grad() or detached?)",
                     "mha": " (are the attention weights detached?)"}


def _reference_gradients(p: dict[str, torch.Tensor], point: str) -> tuple[float, dict[str, torch.Tensor]]:
    """The lab's training loss and its gradients at the grader's point, in float64."""
    model = _reference_model(p, f"train_{point}")
    x_q = p["data_train"][p[f"train_idx_{point}"]].double().unsqueeze(1)
    db = p["data_database"].double()
    loss = (torch.matmul(model.weights(x_q, db), db) - x_q).pow(2).mean()
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(loss.detach()), {n: (g if g is not None else torch.zeros_like(t))
                         for n, g, t in zip(names, grads, params)}


def _references(p: dict[str, torch.Tensor]) -> dict[str, tuple[float, dict[str, torch.Tensor]]]:
    """The reference's loss and gradients at every training point, computed once per verdict."""
    return {point: _reference_gradients(p, point) for point in training_points(p)}


def gradient_errors(o: Outputs, p: dict[str, torch.Tensor],
                    references: dict[str, tuple[float, dict[str, torch.Tensor]]] | None = None
                    ) -> dict[str, float]:
    """Relative error of the student's gradients, per point and parameter (`0.img_mlp.0.weight`):
    |g - g_ref| / |g_ref| (|g| where the reference's is zero). For calibration and the verdict;
    `references` (from `_references`) saves recomputing them."""
    out = _get(o, "training", "training: AttentionTest.forward")
    errors = {}
    for point, (_, grads) in (references or _references(p)).items():
        for name, ref in grads.items():
            got = out.get(f"grad_{point}.{name}")
            if got is None or tuple(got.shape) != tuple(ref.shape) or not np.isfinite(got).all():
                errors[f"{point}.{name}"] = float("inf")
                continue
            diff = float(torch.linalg.vector_norm(torch.from_numpy(got.astype(np.float64)) - ref))
            scale = float(torch.linalg.vector_norm(ref))
            errors[f"{point}.{name}"] = diff / scale if scale > 0 else diff
    return errors


def v_training(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Training the student's model follows the lab's: at the grader's points (parameters
    of the reference's run with the course's budget, which reaches the target held-out
    MSE, and one batch each) the training loss and its gradients for every parameter are
    the reference's. Nothing about how the job trains is taken from it."""
    out = _get(o, "training", "training: AttentionTest.forward")
    if len(training_points(p)) != 3:  # a grader without its points must not pass everyone
        raise RuntimeError("the hidden inputs hold no training points (probes() without the settings)")
    references = _references(p)
    errors = gradient_errors(o, p, references)
    for point, (loss, grads) in references.items():
        claimed = out.get(f"loss_{point}")
        if (claimed is None or claimed.shape != () or not np.isfinite(claimed)
                or abs(float(claimed) - loss) > LOSS_RTOL * abs(loss)):
            _fail("training: the training loss (output − query)² is not the lab's model's at the "
                  "grader's parameters: the output is not the retrieval with self.mha's weights")
        for name in grads:
            if errors[f"{point}.{name}"] <= GRAD_RTOL:
                continue
            module = name.split(".")[0]
            got = out.get(f"grad_{point}.{name}")
            if got is not None and got.shape == tuple(grads[name].shape) and not np.any(got):
                _fail(f"training: no gradient of the loss reaches self.{module}"
                      f"{_NO_GRADIENT_HINT.get(module, '')}: training cannot reach the target held-out MSE")
            _fail(f"training: the gradient of the loss for self.{module} is not the lab's model's: "
                  "training does not follow the lab's, which reaches the target held-out MSE")


def _ids(prefix: str) -> tuple[str, ...]:
    return tuple(c.id for c in CALLS if c.id.startswith(prefix))


CASES: dict[str, Case] = {
    "lookup_shapes": Case("lookup", _ids("lookup_soft_") + _ids("lookup_hard_"), v_lookup_shapes),
    "lookup_hard_scores": Case("lookup", _ids("lookup_hard_"), v_lookup_hard_scores),
    "lookup_one_hot": Case("lookup", _ids("lookup_onehot"), v_lookup_one_hot),
    "lookup_soft_softmax": Case("lookup", _ids("lookup_soft_") + _ids("lookup_default_"),
                                v_lookup_soft_softmax),
    "lookup_soft_rows": Case("lookup", _ids("lookup_sharp_"), v_lookup_soft_rows),
    "retrieve_values": Case("retrieve", ("retrieve_single", "retrieve_multi", "retrieve_batched"),
                            v_retrieve_values),
    "retrieve_one_hot": Case("retrieve", ("retrieve_onehot",), v_retrieve_one_hot),
    "forward_shapes": Case("forward", ("forward",), v_forward_shapes),
    "forward_weights": Case("forward", ("forward",), v_forward_weights),
    "forward_output": Case("forward", ("forward",), v_forward_output),
    "training_mse": Case("training", ("training",), v_training),
}


def verdict(case_id: str, outputs: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Judge one hidden case from the outputs of its calls; raises CheckFailed."""
    CASES[case_id].verdict(outputs, p)

