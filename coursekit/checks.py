"""The hidden checks: hidden inputs, how student code is called on them, and the verdicts.

Grading is split in three steps so that student code never runs where verdicts are made:

1. `probes()` makes the hidden inputs from fixed seeds (deterministic).
2. `evaluate(call, defs, probes)` calls the student's definitions on them and returns
   plain arrays. It runs in the *untrusted* process, next to the student's code.
3. `verdict(case, outputs, probes)` compares those arrays with the reference, computed
   here, and raises `CheckFailed` with one line naming the failed property. It runs in
   the *trusted* process, which never executes student code.

`run_case` chains the three in one process; the thin test cells of the notebook call it
(that is what `grader.check` and nbgrader do), while `coursekit.engine` runs step 2 in a
sandboxed process. Messages never show hidden inputs, test code or reference outputs.

This module depends on torch and numpy only: the build copies it into the autograder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

# The untrusted side (what the sandbox imports), re-exported for the trusted side.
from coursekit.calls import (CALLS, CALLS_BY_ID, EMBED_DIM, IMAGE_DIM, LOOKUP_SHAPE_NAMES,  # noqa: F401
                             MODEL_SEED, NUM_DB, NUM_HEADS, Arrays, Call, StudentError,
                             _exception_name, evaluate)

RTOL = 1e-4
ATOL = 1e-5
_SEED = 1234  # hidden inputs; never shown to students
MODEL_BATCH = 4
CONFIG_FILE = "attention_config.json"  # written beside this module in the autograder


class CheckFailed(AssertionError):
    """A property of the student's code does not hold; the message is one line."""


def _fail(message: str) -> None:
    raise CheckFailed(message)


# --- 1. hidden inputs ------------------------------------------------------------

def _gen(offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(_SEED + offset)


_LOOKUP_SHAPES = {"single": ((1, 4), (NUM_DB, 4)), "multi": ((8, 16), (NUM_DB, 16)),
                  "batched": ((4, 3, 16), (4, NUM_DB, 16))}
DESCRIBE = {"single": "a single query", "multi": "multiple queries",
            "batched": "a batch of queries (3-D)"}


def probes(bundle: Arrays | None = None) -> dict[str, torch.Tensor]:
    """Every hidden input, by name. `bundle` (database/train/heldout images) feeds training."""
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
    if bundle is not None:
        for key in ("database", "train", "heldout"):
            p[f"data_{key}"] = torch.from_numpy(
                bundle[key].astype(np.float32) / 255.0 * 2 - 1).reshape(-1, IMAGE_DIM)
    return p


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


def _reference_model(out: Arrays, what: str) -> ReferenceAttention:
    model = ReferenceAttention().double()
    state = {k.removeprefix("param."): torch.from_numpy(v) for k, v in out.items()
             if k.startswith("param.")}
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
        _fail(f"{what}: the model's parameters do not match the given __init__ "
              "(one img_mlp Linear(784, 32) and one nn.MultiheadAttention)")
    try:
        model.load_state_dict({k: v.double() for k, v in state.items()})
    except Exception:
        _fail(f"{what}: the model's parameters cannot be loaded into the given architecture")
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
    if need_float and not bool(out.get("is_float", np.array(False))):
        raise _Why("must return a float tensor, not an integer one")
    if value.dtype.kind not in "fiub":
        raise _Why("returned values that are not numbers")
    return value


def _value(outputs: Outputs, call_id: str, what: str, shape: tuple[int, ...],
           need_float: bool = True) -> np.ndarray:
    try:
        return _checked(outputs, call_id, shape, need_float)
    except _Why as why:
        _fail(f"{what}: {why}")


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


def v_lookup_soft_rows(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Each row of the soft weights is a distribution (non-negative, summing to 1) that
    ranks the keys as the scores QKᵀ do."""
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


def _forward(o: Outputs) -> tuple[Arrays, np.ndarray, np.ndarray]:
    out = _get(o, "forward", "AttentionTest.forward")
    shapes = {"output": (MODEL_BATCH, 1, IMAGE_DIM), "weights": (MODEL_BATCH, 1, NUM_DB)}
    for key, shape in shapes.items():
        if key not in out or tuple(out[key].shape) != shape:
            label = "output" if key == "output" else "attn_output_weights"
            _fail(f"AttentionTest.forward: {label} has the wrong shape (expected {shape})")
    return out, out["output"].astype(np.float64), out["weights"].astype(np.float64)


def v_forward_shapes(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """forward returns output (B, 1, 784) and weights (B, 1, 100)."""
    _forward(o)


def v_forward_weights(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """The weights are a distribution over the 100 images and come from the model's attention."""
    out, _, w = _forward(o)
    if (w < 0).any() or not _close(w.sum(-1), np.ones(w.shape[:-1])):
        _fail("AttentionTest.forward: the weights are not a distribution over the 100 "
              "database images (rows must be non-negative and sum to 1)")
    model = _reference_model(out, "AttentionTest.forward")
    with torch.no_grad():
        expected = model.weights(p["model_img"].double(), p["model_db"].double())
    if not _close(w, expected, atol=1e-4):
        _fail("AttentionTest.forward: the weights are not the attention weights of self.mha "
              "for the embedded query against the embedded database (keys = values)")


def v_forward_output(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """The output is the retrieval with the model's attention weights @ image_database.

    The weights are recomputed from the returned parameters (as in v_forward_weights), not
    taken from forward: an output that ignores the model must not pass by matching its own
    made-up weights.
    """
    out, output, _ = _forward(o)
    model = _reference_model(out, "AttentionTest.forward")
    db = p["model_db"].double()
    with torch.no_grad():
        expected = torch.matmul(model.weights(p["model_img"].double(), db), db)
    if not _close(output, expected, atol=1e-4):
        _fail("AttentionTest.forward: the output is not the retrieval "
              "attn_output_weights @ image_database (with the attention weights of self.mha)")


def heldout_mse(o: Outputs, p: dict[str, torch.Tensor]) -> float:
    """Held-out MSE of the trained model, recomputed here from its parameters."""
    out = _get(o, "training", "training: AttentionTest.forward")
    model = _reference_model(out, "training")
    db, held = p["data_database"].double(), p["data_heldout"].double()
    with torch.no_grad():
        w = model.weights(held.unsqueeze(1), db)
    claimed = out.get("weights")
    if claimed is None or tuple(claimed.shape) != tuple(w.shape) or not _close(claimed, w, atol=1e-4):
        _fail("training: the weights returned by forward are not the attention weights "
              "of the trained model")
    return float((torch.matmul(w, db) - held.unsqueeze(1)).pow(2).mean())


def v_training_mse(o: Outputs, p: dict[str, torch.Tensor], target_mse: float = 0.0) -> None:
    """Training the student's model (fixed budget) reaches the target held-out MSE."""
    mse = heldout_mse(o, p)
    if not np.isfinite(mse):
        _fail("training: the held-out MSE is not finite (nan or inf)")
    if mse > target_mse:
        _fail(f"training: after the fixed training budget the held-out MSE is {mse:.3f}, "
              f"above the target {target_mse:.3f} (the model does not learn to retrieve "
              "matching images)")


@dataclass(frozen=True)
class Case:
    """One hidden test case: the question it scores, the calls it needs, its verdict."""

    question: str
    calls: tuple[str, ...]
    verdict: Callable[..., None]


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
    "training_mse": Case("training", ("training",), v_training_mse),
}


def verdict(case_id: str, outputs: Outputs, p: dict[str, torch.Tensor],
            training: dict[str, Any] | None = None) -> None:
    """Judge one hidden case from the outputs of its calls; raises CheckFailed."""
    case = CASES[case_id]
    if case_id == "training_mse":
        case.verdict(outputs, p, target_mse=(training or {})["target_mse"])
    else:
        case.verdict(outputs, p)


# --- in one process (the notebook's thin test cells) -----------------------------

def bundled_training() -> tuple[dict[str, Any], Arrays]:
    """Training settings and data bundled beside this module by the build."""
    import json

    here = Path(__file__).resolve().parent
    settings = json.loads((here / CONFIG_FILE).read_text())
    return settings, load_bundle(here / settings["bundle_file"])


def run_case(case_id: str, training: dict[str, Any] | None = None, bundle: Arrays | None = None,
             **defs: Any) -> None:
    """Evaluate and judge one hidden case in this process (for the notebook's test cells).

    Without `training`/`bundle`, the training case reads the files bundled beside this module.
    """
    case = CASES[case_id]
    if "training" in case.calls and (training is None or bundle is None):
        training, bundle = bundled_training()
    p = probes(bundle)
    outputs: Outputs = {}
    for call_id in case.calls:
        try:
            outputs[call_id] = evaluate(CALLS_BY_ID[call_id], defs, p, training)
        except StudentError as err:
            outputs[call_id] = err
    verdict(case_id, outputs, p, training)
