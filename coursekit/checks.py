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
        x_q, x_kv = self.img_mlp(img), self.img_mlp(db)
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


def _get(outputs: Outputs, call_id: str, what: str) -> Arrays:
    """The arrays of one call, or a failure naming what went wrong in the student's code."""
    out = outputs.get(call_id)
    if isinstance(out, StudentError):
        _fail(f"{what}: {out.kind}")
    if out is None:
        _fail(f"{what}: gave no result")
    return out


def _value(outputs: Outputs, call_id: str, what: str, shape: tuple[int, ...],
           need_float: bool = True) -> np.ndarray:
    out = _get(outputs, call_id, what)
    value = out.get("value")
    if value is None or tuple(value.shape) != shape:
        _fail(f"{what}: returned a result of the wrong shape (expected {shape})")
    if need_float and not bool(out.get("is_float", np.array(False))):
        _fail(f"{what}: must return a float tensor, not an integer one")
    if value.dtype.kind not in "fiub":
        _fail(f"{what}: returned values that are not numbers")
    return value


def _lookup_shape(p: dict[str, torch.Tensor], name: str) -> tuple[int, ...]:
    return tuple(p[f"q_{name}"].shape[:-1]) + (p[f"k_{name}"].shape[-2],)


def v_lookup_shapes(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Soft and hard lookup give (n_q, n_k) or (B, n_q, n_k) weights."""
    for name in _LOOKUP_SHAPES:
        for mode in ("soft", "hard"):
            _value(o, f"lookup_{mode}_{name}", f"{mode} lookup with {DESCRIBE[name]}",
                   _lookup_shape(p, name))


def v_lookup_hard_scores(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Hard lookup (`soft=False`) returns the raw scores QKᵀ: no softmax, no scaling."""
    for name in _LOOKUP_SHAPES:
        got = _value(o, f"lookup_hard_{name}", f"hard lookup with {DESCRIBE[name]}",
                     _lookup_shape(p, name))
        if not _close(got, _scores(p, f"q_{name}", f"k_{name}")):
            _fail(f"hard lookup: with soft=False the result must be the raw scores Q Kᵀ "
                  f"(no softmax, no scaling), wrong for {DESCRIBE[name]}")


def v_lookup_one_hot(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Integer one-hot queries against shuffled one-hot keys find exactly the right key."""
    expected = np.zeros((5, NUM_DB))
    expected[np.arange(5), torch.argsort(p["onehot_perm"])[p["onehot_idx"]].numpy()] = 1.0
    got = _value(o, "lookup_onehot", "hard lookup of one-hot integer tensors", (5, NUM_DB))
    if not np.array_equal(got.astype(np.float64), expected):
        _fail("hard lookup: one-hot queries against shuffled one-hot keys must give exactly "
              "one 1 per row, at the matching key")
    got = _value(o, "lookup_onehot_batched", "batched hard lookup of one-hot integer tensors",
                 (2, 5, NUM_DB))
    if not np.array_equal(got.astype(np.float64), np.broadcast_to(expected, (2, 5, NUM_DB))):
        _fail("hard lookup: batched one-hot queries do not find their matching keys")


def v_lookup_soft_softmax(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """Soft lookup (also the default) equals softmax(QKᵀ) over the keys."""
    for name in _LOOKUP_SHAPES:
        reference = torch.softmax(_scores(p, f"q_{name}", f"k_{name}"), dim=-1)
        got = _value(o, f"lookup_soft_{name}", f"soft lookup with {DESCRIBE[name]}",
                     tuple(reference.shape))
        if not _close(got, reference):
            _fail(f"soft lookup: the weights are not softmax(Q Kᵀ) over the keys for {DESCRIBE[name]}")
        got = _value(o, f"lookup_default_{name}", "lookup without the soft argument",
                     tuple(reference.shape))
        if not _close(got, reference):
            _fail("soft lookup: lookup(Q, K) without `soft` must default to soft=True")


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
    for name in _LOOKUP_SHAPES:
        got = _value(o, f"lookup_sharp_{name}", f"soft lookup with {DESCRIBE[name]}",
                     _lookup_shape(p, name)).astype(np.float64)
        if not np.isfinite(got).all():
            _fail(f"soft lookup: the weights contain inf or nan for {DESCRIBE[name]}")
        if (got < 0).any() or not _close(got.sum(-1), np.ones(got.shape[:-1])):
            _fail(f"soft lookup: rows of the weights do not sum to 1 for {DESCRIBE[name]}")
        if not _orders_like(got, _scores(p, f"qs_{name}", f"k_{name}")):
            _fail("soft lookup: the weights do not order the keys as the scores Q Kᵀ do "
                  f"(the best-matching key must get the largest weight) for {DESCRIBE[name]}")


def v_retrieve_values(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """retrieve(weights, V) equals weights @ V, for 2-D and batched inputs."""
    for name in _LOOKUP_SHAPES:
        reference = torch.matmul(p[f"w_{name}"].double(), p[f"v_{name}"].double())
        got = _value(o, f"retrieve_{name}", f"retrieve with {DESCRIBE[name].replace('queries', 'weights')}",
                     tuple(reference.shape), need_float=False)
        if not _close(got, reference):
            _fail(f"retrieve: the result is not weights @ V for "
                  f"{DESCRIBE[name].replace('queries', 'weights')}")


def v_retrieve_one_hot(o: Outputs, p: dict[str, torch.Tensor]) -> None:
    """One-hot weights over shuffled values retrieve exactly the matching image."""
    got = _value(o, "retrieve_onehot", "retrieve with one-hot weights", (3, IMAGE_DIM),
                 need_float=False)
    if not np.array_equal(got.astype(np.float32), p["ret_images"][p["ret_wanted"]].numpy()):
        _fail("retrieve: one-hot weights over shuffled values must return exactly the matching image")


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
        w = model.weights(held.unsqueeze(1), db.unsqueeze(0).expand(held.shape[0], -1, -1))
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
