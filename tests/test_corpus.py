"""The corpus: every correct submission earns full marks, every wrong one loses exactly the
points of the questions it breaks. The table below is the contract: any change in grading
shows up as a diff here."""

from __future__ import annotations

import pytest

import course_config as cfg
from coursekit.engine import default_grader
from tests.corpus import CORRECT, SUBMISSIONS, write_corpus

FULL = {q: float(p) for q, p in cfg.AUTOGRADED_POINTS.items()}

# submission -> (lookup, retrieve, forward, training)
EXPECTED: dict[str, tuple[float, float, float, float]] = {
    **{name: (5, 2, 3, 2) for name in CORRECT},
    "w01_softmax_wrong_dim": (3, 2, 3, 2),
    "w02_softmax_in_hard_mode": (3, 2, 3, 2),
    "w03_no_softmax": (3, 2, 3, 2),
    "w04_scaled_by_sqrt_d": (2, 2, 3, 2),
    "w05_weights_transposed": (0, 2, 3, 2),
    "w06_retrieve_mean": (5, 0, 3, 2),
    "w07_integer_scores": (4, 2, 3, 2),
    "w08_forward_returns_mha_output": (5, 2, 0, 0),
    "w09_keys_from_query": (5, 2, 0, 0),
    "w10_average_attn_weights_false": (5, 2, 0, 0),
    "w11_weights_detached": (5, 2, 3, 0),
    "w12_uniform_weights": (5, 2, 1, 0),  # output = uniform weights @ db is not the model's retrieval
    "w13_returns_query_image": (5, 2, 2, 0),
    "w14_only_lookup_done": (5, 0, 0, 0),
    "w15_stubs_left_in": (0, 0, 0, 0),
    "w16_cell_raises_before_def": (0, 2, 3, 2),
    "w17_lookup_2d_only": (0, 2, 3, 2),
    "w18_retrieve_wrong_order": (5, 0, 3, 2),
    "w19_constant_lookup": (1, 2, 3, 2),  # only the shape case
    "w20_forward_ignores_model": (5, 2, 1, 0),  # only the shape case; nothing to train
    "w21_scaled_only_when_soft": (4, 2, 3, 2),
    "w22_forward_own_lookup": (5, 2, 1, 0),  # weights not from self.mha
    "w23_scaled_only_when_hard": (3, 2, 3, 2),  # raw scores and one-hot cases
    "w24_softmax_over_queries": (3, 2, 3, 2),  # softmax and rows cases
    "w25_retrieve_2d_only": (5, 1, 3, 2),  # batched weights only
    "w26_forward_cpu_only": (5, 2, 3, 0),  # trains on the CPU, not on a GPU: 0 everywhere
    "w27_forward_cuda_only": (5, 2, 0, 0),  # runs on a GPU only: 0 everywhere
    "w28_optimizer_patched": (5, 2, 3, 0),  # no gradient reaches the embedding: Adam x3 buys nothing
    "w29_zeroed_model": (0, 0, 1, 0),  # zeroed parameters: the grader loads its own
    "w30_hard_max_lookup": (2, 2, 3, 2),  # one-hot rows: the shape and one-hot cases only
    "w31_second_softmax": (5, 2, 1, 0),
    "w32_sharpened_weights": (5, 2, 1, 0),
    "w33_flipped_database": (5, 2, 2, 0),  # the model's weights, retrieved from the wrong images
    "w34_keys_detached": (5, 2, 3, 0),  # right values; the keys' embedding gets no gradient
    "w35_weights_squeezed": (5, 2, 0, 2),  # weights of the wrong shape; training uses the output
}

# the one-line message each wrong submission gets for a question it loses points on
MESSAGES = {
    "w01_softmax_wrong_dim": "softmax over the queries, not the keys",
    "w02_softmax_in_hard_mode": "hard lookup: applies a softmax when soft=False",
    "w03_no_softmax": "soft lookup: the weights are not softmax(Q Kᵀ): these are the raw scores",
    "w04_scaled_by_sqrt_d": "hard lookup: scales by √d when soft=False",
    "w05_weights_transposed": "returned a result of the wrong shape (expected (1, 100))",
    "w06_retrieve_mean": "retrieve: the result is not weights @ V",
    "w07_integer_scores": "must return a float tensor, not an integer one",
    "w08_forward_returns_mha_output": "output has the wrong shape (expected (4, 1, 784))",
    "w09_keys_from_query": "AttentionTest.forward: raised",
    "w10_average_attn_weights_false": "AttentionTest.forward: raised RuntimeError",
    "w11_weights_detached": "training: AttentionTest.forward: loss cannot be back-propagated",
    "w12_uniform_weights": "the weights are not the attention weights of self.mha",
    "w13_returns_query_image": "the output is not the retrieval attn_output_weights @ image_database",
    "w14_only_lookup_done": "retrieve: not implemented yet",
    "w15_stubs_left_in": "not implemented yet",
    "w16_cell_raises_before_def": "lookup: not defined (run the cell that defines it)",
    "w17_lookup_2d_only": "lookup with a batch of queries (3-D): raised RuntimeError",
    "w18_retrieve_wrong_order": "retrieve with the weights of a single query: returned a result of the wrong shape",
    "w19_constant_lookup": "soft lookup: the weights do not order the keys as the scores Q Kᵀ do",
    "w20_forward_ignores_model": "the output is not the retrieval attn_output_weights @ image_database",
    "w28_optimizer_patched": "training: no gradient of the loss reaches self.img_mlp",
    "w29_zeroed_model": "the weights are not the attention weights of self.mha",
    "w30_hard_max_lookup": "soft lookup: the weights are not softmax(Q Kᵀ) over the keys",
    "w31_second_softmax": "the weights are not the attention weights of self.mha",
    "w33_flipped_database": "the output is not the retrieval attn_output_weights @ image_database",
    "w34_keys_detached": "training: the gradient of the loss for self.img_mlp is not the lab's model's",
}


# The exact first feedback line of the question each mistake breaks: the cause, named
# (issue 11: these read "the raw scores", "one 1 per row", "cannot be back-propagated" or
# "with a single query" before, whatever the mistake was).
FIRST_LINES = {
    "w01_softmax_wrong_dim": ("lookup", "soft lookup with a single query and multiple queries: "
                              "softmax over the queries, not the keys (take it over the last dimension)"),
    "w02_softmax_in_hard_mode": ("lookup", "hard lookup: applies a softmax when soft=False "
                                 "(hard attention returns the raw scores Q Kᵀ)"),
    "w03_no_softmax": ("lookup", "soft lookup: the weights are not softmax(Q Kᵀ): these are the raw "
                       "scores (soft=True applies a softmax over the keys)"),
    "w04_scaled_by_sqrt_d": ("lookup", "hard lookup: scales by √d when soft=False "
                             "(hard attention: raw scores Q Kᵀ, no scaling)"),
    "w21_scaled_only_when_soft": ("lookup", "soft lookup: scales the scores by √d: "
                                  "the lab's softmax(Q Kᵀ) has no scaling"),
    "w23_scaled_only_when_hard": ("lookup", "hard lookup: scales by √d when soft=False "
                                  "(hard attention: raw scores Q Kᵀ, no scaling)"),
    "w24_softmax_over_queries": ("lookup", "soft lookup: softmax over the queries, not the keys "
                                 "(take it over the last dimension)"),
    "w08_forward_returns_mha_output": ("training", "training: AttentionTest.forward: output has shape "
                                       "(B, 1, 32), not the query images' (B, 1, 784): the training "
                                       "loss cannot be computed"),
    "w11_weights_detached": ("training", "training: AttentionTest.forward: loss cannot be back-propagated: "
                             "the output does not depend on the model's parameters"),
    "w14_only_lookup_done": ("retrieve", "retrieve: not implemented yet"),
    "w15_stubs_left_in": ("lookup", "lookup: not implemented yet"),
    "w17_lookup_2d_only": ("lookup", "lookup with a batch of queries (3-D): raised RuntimeError"),
    "w25_retrieve_2d_only": ("retrieve", "retrieve with a batch of weights (3-D): raised RuntimeError"),
    "w26_forward_cpu_only": ("training", "training: AttentionTest.forward: forward mixes devices: it makes "
                             "a tensor on the CPU while the model is on another device; create it with "
                             "device=img.device (the grader may train on a GPU)"),
}


def test_corpus_is_big_enough():
    assert len(CORRECT) >= 10 and len(SUBMISSIONS) - len(CORRECT) >= 15
    assert set(EXPECTED) == set(SUBMISSIONS)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the whole corpus once (CPU), as built from the committed release."""
    paths = write_corpus(cfg.RELEASE_DIR / f"{cfg.ASSIGNMENT}.ipynb", tmp_path_factory.mktemp("corpus"))
    grader = default_grader()
    return {p.stem: grader.grade_path(p) for p in paths}


def test_score_table(graded):
    table = {name: tuple(r.scores[q] for q in cfg.AUTOGRADED_POINTS) for name, r in graded.items()}
    assert table == {k: tuple(float(x) for x in v) for k, v in EXPECTED.items()}
    assert all(r.status == "ok" for r in graded.values())


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_feedback_names_the_property(graded, name):
    lines = [line for lines in graded[name].feedback().values() for line in lines]
    assert any(MESSAGES[name] in line for line in lines), lines
    for line in lines:
        assert "\n" not in line and len(line) < 200
        for secret in ("_SEED", "probe", "randn", "Traceback", "attention_checks"):
            assert secret not in line


@pytest.mark.parametrize("name", sorted(FIRST_LINES))
def test_first_line_names_the_cause(graded, name):
    question, line = FIRST_LINES[name]
    assert graded[name].feedback()[question][0] == line


def test_each_failed_property_is_listed_once(graded):
    for name in set(SUBMISSIONS) - set(CORRECT):
        for question, lines in graded[name].feedback().items():
            assert len(lines) == len(set(lines)), (name, question, lines)
    assert graded["w15_stubs_left_in"].feedback() == {
        "lookup": ["lookup: not implemented yet"], "retrieve": ["retrieve: not implemented yet"],
        "forward": ["AttentionTest.forward: not implemented yet"],
        "training": ["training: AttentionTest.forward: not implemented yet"]}


def test_correct_submissions_get_no_feedback_lines(graded):
    for name in CORRECT:
        assert all(lines == [] for lines in graded[name].feedback().values()), name


def test_grading_is_deterministic(tmp_path):
    """The same submissions graded five times give the identical table."""
    names = ["c01_at_operator", "w01_softmax_wrong_dim", "w12_uniform_weights"]
    paths = write_corpus(cfg.RELEASE_DIR / f"{cfg.ASSIGNMENT}.ipynb", tmp_path, names)
    grader = default_grader()
    def table():
        reports = {p.stem: grader.grade_path(p) for p in paths}
        return {k: (r.scores, [c.message for c in r.cases]) for k, r in reports.items()}

    tables = [table() for _ in range(5)]
    assert all(t == tables[0] for t in tables)
