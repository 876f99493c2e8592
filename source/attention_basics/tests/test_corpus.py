"""The lab's corpus (corpus.py) graded in-process by the engine: every correct submission
earns full marks, every wrong one fails exactly the hidden cases expected.py lists, with
the message and first feedback line listed there."""

from __future__ import annotations

import pytest

from tests.helpers import (A, ANSWERED, COURSE, CORRECT, EXPECTED, FAILS, FIRST_LINES, MESSAGES, QUESTIONS,
                           RELEASE, SUBMISSIONS, UNANSWERED, cases, write_corpus)

def test_corpus_is_big_enough():
    assert len(CORRECT) >= 10 and len(SUBMISSIONS) - len(CORRECT) >= 15
    assert set(EXPECTED) == set(SUBMISSIONS)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the whole corpus once (CPU), as built from the committed release."""
    paths = write_corpus(RELEASE, tmp_path_factory.mktemp("corpus"))
    grader = COURSE.grader(A)
    return {p.stem: grader.grade_path(p) for p in paths}


def test_failed_cases(graded):
    table = {name: {c.case for c in r.cases if not c.passed} for name, r in graded.items()}
    assert table == {name: failed | cases(*UNANSWERED) for name, failed in FAILS.items()}
    assert all(r.status == "ok" for r in graded.values())


def test_score_table(graded):
    table = {name: tuple(r.scores[q] for q in QUESTIONS) for name, r in graded.items()}
    assert table == EXPECTED


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
        "training": ["training: AttentionTest.forward: not implemented yet"],
        **{q: [f"{q}: not implemented yet"] for q in UNANSWERED}}


def test_correct_submissions_get_no_feedback_lines(graded):
    for name in CORRECT:
        feedback = graded[name].feedback()
        assert all(feedback.get(q, []) == [] for q in ANSWERED), name


def test_grading_is_deterministic(tmp_path):
    """The same submissions graded five times give the identical table."""
    names = ["c01_at_operator", "w01_softmax_wrong_dim", "w12_uniform_weights"]
    paths = write_corpus(RELEASE, tmp_path, names)
    grader = COURSE.grader(A)
    def table():
        reports = {p.stem: grader.grade_path(p) for p in paths}
        return {k: (r.scores, [c.message for c in r.cases]) for k, r in reports.items()}

    tables = [table() for _ in range(5)]
    assert all(t == tables[0] for t in tables)
