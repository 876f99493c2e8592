"""Calling student code on hidden inputs: the *untrusted* side of this lab's hidden checks.

This is the lab's `job_module` (coursekit.lab): the only part of its checks that runs next
to student code (in the sandbox): what to call (`CALLS`), how (`evaluate`), and how results
become plain arrays. It holds no seeds, no reference and no verdict; those stay in
`checks.py`, which the sandbox never imports. The inputs it is called on arrive as arrays.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from coursekit.calling import (GPU_MEMORY, NOT_DEFINED, StudentError, as_array,
                              gpu_oom_is_the_verdict, student, type_name)
from coursekit.lab import Call

IMAGE_DIM = 784
NUM_DB = 100
MODEL_SEED = 0
EMBED_DIM = 32
NUM_HEADS = 1
LOOKUP_SHAPE_NAMES = ("single", "multi", "batched")
FORWARD_SETS = ("a", "b")  # the forward check's two parameter sets (hidden inputs fwd_a.*, fwd_b.*)

Arrays = dict[str, np.ndarray]


def _lookup_calls() -> list[Call]:
    calls = []
    for name in LOOKUP_SHAPE_NAMES:
        calls += [Call(f"lookup_soft_{name}", "lookup", (f"q_{name}", f"k_{name}"), {"soft": True}),
                  Call(f"lookup_hard_{name}", "lookup", (f"q_{name}", f"k_{name}"), {"soft": False}),
                  Call(f"lookup_default_{name}", "lookup", (f"q_{name}", f"k_{name}")),
                  Call(f"lookup_sharp_{name}", "lookup", (f"qs_{name}", f"k_{name}"), {"soft": True})]
    calls += [Call("lookup_onehot", "lookup", ("onehot_q", "onehot_k"), {"soft": False}),
              Call("lookup_onehot_batched", "lookup", ("onehot_q", "onehot_k"),
                   {"soft": False, "_batch": 2})]
    return calls


CALLS: list[Call] = _lookup_calls() + [
    Call(f"retrieve_{name}", "retrieve", (f"w_{name}", f"v_{name}")) for name in LOOKUP_SHAPE_NAMES
] + [
    Call("retrieve_onehot", "retrieve", ("ret_w", "ret_v")),
    Call("forward", "forward", ("model_img", "model_db")),
    Call("training", "training", long=True, device=True),
]
CALLS_BY_ID = {c.id: c for c in CALLS}


def _new_model(AttentionTest: Any, seed: int) -> Any:
    torch.manual_seed(seed)
    model = student(AttentionTest, num_of_examples=NUM_DB, embed_dim=EMBED_DIM, num_heads=NUM_HEADS)
    if not isinstance(model, nn.Module):
        raise StudentError("AttentionTest(...) is not an nn.Module")
    return model


PARAMETERS_MISMATCH = ("the model's parameters do not match the given __init__ "
                       "(one img_mlp Linear(784, 32) and one nn.MultiheadAttention)")


def parameter_names(p: dict[str, torch.Tensor], prefix: str) -> dict[str, str]:
    """The grader's parameter set `prefix` among the hidden inputs: state-dict name -> input name."""
    return {k[len(prefix) + 1:]: k for k in p if k.startswith(prefix + ".")}


def _load(model: Any, p: dict[str, torch.Tensor], prefix: str) -> None:
    """Put the grader's parameters `prefix` into the student's model (they were chosen by the
    grader, seeded and non-degenerate: the model's own initialisation, zeros included, is
    never what is judged). A model whose parameters are not the given __init__'s fails."""
    names = parameter_names(p, prefix)
    try:
        own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except Exception:
        raise StudentError("has parameters that cannot be read") from None
    if own != {k: tuple(p[v].shape) for k, v in names.items()}:
        raise StudentError(PARAMETERS_MISMATCH)
    try:
        model.load_state_dict({k: p[v] for k, v in names.items()}, strict=True)
    except Exception:
        raise StudentError(PARAMETERS_MISMATCH) from None


def _pair(result: Any) -> tuple[Any, Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise StudentError("forward must return a pair (output, attn_output_weights)")
    return result[0], result[1]


def evaluate(call: Call, defs: dict[str, Any], p: dict[str, torch.Tensor],
             runtime: dict[str, Any] | None = None) -> Arrays:
    """Run one call of student code on the hidden inputs; return plain arrays.

    Raises `StudentError` when the student's code fails. `defs` maps names
    (`lookup`, `retrieve`, `AttentionTest`) to the student's objects.
    """
    name = "AttentionTest" if call.target in ("forward", "training") else call.target
    fn = defs.get(name)
    if fn is None or not callable(fn):
        raise StudentError(NOT_DEFINED)
    torch.manual_seed(0)
    if name == call.target:  # a function (lookup, retrieve, any a TA adds) on hidden tensors
        kwargs = dict(call.kwargs)
        batch = kwargs.pop("_batch", None)
        args = [p[a].clone() for a in call.args]
        if batch:
            args = [a.unsqueeze(0).expand(batch, *a.shape).clone() for a in args]
        out = student(fn, *args, **kwargs)
        return {"value": as_array(out)}  # its dtype says whether it is a float tensor
    if call.target == "forward":
        model = _new_model(fn, MODEL_SEED)
        out: Arrays = {}
        for tag in FORWARD_SETS:
            _load(model, p, f"fwd_{tag}")
            output, weights = _pair(student(model, p["model_img"].clone(), p["model_db"].clone()))
            out[f"output_{tag}"], out[f"weights_{tag}"] = as_array(output), as_array(weights)
        return out
    return _train(fn, p, **(runtime or {}))


NO_GRADIENT = "loss cannot be back-propagated: the output does not depend on the model's parameters"


def _shape_text(shape: tuple[int, ...], batch: int) -> str:
    """`(B, 1, 32)`: a shape with the batch size (a training setting) written as B."""
    return "(" + ", ".join("B" if i == 0 and d == batch else str(d) for i, d in enumerate(shape)) + ")"


def _loss_failure(output: Any, x_q: torch.Tensor) -> str:
    """Why the training loss (output - query images)² cannot be computed: the shape, mostly."""
    if not isinstance(output, torch.Tensor):
        return f"returned {type_name(output)}, not a torch.Tensor"
    if tuple(output.shape) == tuple(x_q.shape):
        return "loss cannot be back-propagated"
    want = _shape_text(tuple(x_q.shape), x_q.shape[0])
    if output.dim() > 8:
        return f"output does not have the query images' shape {want}: the training loss cannot be computed"
    return (f"output has shape {_shape_text(tuple(output.shape), x_q.shape[0])}, not the query "
            f"images' {want}: the training loss cannot be computed")


DEVICE_MIX = ("forward mixes devices: it makes a tensor on the CPU while the model is on another device; "
              "create it with device=img.device (the grader may train on a GPU)")
# torch's words for tensors on two devices (the students' public check uses the same)
_MIXED = re.compile(r"not on the expected device|same device|two devices|Expected .{0,80}device", re.I)


def _portability(AttentionTest: Any, p: dict[str, torch.Tensor]) -> None:
    """The same verdict on every machine: forward once on the CPU (what fails there fails
    everywhere, e.g. a hard-coded `.cuda()`), then with the model and inputs on the `meta`
    device, where a tensor made without `device=` is on the CPU and torch refuses to mix
    the two, as it does on a GPU. Only that refusal counts: `meta` cannot run every op."""
    x_q = p["data_train"][:2].unsqueeze(1)
    db = p["data_database"].unsqueeze(0).expand(2, -1, -1)
    _pair(student(_new_model(AttentionTest, MODEL_SEED), x_q.clone(), db.clone()))
    try:
        model = _new_model(AttentionTest, MODEL_SEED).to("meta")
        model(torch.empty(x_q.shape, device="meta"), torch.empty(db.shape, device="meta"))
    except Exception as exc:  # noqa: BLE001 - everything but mixing devices is fine here
        if isinstance(exc, RuntimeError) and _MIXED.search(str(exc)):
            raise StudentError(DEVICE_MIX) from None


def _train(AttentionTest: Any, p: dict[str, torch.Tensor], *, device: str = "cpu",
           cuda_failed: bool = False, gpu_memory_mb: int = 0, **_: Any) -> Arrays:
    """The training check on `device`, after the portability probe; on CUDA, a model that
    fails there for another reason is checked on the CPU (so the verdict is the CPU's)."""
    _neutral_torch()
    _portability(AttentionTest, p)
    if device != "cuda":
        return {**_gradients_on(AttentionTest, p, device="cpu"),
                "device": np.array(2 if cuda_failed else 0, dtype=np.int8)}
    try:
        out = _gradients_on(AttentionTest, p, device="cuda")
        torch.cuda.synchronize()  # CUDA reports some errors late: they belong to this attempt
        return {**out, "device": np.array(1, dtype=np.int8)}
    except StudentError as err:
        if err.kind == GPU_MEMORY.format(mb=gpu_memory_mb):
            raise  # the memory cap is the verdict, not a reason to try the CPU
    except Exception as exc:  # noqa: BLE001 - a failure outside the student's calls, on CUDA
        gpu_oom_is_the_verdict(exc)
    _neutral_torch()
    return {**_gradients_on(AttentionTest, p, device="cpu"), "device": np.array(3, dtype=np.int8)}


def _neutral_torch() -> None:
    """Undo global torch settings a cell may have made that would change the training
    check by machine: a default device and TF32 matmuls on a GPU (the grader recomputes
    the gradients in float64)."""
    torch.set_default_device(None)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def training_points(p: dict[str, torch.Tensor]) -> list[str]:
    """The training check's points: `train_K` parameter sets, each with its batch `train_idx_K`."""
    return sorted(k.removeprefix("train_idx_") for k in p if k.startswith("train_idx_"))


def _gradients_on(AttentionTest: Any, p: dict[str, torch.Tensor], *, device: str) -> Arrays:
    """The training loss the lab uses (MSE of output vs query) and its gradients, at each
    of the grader's points: parameters of the reference's training run and one batch each.

    No optimizer, seed, step count or learning rate is taken from, or left to, this process:
    the trusted side compares the loss and gradients with the reference's at the same
    parameters, and the reference's training reaches the target (docs/calibration.md).
    """
    model = _new_model(AttentionTest, MODEL_SEED)
    try:
        model = model.to(device)
    except Exception as exc:
        gpu_oom_is_the_verdict(exc)
        raise StudentError("could not be set up for training") from None
    database = p["data_database"].to(device)
    train = p["data_train"].to(device)
    out: Arrays = {}
    for point in training_points(p):
        _load(model, p, f"train_{point}")
        params = dict(model.named_parameters())
        if not params:
            raise StudentError("has no parameters to train")
        idx = p[f"train_idx_{point}"].to(device)
        x_q = train[idx].unsqueeze(1)
        db = database.unsqueeze(0).expand(x_q.shape[0], -1, -1)
        model.train()
        for param in params.values():  # not model.zero_grad(): the student's class may override it
            param.grad = None
        output, _w = _pair(student(model, x_q, db))
        try:
            loss = (output - x_q).pow(2).mean()
        except Exception:
            raise StudentError(_loss_failure(output, x_q)) from None
        if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
            raise StudentError(NO_GRADIENT)
        try:
            loss.backward()
        except Exception as exc:
            gpu_oom_is_the_verdict(exc)
            raise StudentError("loss cannot be back-propagated") from None
        out[f"loss_{point}"] = as_array(loss)
        for name, param in params.items():  # a parameter the loss does not reach: zeros
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            out[f"grad_{point}.{name}"] = as_array(grad)
    return out
