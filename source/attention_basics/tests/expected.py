"""What each entry of the lab's corpus (corpus.py beside this file) must get from the hidden
checks: the cases it fails, the message it must see, the exact first feedback line of the
question its mistake breaks. This is the lab's contract with the engine: the engine's tests
(tests/, through every front door) and this lab's test_corpus.py read it; any change in
grading shows up as a diff here."""

from __future__ import annotations

from ..checks import CASES
from .corpus import CORRECT


def cases(*questions: str) -> set[str]:
    """Every hidden case of `questions` (an entry that loses those questions whole)."""
    found = {c.question for c in CASES.values()}
    assert set(questions) <= found, f"no hidden cases for {sorted(set(questions) - found)} in checks.CASES"
    return {cid for cid, case in CASES.items() if case.question in questions}


# submission -> the hidden cases (checks.CASES) it fails; it passes every other one. Its
# scores follow from the points in lab.toml (tests.helpers.scores, EXPECTED there), so a
# change of points changes nothing here; a change in what a submission passes is a diff.
FAILS: dict[str, set[str]] = {
    **{name: set() for name in CORRECT},
    "w01_softmax_wrong_dim": {"lookup_soft_softmax", "lookup_soft_rows"},
    "w02_softmax_in_hard_mode": {"lookup_hard_scores", "lookup_one_hot"},
    "w03_no_softmax": {"lookup_soft_softmax", "lookup_soft_rows"},
    "w04_scaled_by_sqrt_d": {"lookup_hard_scores", "lookup_one_hot", "lookup_soft_softmax"},
    "w05_weights_transposed": cases("lookup"),
    "w06_retrieve_mean": cases("retrieve"),
    "w07_integer_scores": {"lookup_one_hot"},
    "w08_forward_returns_mha_output": cases("forward", "training"),
    "w09_keys_from_query": cases("forward", "training"),
    "w10_average_attn_weights_false": cases("forward", "training"),
    "w11_weights_detached": cases("training"),
    # output = uniform weights @ db is not the model's retrieval
    "w12_uniform_weights": cases("training") | {"forward_weights", "forward_output"},
    "w13_returns_query_image": cases("training") | {"forward_output"},
    "w14_only_lookup_done": cases("retrieve", "forward", "training"),
    "w15_stubs_left_in": cases("lookup", "retrieve", "forward", "training"),
    "w16_cell_raises_before_def": cases("lookup"),
    "w17_lookup_2d_only": cases("lookup"),
    "w18_retrieve_wrong_order": cases("retrieve"),
    # only the shape case
    "w19_constant_lookup": {"lookup_hard_scores", "lookup_one_hot", "lookup_soft_softmax", "lookup_soft_rows"},
    # only the shape case; nothing to train
    "w20_forward_ignores_model": cases("training") | {"forward_weights", "forward_output"},
    "w21_scaled_only_when_soft": {"lookup_soft_softmax"},
    # weights not from self.mha
    "w22_forward_own_lookup": cases("training") | {"forward_weights", "forward_output"},
    # raw scores and one-hot cases
    "w23_scaled_only_when_hard": {"lookup_hard_scores", "lookup_one_hot"},
    # softmax and rows cases
    "w24_softmax_over_queries": {"lookup_soft_softmax", "lookup_soft_rows"},
    "w25_retrieve_2d_only": {"retrieve_values"},  # batched weights only
    "w26_forward_cpu_only": cases("training"),  # trains on the CPU, not on a GPU: 0 everywhere
    "w27_forward_cuda_only": cases("forward", "training"),  # runs on a GPU only: 0 everywhere
    # no gradient reaches the embedding: Adam x3 buys nothing
    "w28_optimizer_patched": cases("training"),
    # zeroed parameters: the grader loads its own
    "w29_zeroed_model": cases("lookup", "retrieve", "training") | {"forward_weights", "forward_output"},
    # one-hot rows: the shape and one-hot cases only
    "w30_hard_max_lookup": {"lookup_hard_scores", "lookup_soft_softmax", "lookup_soft_rows"},
    "w31_second_softmax": cases("training") | {"forward_weights", "forward_output"},
    "w32_sharpened_weights": cases("training") | {"forward_weights", "forward_output"},
    # the model's weights, retrieved from the wrong images
    "w33_flipped_database": cases("training") | {"forward_output"},
    "w34_keys_detached": cases("training"),  # right values; the keys' embedding gets no gradient
    # weights of the wrong shape; training uses the output
    "w35_weights_squeezed": cases("forward"),
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
