"""The hidden checks: the reference passes every one, and typical mistakes fail the
right one with a one-line message that names the property."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.helpers import A
from attention_basics import checks
from attention_basics.checks import CheckFailed


# --- reference and wrong implementations ----------------------------------------

def lookup_ref(Q, K, soft=True):
    s = torch.matmul(Q.float(), K.float().transpose(-2, -1))
    return F.softmax(s, dim=-1) if soft else s


def lookup_wrong_dim(Q, K, soft=True):
    s = torch.matmul(Q.float(), K.float().transpose(-2, -1))
    return F.softmax(s, dim=0) if soft else s


def lookup_softmax_always(Q, K, soft=True):
    return F.softmax(torch.matmul(Q.float(), K.float().transpose(-2, -1)), dim=-1)


def lookup_scaled(Q, K, soft=True):
    s = torch.matmul(Q.float(), K.float().transpose(-2, -1)) / Q.shape[-1] ** 0.5
    return F.softmax(s, dim=-1) if soft else s


def lookup_no_float(Q, K, soft=True):
    s = torch.matmul(Q, K.transpose(-2, -1))
    return F.softmax(s.float(), dim=-1) if soft else s


def lookup_2d_only(Q, K, soft=True):
    s = torch.mm(Q.float(), K.float().t())
    return F.softmax(s, dim=-1) if soft else s


def retrieve_ref(weights, V):
    return weights @ V


def retrieve_mean(weights, V):
    return V.mean(-2, keepdim=True).expand(*weights.shape[:-1], V.shape[-1])


class _Base(nn.Module):
    def __init__(self, num_of_examples=100, embed_dim=32, num_heads=1):
        super().__init__()
        self.img_mlp = nn.Sequential(nn.Linear(784, embed_dim))
        self.mha = nn.MultiheadAttention(embed_dim=embed_dim, num_heads=num_heads, batch_first=True)


class ModelRef(_Base):
    def forward(self, img, image_database):
        x_q, x_v = self.img_mlp(img), self.img_mlp(image_database)
        _, w = self.mha(x_q, x_v, x_v)
        return torch.bmm(w, image_database), w


class ModelMhaOutput(_Base):  # returns the attention output instead of the retrieval
    def forward(self, img, image_database):
        x_q, x_v = self.img_mlp(img), self.img_mlp(image_database)
        out, w = self.mha(x_q, x_v, x_v)
        return out, w


class ModelCopiesQuery(_Base):  # output = the query itself: zero loss, learns nothing
    def forward(self, img, image_database):
        x_q, x_v = self.img_mlp(img), self.img_mlp(image_database)
        _, w = self.mha(x_q, x_v, x_v)
        return img, w


class ModelUniform(_Base):  # weights that do not come from attention
    def forward(self, img, image_database):
        w = torch.full((img.shape[0], 1, image_database.shape[1]), 1 / image_database.shape[1])
        return torch.bmm(w, image_database) + 0 * self.img_mlp(img).sum(), w


class ModelDetached(_Base):
    def forward(self, img, image_database):
        x_q, x_v = self.img_mlp(img), self.img_mlp(image_database)
        _, w = self.mha(x_q, x_v, x_v)
        w = w.detach()
        return torch.bmm(w, image_database), w


# Degenerate code that ignores its inputs: it may earn the shape points, nothing more.

def lookup_constant(Q, K, soft=True):  # uniform weights whatever Q and K are
    return torch.ones(*Q.shape[:-1], K.shape[-2]) / K.shape[-2]


def lookup_zeros(Q, K, soft=True):
    return torch.zeros(*Q.shape[:-1], K.shape[-2])


class ModelIgnoresModel(_Base):  # uniform weights, output = weights @ database: no model
    def forward(self, img, image_database):
        w = torch.full((img.shape[0], 1, image_database.shape[1]), 1 / image_database.shape[1])
        return w @ image_database, w


class ModelRightWeightsWrongOutput(_Base):  # the model's weights, but not the retrieval
    def forward(self, img, image_database):
        x_q, x_v = self.img_mlp(img), self.img_mlp(image_database)
        _, w = self.mha(x_q, x_v, x_v)
        return image_database[:, :1, :] * 1.0, w



def run(case: str, **defs) -> None:
    """Judge one hidden case on `defs` as the build judges the master's solution."""
    LAB.run_case(case, defs, INPUTS)


LAB = A.lab()
TRAINING = dict(A.settings["training"])
BUNDLE: dict = {}
INPUTS: dict = {}  # the hidden inputs, made once (the reference model's training included)


@pytest.fixture(scope="module", autouse=True)
def bundle(tmp_path_factory):
    """The autograder's MNIST slice, made as the build makes it."""
    path = tmp_path_factory.mktemp("data") / A.data_file
    LAB.make_data(path)
    BUNDLE.update(checks.load_bundle(path))
    INPUTS.update(LAB.inputs(BUNDLE, LAB.settings))
    return path


LOOKUP_CASES = ["lookup_shapes", "lookup_hard_scores", "lookup_one_hot", "lookup_soft_softmax",
                "lookup_soft_rows"]


@pytest.mark.parametrize("case", LOOKUP_CASES)
def test_reference_lookup_passes(case):
    run(case, lookup=lookup_ref)


@pytest.mark.parametrize("case", ["retrieve_values", "retrieve_one_hot"])
def test_reference_retrieve_passes(case):
    run(case, retrieve=retrieve_ref)


@pytest.mark.parametrize("case", ["forward_shapes", "forward_weights", "forward_output"])
def test_reference_model_passes(case):
    run(case, AttentionTest=ModelRef)


def test_every_case_belongs_to_a_configured_question():
    assert {c.question for c in checks.CASES.values()} == set(A.points)


@pytest.mark.parametrize("impl, case, message", [
    (lookup_wrong_dim, "lookup_soft_rows", "softmax over the queries, not the keys"),
    (lookup_wrong_dim, "lookup_soft_softmax", "softmax over the queries, not the keys"),
    (lookup_softmax_always, "lookup_hard_scores", "hard lookup: applies a softmax when soft=False"),
    (lookup_softmax_always, "lookup_one_hot", "hard lookup: applies a softmax when soft=False"),
    (lookup_scaled, "lookup_hard_scores", "hard lookup: scales by √d when soft=False"),
    (lookup_scaled, "lookup_one_hot", "hard lookup: scales by √d when soft=False"),
    (lookup_scaled, "lookup_soft_softmax", "soft lookup: scales the scores by √d"),
    (lookup_constant, "lookup_hard_scores", "hard lookup: the result is not the raw scores Q Kᵀ"),
    (lookup_constant, "lookup_soft_softmax", "soft lookup: the weights are not softmax(Q Kᵀ) over the keys"),
    (lookup_no_float, "lookup_one_hot", "must return a float tensor, not an integer one"),
    (lookup_2d_only, "lookup_shapes", "lookup with a batch of queries (3-D): raised RuntimeError"),
])
def test_wrong_lookup_fails_with_its_property(impl, case, message):
    with pytest.raises(CheckFailed) as info:
        run(case, lookup=impl)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("impl, case, message", [
    (retrieve_mean, "retrieve_values", "retrieve: the result is not weights @ V"),
    (retrieve_mean, "retrieve_one_hot", "retrieve: one-hot weights over shuffled values"),
])
def test_wrong_retrieve_fails_with_its_property(impl, case, message):
    with pytest.raises(CheckFailed) as info:
        run(case, retrieve=impl)
    assert message in str(info.value)


@pytest.mark.parametrize("model, case, message", [
    (ModelMhaOutput, "forward_shapes", "output has the wrong shape (expected (4, 1, 784))"),
    (ModelCopiesQuery, "forward_output", "the output is not the retrieval"),
    (ModelUniform, "forward_weights", "the weights are not the attention weights of self.mha"),
])
def test_wrong_model_fails_with_its_property(model, case, message):
    with pytest.raises(CheckFailed) as info:
        run(case, AttentionTest=model)
    assert message in str(info.value)


def test_unimplemented_and_undefined_are_named():
    def lookup(Q, K, soft=True):
        raise NotImplementedError("lookup is not implemented yet")

    with pytest.raises(CheckFailed, match="^lookup: not implemented yet$"):
        run("lookup_shapes", lookup=lookup)
    with pytest.raises(CheckFailed, match="not defined"):
        run("lookup_shapes")


def test_student_exception_text_never_reaches_the_message():
    def lookup(Q, K, soft=True):
        raise ValueError(f"secret {Q.tolist()}")

    class Sneaky(Exception):
        pass

    def lookup2(Q, K, soft=True):
        raise Sneaky(str(Q.tolist()))

    with pytest.raises(CheckFailed) as info:
        run("lookup_shapes", lookup=lookup)
    assert str(info.value) == "lookup: raised ValueError"
    with pytest.raises(CheckFailed) as info:
        run("lookup_shapes", lookup=lookup2)
    assert str(info.value) == "lookup: raised an exception"


# --- the training check ------------------------------------------------------------

def test_training_reference_reaches_target():
    run("training_mse", AttentionTest=ModelRef)


class ModelEmbeddingNoGrad(_Base):  # a right forward whose embedding gets no gradient
    def forward(self, img, image_database):
        with torch.no_grad():
            x_q, x_v = self.img_mlp(img), self.img_mlp(image_database)
        _, w = self.mha(x_q, x_v, x_v)
        return torch.bmm(w, image_database), w


class ModelZeroInit(_Base):  # zeroed parameters and a forward that ignores them
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with torch.no_grad():
            for param in self.parameters():
                param.zero_()

    def forward(self, img, image_database):
        w = torch.full((img.shape[0], 1, image_database.shape[1]), 1 / image_database.shape[1],
                       device=img.device)
        return torch.bmm(w, image_database), w


@pytest.mark.parametrize("model, message", [
    (ModelUniform, "training: the training loss (output − query)² is not the lab's model's"),
    (ModelDetached, "loss cannot be back-propagated: the output does not depend on the model's parameters"),
    (ModelCopiesQuery, "loss cannot be back-propagated"),
    (ModelMhaOutput, "output has shape (B, 1, 32), not the query images' (B, 1, 784): "
                     "the training loss cannot be computed"),
    (ModelEmbeddingNoGrad, "training: no gradient of the loss reaches self.img_mlp (is the embedding "
                           "computed under torch.no_grad() or detached?)"),
])
def test_training_no_learning_fails(model, message):
    with pytest.raises(CheckFailed) as info:
        run("training_mse", AttentionTest=model)
    assert message in str(info.value)


def test_a_stronger_optimizer_in_the_job_does_not_buy_the_training_points(monkeypatch):
    """Issue 19: `torch.optim.Adam` patched to triple the learning rate made the embedding
    that gets no gradient reach the target (2/2). The job now runs no optimizer: the
    verdict is the gradients' at the grader's points, whatever the job's torch does."""
    real = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam", lambda params, lr, **kw: real(params, lr=3 * lr, **kw))
    with pytest.raises(CheckFailed, match="no gradient of the loss reaches self.img_mlp"):
        run("training_mse", AttentionTest=ModelEmbeddingNoGrad)


def test_the_training_verdict_ignores_the_models_own_initialisation_and_optimiser_view():
    class Untrained(ModelRef):
        def parameters(self, recurse=True):  # an optimiser would see nothing to update
            return iter([torch.nn.Parameter(torch.zeros(1))])

    run("training_mse", AttentionTest=Untrained)  # its forward trains as the lab's does
    with pytest.raises(CheckFailed):
        run("training_mse", AttentionTest=ModelZeroInit)


def test_reference_run_is_deterministic_and_reaches_the_target():
    p = checks.probes(BUNDLE)
    one, two = checks.reference_training(p, TRAINING), checks.reference_training(p, TRAINING)
    assert one.mse == two.mse and one.mse < TRAINING["target_mse"]
    assert one.points.keys() == two.points.keys()
    assert all(torch.equal(one.points[k], two.points[k]) for k in one.points)
    assert sorted(k for k in one.points if k.startswith("train_idx_")) == [
        "train_idx_0", "train_idx_1", "train_idx_2"]
    # the three points are three different models along the run
    w = [one.points[f"train_{k}.img_mlp.0.weight"] for k in "012"]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])


def test_a_grader_without_training_points_judges_no_one():
    """Without the points (probes() called without the settings) the verdict's loops
    would run zero times and pass every submission."""
    p = checks.probes(BUNDLE)
    with pytest.raises(RuntimeError, match="no training points"):
        checks.verdict("training_mse", {"training": {}}, p)
    with pytest.raises(ValueError, match="at least 2 steps"):
        checks.reference_training(p, {**TRAINING, "steps": 1})


def test_correct_gradients_are_within_a_thousandth_of_the_reference():
    p = checks.probes(BUNDLE, TRAINING)
    out = checks.evaluate(checks.CALLS_BY_ID["training"], {"AttentionTest": ModelRef}, p, {})
    errors = checks.gradient_errors({"training": out}, p)
    assert len(errors) == 3 * 6 and max(errors.values()) < checks.GRAD_RTOL / 100


def test_the_forward_check_loads_the_graders_parameters():
    """Issue 19: zeroed parameters made the reference's weights uniform, so a forward
    returning 1/N and the mean image earned 3/3."""
    assert _outcomes("forward", AttentionTest=ModelZeroInit) == {
        "forward_shapes": True, "forward_weights": False, "forward_output": False}
    p = checks.probes()
    for tag in checks.FORWARD_SETS:  # the grader's parameters give far-from-uniform weights
        w = checks._model_weights(p, tag)
        assert float(w.max()) > 0.05 and float(w.min()) < 0.005


def _outcomes(question: str, **defs) -> dict[str, bool]:
    """Pass (True) or fail (False) of every hidden case of `question`."""
    outcome = {}
    for cid, case in checks.CASES.items():
        if case.question != question:
            continue
        try:
            run(cid, **defs)
            outcome[cid] = True
        except CheckFailed as exc:
            assert "\n" not in str(exc)
            outcome[cid] = False
    return outcome


@pytest.mark.parametrize("impl", [lookup_constant, lookup_zeros])
def test_input_ignoring_lookup_earns_only_the_shape_case(impl):
    assert _outcomes("lookup", lookup=impl) == {
        "lookup_shapes": True, "lookup_hard_scores": False, "lookup_one_hot": False,
        "lookup_soft_softmax": False, "lookup_soft_rows": False}


def test_constant_soft_lookup_fails_rows_by_the_ordering_property():
    with pytest.raises(CheckFailed) as info:
        run("lookup_soft_rows", lookup=lookup_constant)
    assert "soft lookup: the weights do not order the keys as the scores Q Kᵀ do" in str(info.value)


def lookup_hard_max(Q, K, soft=True):  # one-hot rows at the best key, in both modes
    scores = Q.float() @ K.float().transpose(-2, -1)
    return F.one_hot(scores.argmax(-1), scores.shape[-1]).float()


def test_a_hard_maximum_earns_only_the_shape_and_one_hot_points():
    """Issue 19: one-hot rows are distributions that order like the scores, and passed
    "soft rows" (3 of 5). Soft points need a softmax of the scores (some temperature)."""
    assert _outcomes("lookup", lookup=lookup_hard_max) == {
        "lookup_shapes": True, "lookup_hard_scores": False, "lookup_one_hot": True,
        "lookup_soft_softmax": False, "lookup_soft_rows": False}
    with pytest.raises(CheckFailed, match="not a softmax of the scores"):
        run("lookup_soft_rows", lookup=lookup_hard_max)


@pytest.mark.parametrize("model, expected", [
    (ModelIgnoresModel, {"forward_shapes": True, "forward_weights": False, "forward_output": False}),
    (ModelUniform, {"forward_shapes": True, "forward_weights": False, "forward_output": False}),
    (ModelRightWeightsWrongOutput,
     {"forward_shapes": True, "forward_weights": True, "forward_output": False}),
    (ModelCopiesQuery, {"forward_shapes": True, "forward_weights": True, "forward_output": False}),
    (ModelRef, {"forward_shapes": True, "forward_weights": True, "forward_output": True}),
])
def test_forward_outcomes_per_case(model, expected):
    assert _outcomes("forward", AttentionTest=model) == expected


def test_model_ignoring_output_fails_as_not_the_models_retrieval():
    with pytest.raises(CheckFailed) as info:
        run("forward_output", AttentionTest=ModelIgnoresModel)
    assert ("the output is not the retrieval attn_output_weights @ image_database"
            in str(info.value))


def test_a_claimed_dtype_is_never_believed():
    """Issue 19: the job's `is_float` flag decided the float-tensor property, so a forged
    frame could claim it for integer one-hot results (w07 would regain its point). The
    verdict reads the returned array's own dtype."""
    p = checks.probes()
    out = {}
    for call_id in checks.CASES["lookup_one_hot"].calls:
        arrays = checks.evaluate(checks.CALLS_BY_ID[call_id], {"lookup": lookup_no_float}, p)
        assert arrays["value"].dtype.kind == "i"
        out[call_id] = {**arrays, "is_float": np.array(True)}  # what a forged frame would say
    with pytest.raises(CheckFailed, match="must return a float tensor"):
        checks.verdict("lookup_one_hot", out, p)


def test_a_complex_result_is_refused_before_the_channel():
    def lookup_complex(Q, K, soft=True):
        return (Q.float() @ K.float().transpose(-2, -1)).to(torch.cfloat)

    with pytest.raises(CheckFailed, match="returned a complex tensor, not a real one"):
        run("lookup_hard_scores", lookup=lookup_complex)
