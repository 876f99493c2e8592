"""The public checks students run in their notebook (`grader.check("lookup")`).

This module is shipped to students as `lab_checks.py` (the release's first cell writes it
next to the notebook, so it works on Colab from the `.ipynb` alone), so it imports only
torch, and knows nothing of the hidden tests: it calls the student's code on small inputs
made here and says, one line per failed property, what is wrong and with which kind of
input (single, multiple or batched queries). It catches every mistake of the test corpus
that the hidden tests catch for `lookup`, `retrieve` and `forward` (tests/test_public_checks.py,
docs/public-vs-hidden.md).

Its size (~420 lines): it is shipped to students as one file, written by one cell.
"""

import math
import re

import torch
import torch.nn.functional as F

# Each question: the notebook name its check needs, and the function that checks it.
QUESTIONS = {"lookup": "lookup", "retrieve": "retrieve", "forward": "AttentionTest",
             "training": "AttentionTest"}


class PublicCheckFailed(AssertionError):
    """Raised by `require` when a public check fails; its lines are in `.failures`."""

    def __init__(self, question, failures):
        self.question = question
        self.failures = list(failures)
        super().__init__(f"{question}: {len(self.failures)} public check(s) failed:\n"
                         + "\n".join(self.failures))


class _Failed(Exception):
    """One property failed: the line to show."""


def _shape(t):
    return "×".join(str(n) for n in t.shape)


def _call(what, kind, fn, *args, **kwargs):
    """Call student code; an exception becomes one line naming the call and input kind."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the student's error, in words they can act on
        text = " ".join(str(exc).split())[:200]
        if isinstance(exc, NotImplementedError) and "not implemented yet" in text:
            raise _Failed(f"{what.split(' (')[0]} is not implemented yet"
                          " (replace the `raise NotImplementedError` line)")
        raise _Failed(f"{what} with {kind} raised {type(exc).__name__}: {text}{_hint(what, text)}")


def _hint(what, text):
    """What to look at, for the usual errors (never a solution)."""
    if "not implemented for" in text and ("Long" in text or "Int" in text):
        return " (convert integer inputs such as F.one_hot's with .float() first)"
    shapes = any(w in text for w in ("shape", "size", "dimension", "matrix", "3D", "2D"))
    if shapes and what in ("lookup", "retrieve"):
        return (" (@ and torch.matmul handle 2-D and batched inputs; transpose the last two"
                " dimensions with .transpose(-2, -1))")
    if shapes:
        return (" (self.mha takes the query X_q, then the keys and values X_k = X_v; the weights"
                " it returns are B×1×100 with its default arguments)")
    return ""


def _tensor(what, kind, out, shape):
    if not isinstance(out, torch.Tensor):
        raise _Failed(f"{what} with {kind} must return a torch.Tensor, not {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise _Failed(f"{what} with {kind} must return shape {tuple(shape)}, not {tuple(out.shape)}")
    if not out.is_floating_point():
        raise _Failed(f"{what} with {kind} must return a float tensor, not {out.dtype}"
                      " (convert the inputs with .float())")
    return out.detach().float()


def _close(a, b):
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def _inputs(seed, *shapes):
    """Small, fixed, non-uniform inputs: scaling or a wrong softmax axis changes the result."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(-2, 3, s, generator=g).float() for s in shapes]


def _hard_cause(w, Q, K):
    scores = Q.float() @ K.float().transpose(-2, -1)
    if _close(w, scores / math.sqrt(Q.shape[-1])):
        return "the scores are scaled by √d; with soft=False return the raw scores QKᵀ, unscaled"
    if _close(w.sum(-1), torch.ones(w.shape[:-1])):
        return "the rows sum to 1 as after a softmax; with soft=False return the raw scores QKᵀ"
    return "the result is not the raw scores QKᵀ (a one-hot query matches exactly its own key)"


def _soft_cause(w, Q, K):
    scores = Q.float() @ K.float().transpose(-2, -1)
    if _close(w, F.softmax(scores / math.sqrt(Q.shape[-1]), dim=-1)):
        return "the scores are scaled by √d; the lab's weights are softmax(QKᵀ), unscaled"
    if w.dim() >= 2 and w.shape[-2] > 1 and _close(w, F.softmax(scores, dim=-2)):
        return "the softmax is taken over the queries; take it over the keys (the last dimension)"
    if _close(w, scores):
        return "these are the raw scores; with soft=True apply a softmax over the keys"
    if not _close(w.sum(-1), torch.ones(w.shape[:-1])):
        return "the rows of the weights do not sum to 1 (a softmax over the keys makes them)"
    return "the weights are not softmax(QKᵀ) over the keys"


def check_lookup(lookup):
    """One line per failed property of `lookup(Q, K, soft=True)`."""
    failures = []

    def hard_single():
        kind = "a single one-hot query (Q from F.one_hot, 1×5, K 5×5, soft=False)"
        K = F.one_hot(torch.arange(5), 5)
        Q = F.one_hot(torch.tensor([3]), 5)
        w = _tensor("lookup", kind, _call("lookup", kind, lookup, Q, K, soft=False), (1, 5))
        if w[0].tolist() != [0.0, 0.0, 0.0, 1.0, 0.0]:
            raise _Failed(f"lookup with {kind}: {_hard_cause(w, Q, K)}")

    def hard_multiple():
        Q, K = _inputs(1, (2, 3), (4, 3))
        kind = f"multiple queries (Q {_shape(Q)}, K {_shape(K)}, soft=False)"
        w = _tensor("lookup", kind, _call("lookup", kind, lookup, Q, K, soft=False), (2, 4))
        if not _close(w, Q @ K.T):
            raise _Failed(f"lookup with {kind}: {_hard_cause(w, Q, K)}")

    def soft_multiple():
        Q, K = _inputs(2, (3, 4), (5, 4))
        kind = f"multiple queries (Q {_shape(Q)}, K {_shape(K)}, soft=True)"
        w = _tensor("lookup", kind, _call("lookup", kind, lookup, Q, K), (3, 5))
        if not _close(w, F.softmax(Q @ K.T, dim=-1)):
            raise _Failed(f"lookup with {kind}: {_soft_cause(w, Q, K)}")

    def soft_one_hot():
        kind = "integer one-hot inputs (from F.one_hot, soft=True)"
        K = F.one_hot(torch.arange(4), 4)
        Q = F.one_hot(torch.tensor([0, 2]), 4)
        w = _tensor("lookup", kind, _call("lookup", kind, lookup, Q, K), (2, 4))
        if not _close(w, F.softmax(Q.float() @ K.float().T, dim=-1)):
            raise _Failed(f"lookup with {kind}: {_soft_cause(w, Q, K)}")

    def batched():
        Q, K = _inputs(3, (2, 3, 4), (2, 6, 4))
        for soft in (True, False):
            kind = f"batched queries (Q {_shape(Q)}, K {_shape(K)}, soft={soft})"
            w = _tensor("lookup", kind, _call("lookup", kind, lookup, Q, K, soft=soft), (2, 3, 6))
            scores = Q @ K.transpose(-2, -1)
            want = F.softmax(scores, dim=-1) if soft else scores
            if not _close(w, want):
                cause = _soft_cause(w, Q, K) if soft else _hard_cause(w, Q, K)
                raise _Failed(f"lookup with {kind}: {cause}")

    for prop in (hard_single, hard_multiple, soft_multiple, soft_one_hot, batched):
        try:
            prop()
        except _Failed as failed:
            failures.append(str(failed))
    return _unique(failures)


def check_retrieve(retrieve):
    """One line per failed property of `retrieve(weights, V)`."""
    failures = []
    V = torch.arange(12.0).reshape(3, 4)

    def single():
        kind = "a single query (one-hot weights 1×3, V 3×4)"
        out = _tensor("retrieve", kind, _call("retrieve", kind, retrieve,
                                              torch.tensor([[0.0, 1.0, 0.0]]), V), (1, 4))
        if out[0].tolist() != [4.0, 5.0, 6.0, 7.0]:
            raise _Failed(f"retrieve with {kind}: one-hot weights must return exactly the selected value (weights @ V)")

    def multiple():
        w = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
        kind = "multiple queries (weights 2×3, V 3×4)"
        out = _tensor("retrieve", kind, _call("retrieve", kind, retrieve, w, V), (2, 4))
        if not _close(out, w @ V):
            raise _Failed(f"retrieve with {kind}: the result is not the weighted sum weights @ V")

    def batched():
        w = F.softmax(_inputs(4, (2, 2, 3))[0], dim=-1)
        Vb = torch.stack([V, V.flip(0)])
        kind = "batched queries (weights 2×2×3, V 2×3×4)"
        out = _tensor("retrieve", kind, _call("retrieve", kind, retrieve, w, Vb), (2, 2, 4))
        if not _close(out, w @ Vb):
            raise _Failed(f"retrieve with {kind}: the result is not the weighted sum weights @ V")

    for prop in (single, multiple, batched):
        try:
            prop()
        except _Failed as failed:
            failures.append(str(failed))
    return _unique(failures)


def _model(AttentionTest, what):
    torch.manual_seed(0)
    model = _call(what, "AttentionTest(num_of_examples=100, embed_dim=32, num_heads=1)",
                  AttentionTest, num_of_examples=100, embed_dim=32, num_heads=1)
    if not isinstance(model, torch.nn.Module):
        raise _Failed(f"{what}: AttentionTest(...) is not an nn.Module")
    return model


# The given __init__'s parameters, and the spread of the ones this check chooses: large
# enough that the attention weights are far from uniform (as the hidden tests' are).
_PARAMETERS = {"img_mlp.0.weight": ((32, 784), 0.04), "img_mlp.0.bias": ((32,), 0.03),
               "mha.in_proj_weight": ((96, 32), 0.25), "mha.in_proj_bias": ((96,), 0.1),
               "mha.out_proj.weight": ((32, 32), 0.18), "mha.out_proj.bias": ((32,), 0.1)}


def _load_chosen(model, what, seed):
    """Put parameters chosen here (seeded) into the model: forward must use the model's
    parameters, whatever its own initialisation made of them (zeros included)."""
    try:
        own = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    except Exception:  # noqa: BLE001 - the student's module
        own = None
    if own != {name: shape for name, (shape, _) in _PARAMETERS.items()}:
        raise _Failed(f"{what}: the model's parameters do not match the given __init__ (one img_mlp "
                      "Linear(784, 32) and one nn.MultiheadAttention): keep the __init__ as given")
    g = torch.Generator().manual_seed(seed)
    chosen = {name: torch.randn(shape, generator=g) * std for name, (shape, std) in _PARAMETERS.items()}
    _call(what, "parameters chosen by the check", model.load_state_dict, chosen)


def _images(seed, batch):
    """Query images (batch×1×784) and a database (batch×100×784), pixels in [-1, 1] as in the lab."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, 784, generator=g) * 2 - 1,
            torch.rand(batch, 100, 784, generator=g) * 2 - 1)


def _forward(model, img, db, what, kind):
    result = _call(what, kind, model, img, db)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise _Failed(f"{what} with {kind} must return a pair (output, attn_output_weights),"
                      f" got {type(result).__name__}")
    return result


def check_forward(AttentionTest):
    """One line per failed property of `AttentionTest.forward(img, image_database)`."""
    what = "AttentionTest.forward"
    img, db = _images(5, 2)
    kind = "a batch of 2 queries (img 2×1×784, image_database 2×100×784)"
    try:
        model = _model(AttentionTest, what)
        _load_chosen(model, what, 7)
        model.eval()
        with torch.no_grad():
            output, weights = _forward(model, img, db, what, kind)
            output = _tensor(f"{what} (output)", kind, output, (2, 1, 784))
            weights = _tensor(f"{what} (attn_output_weights)", kind, weights, (2, 1, 100))
    except _Failed as failed:
        return [str(failed)]
    failures = []
    if not _close(weights.sum(-1), torch.ones(2, 1)):
        failures.append(f"{what} with {kind}: attn_output_weights over the 100 database images"
                        " must sum to 1 for each query")
    with torch.no_grad():
        try:
            X_q, X_v = model.img_mlp(img), model.img_mlp(db)
            _, own = model.mha(X_q, X_v, X_v)
        except Exception:  # the student changed __init__: the lines above say what breaks
            own = None
    if own is not None and not _close(weights, own.float()):
        failures.append(f"{what} with {kind}: attn_output_weights are not the weights self.mha"
                        " gives for the embedded query images (self.img_mlp of img) against the"
                        " embedded database images, used as both keys and values")
    if not _close(output, torch.bmm(weights, db)):
        failures.append(f"{what} with {kind}: output is not the retrieval from the database,"
                        " attn_output_weights @ image_database (not the output of self.mha)")
    return failures


def _output_differs(AttentionTest):
    """Whether forward's output (what training uses: its weights are not) is not the lab's
    retrieval, with parameters chosen here; any failure to compute it counts."""
    img, db = _images(5, 2)
    try:
        model = _model(AttentionTest, "AttentionTest.forward")
        _load_chosen(model, "AttentionTest.forward", 7)
        model.eval()
        with torch.no_grad():
            output = _forward(model, img, db, "AttentionTest.forward", "")[0]
            X_q, X_v = model.img_mlp(img), model.img_mlp(db)
            lab = torch.bmm(model.mha(X_q, X_v, X_v)[1], db)
    except Exception:  # noqa: BLE001 - _Failed or the student's changed module: no retrieval
        return True
    return not (isinstance(output, torch.Tensor) and output.shape == lab.shape
                and _close(output.float(), lab))


def check_training(AttentionTest):
    """One line per failed property of a training step of `AttentionTest`.

    The hidden training check compares the gradients of the training loss through forward
    with the lab's model's: a forward that fails its own checks fails training too, and
    this says so in one line instead of training it.
    """
    what = "training"
    if _output_differs(AttentionTest):
        return [f"{what}: fails because the output of AttentionTest.forward is not the lab's retrieval"
                " (see its checks): training is judged on the gradients of that output"]
    img, db = _images(6, 4)
    kind = "a training step on 4 queries"
    try:
        model = _model(AttentionTest, what)
        params = dict(model.named_parameters())
        before = {name: p.detach().clone() for name, p in params.items()}
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        output, _ = _forward(model, img, db, "AttentionTest.forward", kind)
        if not isinstance(output, torch.Tensor) or output.shape != img.shape:
            raise _Failed(f"{what}: the output of forward must have the shape of the query images"
                          f" {tuple(img.shape)} to compare them, not {tuple(getattr(output, 'shape', ()))}")
        loss = (output - img).pow(2).mean()
        if not loss.requires_grad:
            raise _Failed(f"{what}: the loss does not depend on the model's parameters"
                          " (are the attention weights detached, or made without self.mha?)")
        optimizer.zero_grad()
        _call(what, kind, loss.backward)
        grads = {name: None if p.grad is None else p.grad.detach().clone() for name, p in params.items()}
        optimizer.step()
    except _Failed as failed:
        return [str(failed)]
    failures = _device_mix(AttentionTest, img, db)
    changed = {name for name, p in params.items() if not torch.equal(before[name], p.detach())}
    if not any(name.startswith("img_mlp") for name in changed):
        failures.append(f"{what}: {kind} does not change self.img_mlp (the retrieval must depend"
                        " on the attention weights computed from the embeddings)")
    if not any(name.startswith("mha") for name in changed):
        failures.append(f"{what}: {kind} does not change self.mha (the attention weights must"
                        " come from self.mha)")
    if not failures:
        failures += _gradient_differs(model, before, grads, img, db, what, kind)
    return failures


def _gradient_differs(model, before, grads, img, db, what, kind):
    """The gradients of the loss through forward against the lab's computation's, at the
    same (initial) parameters: part of it detached changes them though forward's values
    are right."""
    try:
        model.load_state_dict(before)
        X_q, X_v = model.img_mlp(img), model.img_mlp(db)
        loss = (torch.bmm(model.mha(X_q, X_v, X_v)[1], db) - img).pow(2).mean()
        names = list(grads)
        params = dict(model.named_parameters())
        lab = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
    except Exception:  # noqa: BLE001 - a changed __init__: the forward check says what breaks
        return []
    for name, ref in zip(names, lab):
        ref = torch.zeros_like(params[name]) if ref is None else ref
        got = torch.zeros_like(ref) if grads[name] is None else grads[name]
        if (got - ref).norm() > 1e-3 * ref.norm() + 1e-8:
            module = name.split(".")[0]
            return [f"{what}: {kind} gives self.{module} a gradient other than the lab's forward"
                    " gives (is part of the computation detached, or made without self.img_mlp"
                    " and self.mha?)"]
    return []


# torch's words for tensors on two devices (the grader's coursekit/calls.py uses the same)
MIXED_DEVICES = r"not on the expected device|same device|two devices|Expected .{0,80}device"


def _device_mix(AttentionTest, img, db):
    """The grader trains on a GPU where there is one: forward must not make CPU tensors.
    With the model and inputs on torch's `meta` device, a tensor made without `device=`
    is on the CPU and torch refuses to mix them, as it would on a GPU."""
    try:
        model = AttentionTest(num_of_examples=db.shape[1], embed_dim=32, num_heads=1).to("meta")
        model(torch.empty(img.shape, device="meta"), torch.empty(db.shape, device="meta"))
    except RuntimeError as exc:
        if re.search(MIXED_DEVICES, str(exc), re.I):
            return ["training: forward mixes devices: it makes a tensor on the CPU while the model "
                    "is on another device; create it with device=img.device (the grader may "
                    "train on a GPU)"]
    except Exception:  # noqa: BLE001 - `meta` cannot run every op: only mixing counts
        pass
    return []


def _unique(lines):
    """Each cause once: the first input kind that shows it stands for the others."""
    kept, causes = [], set()
    for line in lines:
        cause = line.split("): ", 1)[-1]
        if cause not in causes:
            causes.add(cause)
            kept.append(line)
    return kept


CHECKS = {"lookup": check_lookup, "retrieve": check_retrieve, "forward": check_forward,
          "training": check_training}


def failures(question, obj):
    """The failed properties of the student's `obj` for `question`, one line each."""
    return CHECKS[question](obj)


LAST = {}  # question -> the lines of its last check (lab_notebook.py shows them)


def require(question, obj):
    """Raise `PublicCheckFailed` (an AssertionError) unless every public check passes."""
    lines = failures(question, obj)
    LAST[question] = lines
    if lines:
        raise PublicCheckFailed(question, lines)


def report(question, obj):
    """Print one line per failed property, or one line saying that all passed."""
    lines = failures(question, obj)
    LAST[question] = lines
    for line in lines or [f"{question}: every public check passed (the hidden tests decide the grade)"]:
        print(("❌ " if lines else "✅ ") + line)
