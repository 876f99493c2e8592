"""The hidden checks: the reference passes every one, and typical mistakes fail the
right one with a one-line message that names the property."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import course_config as cfg
from coursekit import checks
from coursekit.checks import CheckFailed


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


LOOKUP_CHECKS = [checks.lookup_shapes, checks.lookup_hard_scores, checks.lookup_one_hot,
                 checks.lookup_soft_softmax, checks.lookup_soft_rows]


@pytest.mark.parametrize("check", LOOKUP_CHECKS, ids=lambda c: c.__name__)
def test_reference_lookup_passes(check):
    check(lookup_ref)


@pytest.mark.parametrize("check", [checks.retrieve_values, checks.retrieve_one_hot],
                         ids=lambda c: c.__name__)
def test_reference_retrieve_passes(check):
    check(retrieve_ref)


@pytest.mark.parametrize("check", [checks.forward_shapes, checks.forward_weights, checks.forward_output],
                         ids=lambda c: c.__name__)
def test_reference_model_passes(check):
    check(ModelRef)


@pytest.mark.parametrize("impl, check, message", [
    (lookup_wrong_dim, checks.lookup_soft_rows, "soft lookup: rows of the weights do not sum to 1"),
    (lookup_wrong_dim, checks.lookup_soft_softmax, "soft lookup: the weights are not softmax(Q Kᵀ)"),
    (lookup_softmax_always, checks.lookup_hard_scores, "hard lookup: with soft=False the result must be the raw scores"),
    (lookup_scaled, checks.lookup_hard_scores, "hard lookup: with soft=False the result must be the raw scores"),
    (lookup_scaled, checks.lookup_soft_softmax, "soft lookup: the weights are not softmax(Q Kᵀ)"),
    (lookup_no_float, checks.lookup_one_hot, "must return a float tensor, got torch.int64"),
    (lookup_2d_only, checks.lookup_shapes, "lookup with a batch of queries (3-D): raised RuntimeError"),
    (retrieve_mean, checks.retrieve_values, "retrieve: the result is not weights @ V"),
    (retrieve_mean, checks.retrieve_one_hot, "retrieve: one-hot weights over shuffled values"),
])
def test_wrong_function_fails_with_its_property(impl, check, message):
    with pytest.raises(CheckFailed) as info:
        check(impl)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("model, check, message", [
    (ModelMhaOutput, checks.forward_shapes, "output: returned shape (4, 1, 32), expected (4, 1, 784)"),
    (ModelCopiesQuery, checks.forward_output, "the output is not the retrieval"),
    (ModelUniform, checks.forward_weights, "the weights are not the attention weights of self.mha"),
])
def test_wrong_model_fails_with_its_property(model, check, message):
    with pytest.raises(CheckFailed, match=None) as info:
        check(model)
    assert message in str(info.value)


def test_unimplemented_stub_is_named():
    def lookup(Q, K, soft=True):
        raise NotImplementedError("lookup is not implemented yet")

    with pytest.raises(CheckFailed, match="soft lookup with a single query: not implemented yet"):
        checks.lookup_shapes(lookup)
    with pytest.raises(CheckFailed, match="lookup: not defined"):
        checks.lookup_shapes(None)


# --- the training check ------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from coursekit.data import make_bundle

    return make_bundle(tmp_path_factory.mktemp("data") / cfg.BUNDLE_FILE)


def _train(model, bundle):
    settings = {k: v for k, v in cfg.TRAINING_CHECK.items()}
    return checks.training_mse(model, bundle, **settings)


def test_training_reference_reaches_target(bundle):
    mse = _train(ModelRef, bundle)
    assert mse < cfg.TRAINING_CHECK["target_mse"]


@pytest.mark.parametrize("model, message", [
    (ModelUniform, "above the target"),
    (ModelDetached, "cannot be back-propagated"),
    (ModelCopiesQuery, "cannot be back-propagated"),
])
def test_training_no_learning_fails(model, message, bundle):
    with pytest.raises(CheckFailed) as info:
        _train(model, bundle)
    assert message in str(info.value)


def test_training_is_deterministic(bundle):
    assert _train(ModelRef, bundle) == _train(ModelRef, bundle)


def test_training_check_reads_bundled_settings(bundle, tmp_path, monkeypatch):
    """In the autograder, settings and data sit beside the module (as the build writes them)."""
    import json
    import shutil

    mod_dir = tmp_path / "ag"
    mod_dir.mkdir()
    shutil.copy(Path(checks.__file__), mod_dir / "attention_checks.py")
    shutil.copy(bundle, mod_dir / cfg.BUNDLE_FILE)
    (mod_dir / checks.CONFIG_FILE).write_text(
        json.dumps({**cfg.TRAINING_CHECK, "target_mse": 0.0, "bundle_file": cfg.BUNDLE_FILE}))
    monkeypatch.syspath_prepend(str(mod_dir))
    import importlib

    bundled = importlib.import_module("attention_checks")
    with pytest.raises(bundled.CheckFailed, match="above the target 0.000"):
        bundled.training_check(ModelRef)
