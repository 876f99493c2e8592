"""The checks behind the hidden tests.

Each public function checks one property of a student's definition and raises
`CheckFailed` with a one-line message naming the property when it does not hold.
The messages never contain the hidden inputs or reference outputs, which are made
here from fixed seeds so that grading is deterministic.

This module depends on torch and numpy only: the build copies it into the
autograder zip as `attention_checks.py`, and the thin test cells of the master
notebook call it from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

# Tolerances for comparing float results with the reference computation.
RTOL = 1e-4
ATOL = 1e-5
_SEED = 1234  # hidden inputs; never shown to students
IMAGE_DIM = 784
NUM_DB = 100


class CheckFailed(AssertionError):
    """A property of the student's code does not hold; the message is one line."""


def _fail(message: str) -> None:
    raise CheckFailed(message)


def _gen(offset: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(_SEED + offset)


def _defined(obj: Any, name: str) -> None:
    """The student's definition must exist (a cell that raised may have left it undefined)."""
    if obj is None or not callable(obj):
        _fail(f"{name}: not defined (run the cell that defines it)")


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call student code; turn any error into a one-line failure naming `what`."""
    if fn is None or not callable(fn):
        _fail(f"{what}: not defined (run the cell that defines it)")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        _fail(f"{what}: not implemented yet")
    except CheckFailed:
        raise
    except Exception as exc:  # the student's own error, summarised
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        _fail(f"{what}: raised {type(exc).__name__}" + (f" ({first})" if first else ""))


def _tensor(what: str, value: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """Require a float tensor of the given shape; return it detached on the CPU."""
    if not isinstance(value, torch.Tensor):
        _fail(f"{what}: must return a torch.Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        _fail(f"{what}: returned shape {tuple(value.shape)}, expected {shape}")
    if not value.is_floating_point():
        _fail(f"{what}: must return a float tensor, got {value.dtype}")
    return value.detach().to("cpu", torch.float64)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a.double(), b.double(), rtol=RTOL, atol=ATOL))


# --- lookup ----------------------------------------------------------------------

_LOOKUP_CASES = [  # (description, Q shape, K shape)
    ("a single query", (1, 4), (NUM_DB, 4)),
    ("multiple queries", (8, 16), (NUM_DB, 16)),
    ("a batch of queries (3-D)", (4, 3, 16), (4, NUM_DB, 16)),
]


def _scores(Q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    return torch.matmul(Q.double(), K.double().transpose(-2, -1))


def lookup_shapes(lookup: Callable) -> None:
    """Soft and hard lookup give (n_q, n_k) or (B, n_q, n_k) weights."""
    _defined(lookup, "lookup")
    for i, (desc, qs, ks) in enumerate(_LOOKUP_CASES):
        g = _gen(i)
        Q, K = torch.randn(qs, generator=g), torch.randn(ks, generator=g)
        expected = qs[:-1] + (ks[-2],)
        for soft in (True, False):
            mode = "soft" if soft else "hard"
            out = _call(f"{mode} lookup with {desc}", lookup, Q, K, soft=soft)
            _tensor(f"{mode} lookup with {desc}", out, expected)


def lookup_hard_scores(lookup: Callable) -> None:
    """Hard lookup (`soft=False`) returns the raw scores QKᵀ: no softmax, no scaling."""
    _defined(lookup, "lookup")
    for i, (desc, qs, ks) in enumerate(_LOOKUP_CASES):
        g = _gen(10 + i)
        Q, K = torch.randn(qs, generator=g), torch.randn(ks, generator=g)
        out = _tensor(f"hard lookup with {desc}", _call("hard lookup", lookup, Q, K, soft=False),
                      qs[:-1] + (ks[-2],))
        if not _close(out, _scores(Q, K)):
            _fail(f"hard lookup: with soft=False the result must be the raw scores Q Kᵀ "
                  f"(no softmax, no scaling), wrong for {desc}")


def lookup_one_hot(lookup: Callable) -> None:
    """Integer one-hot queries against shuffled one-hot keys find exactly the right key."""
    _defined(lookup, "lookup")
    g = _gen(20)
    perm = torch.randperm(NUM_DB, generator=g)
    K = F.one_hot(torch.arange(NUM_DB), NUM_DB)[perm]  # int64, as in the lab
    q_idx = torch.randint(0, NUM_DB, (5,), generator=g)
    Q = F.one_hot(q_idx, NUM_DB)
    out = _tensor("hard lookup of one-hot integer tensors",
                  _call("hard lookup of one-hot integer tensors", lookup, Q, K, soft=False),
                  (5, NUM_DB))
    expected = torch.zeros(5, NUM_DB, dtype=torch.float64)
    where = torch.argsort(perm)[q_idx]  # position of each query's key after shuffling
    expected[torch.arange(5), where] = 1.0
    if not torch.equal(out, expected):
        _fail("hard lookup: one-hot queries against shuffled one-hot keys must give exactly "
              "one 1 per row, at the matching key")
    Qb, Kb = Q.unsqueeze(0).expand(2, -1, -1), K.unsqueeze(0).expand(2, -1, -1)
    outb = _tensor("batched hard lookup of one-hot integer tensors",
                   _call("batched hard lookup of one-hot integer tensors", lookup, Qb, Kb, soft=False),
                   (2, 5, NUM_DB))
    if not torch.equal(outb, expected.expand(2, -1, -1)):
        _fail("hard lookup: batched one-hot queries do not find their matching keys")


def lookup_soft_softmax(lookup: Callable) -> None:
    """Soft lookup (the default) equals softmax(QKᵀ) over the keys."""
    _defined(lookup, "lookup")
    for i, (desc, qs, ks) in enumerate(_LOOKUP_CASES):
        g = _gen(30 + i)
        Q, K = torch.randn(qs, generator=g), torch.randn(ks, generator=g)
        reference = torch.softmax(_scores(Q, K), dim=-1)
        out = _tensor(f"soft lookup with {desc}", _call("soft lookup", lookup, Q, K, soft=True),
                      reference.shape)
        if not _close(out, reference):
            _fail(f"soft lookup: the weights are not softmax(Q Kᵀ) over the keys for {desc}")
        default = _call("lookup without the soft argument", lookup, Q, K)
        if not _close(_tensor("lookup without the soft argument", default, reference.shape),
                      reference):
            _fail("soft lookup: lookup(Q, K) without `soft` must default to soft=True")


def lookup_soft_rows(lookup: Callable) -> None:
    """Each row of the soft weights is a distribution: non-negative, summing to 1."""
    _defined(lookup, "lookup")
    for i, (desc, qs, ks) in enumerate(_LOOKUP_CASES):
        g = _gen(40 + i)
        Q, K = 3 * torch.randn(qs, generator=g), torch.randn(ks, generator=g)
        out = _tensor(f"soft lookup with {desc}", _call("soft lookup", lookup, Q, K, soft=True),
                      qs[:-1] + (ks[-2],))
        if not torch.isfinite(out).all():
            _fail(f"soft lookup: the weights contain inf or nan for {desc}")
        if (out < 0).any() or not _close(out.sum(-1), torch.ones(out.shape[:-1])):
            _fail(f"soft lookup: rows of the weights do not sum to 1 for {desc}")


# --- retrieve --------------------------------------------------------------------

def retrieve_values(retrieve: Callable) -> None:
    """retrieve(weights, V) equals weights @ V, for 2-D and batched inputs."""
    _defined(retrieve, "retrieve")
    cases = [("one query", (1, NUM_DB), (NUM_DB, IMAGE_DIM)),
             ("multiple queries", (8, NUM_DB), (NUM_DB, IMAGE_DIM)),
             ("a batch (3-D)", (4, 2, NUM_DB), (4, NUM_DB, IMAGE_DIM))]
    for i, (desc, ws, vs) in enumerate(cases):
        g = _gen(50 + i)
        W = torch.softmax(torch.randn(ws, generator=g), -1)
        V = torch.rand(vs, generator=g) * 2 - 1
        reference = torch.matmul(W.double(), V.double())
        out = _tensor(f"retrieve with {desc}", _call("retrieve", retrieve, W, V), reference.shape)
        if not _close(out, reference):
            _fail(f"retrieve: the result is not weights @ V for {desc}")


def retrieve_one_hot(retrieve: Callable) -> None:
    """One-hot weights over shuffled values retrieve exactly the matching image."""
    _defined(retrieve, "retrieve")
    g = _gen(60)
    images = torch.rand(NUM_DB, IMAGE_DIM, generator=g) * 2 - 1
    perm = torch.randperm(NUM_DB, generator=g)
    V = images[perm]
    wanted = torch.randint(0, NUM_DB, (3,), generator=g)
    W = F.one_hot(torch.argsort(perm)[wanted], NUM_DB).float()
    out = _tensor("retrieve with one-hot weights", _call("retrieve", retrieve, W, V), (3, IMAGE_DIM))
    if not torch.equal(out.float(), images[wanted]):
        _fail("retrieve: one-hot weights over shuffled values must return exactly the matching image")


# --- AttentionTest.forward -------------------------------------------------------

def _model_inputs(batch: int = 4, offset: int = 70) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(offset)
    db = torch.rand(NUM_DB, IMAGE_DIM, generator=g) * 2 - 1
    img = torch.rand(batch, 1, IMAGE_DIM, generator=g) * 2 - 1
    return img, db.unsqueeze(0).expand(batch, -1, -1)


def _make_model(AttentionTest: Any, seed: int = 0, embed_dim: int = 32, num_heads: int = 1) -> Any:
    torch.manual_seed(seed)
    return _call("AttentionTest(...)", AttentionTest, num_of_examples=NUM_DB,
                 embed_dim=embed_dim, num_heads=num_heads)


def _forward(AttentionTest: Any) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    model = _make_model(AttentionTest)
    img, db = _model_inputs()
    result = _call("AttentionTest.forward", model, img, db)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        _fail("AttentionTest.forward: must return a pair (output, attn_output_weights)")
    out = _tensor("AttentionTest.forward output", result[0], (img.shape[0], 1, IMAGE_DIM))
    w = _tensor("AttentionTest.forward attn_output_weights", result[1], (img.shape[0], 1, NUM_DB))
    return model, img, db, out, w


def forward_shapes(AttentionTest: Any) -> None:
    """forward returns output (B, 1, 784) and weights (B, 1, 100)."""
    _defined(AttentionTest, "AttentionTest")
    _forward(AttentionTest)


def forward_weights(AttentionTest: Any) -> None:
    """The weights are a distribution over the 100 images and come from the model's attention."""
    _defined(AttentionTest, "AttentionTest")
    model, img, db, _, w = _forward(AttentionTest)
    if (w < 0).any() or not _close(w.sum(-1), torch.ones(w.shape[:-1])):
        _fail("AttentionTest.forward: the weights are not a distribution over the 100 "
              "database images (rows must be non-negative and sum to 1)")
    with torch.no_grad():  # the lab's design: keys = values = embedded database
        x_q, x_kv = model.img_mlp(img), model.img_mlp(db)
        _, expected = model.mha(x_q, x_kv, x_kv)
    if not _close(w, expected.detach()):
        _fail("AttentionTest.forward: the weights are not the attention weights of self.mha "
              "for the embedded query against the embedded database (keys = values)")


def forward_output(AttentionTest: Any) -> None:
    """The output is the retrieval weights @ image_database."""
    _defined(AttentionTest, "AttentionTest")
    _, _, db, out, w = _forward(AttentionTest)
    if not _close(out, torch.matmul(w, db.double())):
        _fail("AttentionTest.forward: the output is not the retrieval "
              "attn_output_weights @ image_database")


# --- training --------------------------------------------------------------------

def load_bundle(path: str | Path) -> dict[str, torch.Tensor]:
    """Load the bundled MNIST slice (uint8 images) and normalise it as the lab does."""
    with np.load(path, allow_pickle=False) as data:
        return {k: torch.from_numpy(data[k].astype(np.float32) / 255.0 * 2 - 1).reshape(-1, IMAGE_DIM)
                for k in ("database", "train", "heldout")}


def train_model(AttentionTest: Any, data: dict[str, torch.Tensor], *, steps: int,
                batch_size: int, lr: float, seed: int, embed_dim: int = 32, num_heads: int = 1,
                device: str | None = None) -> tuple[Any, list[float]]:
    """Train the student's model as the lab does (Adam, MSE of output vs query), seeded."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _make_model(AttentionTest, seed, embed_dim, num_heads)
    try:
        model = model.to(device)
        params = list(model.parameters())
    except Exception as exc:
        _fail(f"training: the model could not be set up ({type(exc).__name__})")
    if not params:
        _fail("training: the model has no parameters to train")
    optimizer = torch.optim.Adam(params, lr=lr)
    db = data["database"].to(device).unsqueeze(0).expand(batch_size, -1, -1)
    train = data["train"].to(device)
    g = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, train.shape[0], (batch_size,), generator=g).to(device)
        x_q = train[idx].unsqueeze(1)
        result = _call("training: AttentionTest.forward", model, x_q, db)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            _fail("training: forward must return a pair (output, attn_output_weights)")
        try:
            loss = (result[0] - x_q).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
        except Exception:
            _fail("training: the loss of the model's output cannot be back-propagated "
                  "(is the output computed from the attention weights, without detach?)")
        optimizer.step()
        losses.append(float(loss.detach()))
    return model, losses


def heldout_mse(model: Any, data: dict[str, torch.Tensor], batch_size: int = 64,
                device: str | None = None) -> float:
    """MSE of weights @ database against held-out queries, computed from the returned weights."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    db = data["database"].to(device)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, data["heldout"].shape[0], batch_size):
            x_q = data["heldout"][start:start + batch_size].to(device).unsqueeze(1)
            dbb = db.unsqueeze(0).expand(x_q.shape[0], -1, -1)
            result = _call("AttentionTest.forward", model, x_q, dbb)
            w = _tensor("AttentionTest.forward attn_output_weights", result[1],
                        (x_q.shape[0], 1, NUM_DB))
            if (w < 0).any() or not _close(w.sum(-1), torch.ones(w.shape[:-1])):
                _fail("training: the attention weights are not a distribution over the database")
            retrieved = torch.matmul(w, dbb.detach().to("cpu", torch.float64))
            total += float((retrieved - x_q.to("cpu", torch.float64)).pow(2).sum())
            count += x_q.numel()
    return total / count


CONFIG_FILE = "attention_config.json"  # written beside this module in the autograder


def training_check(AttentionTest: Any) -> float:
    """The hidden training test: settings and data come from the files bundled beside this module."""
    import json

    here = Path(__file__).resolve().parent
    settings = json.loads((here / CONFIG_FILE).read_text())
    return training_mse(AttentionTest, here / settings.pop("bundle_file"), **settings)


def training_mse(AttentionTest: Any, bundle_path: str | Path, *, steps: int, batch_size: int,
                 lr: float, seed: int, target_mse: float, embed_dim: int = 32,
                 num_heads: int = 1) -> float:
    """Train the student's model with a fixed budget; the held-out MSE must beat the target."""
    _defined(AttentionTest, "AttentionTest")
    path = Path(bundle_path)
    if not path.is_file():
        _fail(f"training: the grader's data file {path.name} is missing (a grader setup error)")
    data = load_bundle(path)
    model, losses = train_model(AttentionTest, data, steps=steps, batch_size=batch_size, lr=lr,
                                seed=seed, embed_dim=embed_dim, num_heads=num_heads)
    mse = heldout_mse(model, data, batch_size)
    if not np.isfinite(mse):
        _fail("training: the held-out MSE is not finite (nan or inf)")
    if mse > target_mse:
        _fail(f"training: after the fixed training budget the held-out MSE is {mse:.3f}, "
              f"above the target {target_mse:.3f} (the model does not learn to retrieve "
              f"matching images)")
    return mse
