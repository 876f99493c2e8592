"""The one Report codec (coursekit/report.py): what `encode` writes `decode` reads back,
every malformed form is one ReportError, and `all_failed` fails every case."""

from __future__ import annotations

import json

import pytest

from tests.helpers import A
from coursekit.report import (MAX_CASES, MAX_REPORT_BYTES, STATUSES, CaseResult, Report, ReportError,
                              all_failed, decode, encode)

TABLE = A.lab().case_table(A.points)  # the lab's cases: what its reports hold
GOOD_CASE = {"case": "lookup_1", "question": "lookup", "points": 1.0, "passed": True, "message": ""}
GOOD = {"status": "ok", "message": "", "isolation": "namespaces", "device": "cpu", "cases": [GOOD_CASE]}


def _with(**fields) -> str:
    return json.dumps({**GOOD, **fields})


def _case(**fields) -> str:
    return _with(cases=[{**GOOD_CASE, **fields}])


MALFORMED = {
    "empty": "",
    "not_json": "{bad",
    "a_list": "[]",
    "a_number": "3",
    "lone_surrogate": "\ud800",
    "bytes_not_utf8": b"\xff\xfe{}",
    "too_large": " " * (MAX_REPORT_BYTES + 1),
    "too_deep": '{"status": "ok", "message": "", "cases": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "not_text": None,
    "a_dict": {"status": "ok"},
    "status_missing": json.dumps({"message": "", "cases": []}),
    "message_missing": json.dumps({"status": "ok", "cases": []}),
    "cases_missing": json.dumps({"status": "ok", "message": ""}),
    "unknown_field": _with(score=12),
    "status_a_number": _with(status=1),
    "status_unknown": _with(status="great"),
    "message_a_list": _with(message=["x"]),
    "message_too_long": _with(message="x" * 10_001),
    "isolation_a_list": _with(isolation=[]),
    "isolation_too_long": _with(isolation="n" * 101),
    "device_unknown": _with(device="tpu; rm -rf /"),
    "device_a_number": _with(device=1),
    "cases_an_object": _with(cases={}),
    "too_many_cases": _with(cases=[GOOD_CASE] * (MAX_CASES + 1)),
    "case_a_string": _with(cases=["lookup_1"]),
    "case_field_missing": _with(cases=[{k: v for k, v in GOOD_CASE.items() if k != "passed"}]),
    "case_unknown_field": _case(hint="x"),
    "points_a_string": _case(points="1"),
    "points_a_bool": _case(points=True),
    "points_negative": _case(points=-1),
    "points_beyond_the_assignment": _case(points=1e9),
    "points_infinite": _case(points=0).replace('"points": 0', '"points": Infinity'),
    "points_nan": _case(points=0).replace('"points": 0', '"points": NaN'),
    "passed_a_string": _case(passed="yes"),
    "passed_a_number": _case(passed=1),
    "question_unknown": _case(question="q9"),
    "case_id_a_number": _case(case=3),
    "case_message_too_long": _case(message="x" * 10_001),
}


def test_round_trip():
    report = Report(status="timeout", message="timed out after 60 s <b>", isolation="landlock",
                    device="cpu (CUDA failed in the sandbox)",
                    cases=[CaseResult("lookup_1", "lookup", 1.0, True),
                           CaseResult("retrieve_1", "retrieve", 2.0, False, "retrieve: wrong \ud800 ✓")])
    text = encode(report)
    assert decode(text, TABLE) == report
    assert decode(text.encode(), TABLE) == report  # bytes read from a file decode the same


def test_decode_fills_optional_fields():
    assert decode(json.dumps({"status": "bad input", "message": "x", "cases": []}), TABLE) == Report(
        status="bad input", message="x")


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_each_malformed_form_is_one_report_error(name):
    with pytest.raises(ReportError) as info:
        decode(MALFORMED[name], TABLE)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(("the report", "a case")) and "\n" not in message
    assert "rm -rf" not in message and "great" not in message  # never quotes the report


def test_all_failed_fails_every_case_of_the_course():
    report = all_failed("bad input", "a.ipynb is empty", TABLE)
    table = TABLE
    assert [c.case for c in report.cases] == list(table)
    assert all(not c.passed and c.message == "a.ipynb is empty" for c in report.cases)
    assert report.total == 0 and report.status == "bad input"
    assert {q: sum(p for qq, p in table.values() if qq == q) for q in A.points} == {
        q: pytest.approx(p) for q, p in A.points.items()}
    assert decode(encode(report), TABLE) == report


def test_all_failed_case_messages_and_refusals():
    cases = {"a": ("lookup", 2.0), "b": ("retrieve", 1.0)}
    report = all_failed("error", "not graded: no sandbox", cases, isolation="process",
                        case_message=lambda q: f"{q}: not graded")
    assert [(c.case, c.question, c.points, c.message) for c in report.cases] == [
        ("a", "lookup", 2.0, "lookup: not graded"), ("b", "retrieve", 1.0, "retrieve: not graded")]
    assert report.isolation == "process"
    assert all_failed("error", "x", cases, case_message="cannot be read").cases[1].message == "cannot be read"
    assert set(STATUSES) == {"ok", "timeout", "bad input", "error"}
    with pytest.raises(ValueError, match="unknown report status"):
        all_failed("fine", "x", cases)


def test_the_device_line_names_the_labs_device_call():
    """The engine knows no lab: where the device call ran is said in the lab's words
    (`Lab.device_label`, from the id of its call marked `device`), HTML-escaped."""
    from coursekit.report import gradescope_results

    lab = A.lab()
    device_call = next(c.id for c in lab.calls if c.device)
    assert lab.device_label == f"{device_call} check" == A.device_label
    report = Report(status="ok", message="", isolation="landlock", device="cpu <b>", cases=[])
    first = gradescope_results(report, {"public": "visible", "hidden": "visible"}, lab.device_label)["tests"][0]
    assert f"{device_call} check run on: cpu &lt;b&gt;" in first["output"]
    plain = gradescope_results(report, {"public": "visible", "hidden": "visible"})["tests"][0]
    assert "device check run on: cpu &lt;b&gt;" in plain["output"] and device_call not in plain["output"]


def test_reports_follow_the_question_order_of_lab_toml(tmp_path):
    """A TA who lists a new question's cases in checks.py before older ones, but its points
    last in lab.toml, still gets scores and feedback in lab.toml's order (the grade book's
    columns): before, a report followed checks.CASES and its score tuples came out
    shuffled against grades.csv (found by the TA trial of issue 21)."""
    import nbformat

    from tests.helpers import ref, variant, make_notebook, RELEASE

    order = list(reversed(A.points))  # a lab.toml whose [points] run the other way
    a, c = variant(points={q: A.points[q] for q in order})
    assert list(a.lab().case_table(a.points).values())[0][0] == order[0]
    path = tmp_path / f"{A.name}.ipynb"
    nbformat.write(make_notebook(RELEASE, ref()), path)
    report = c.grader(a).grade_path(path)
    assert list(report.scores) == list(report.possible) == order
    assert list(report.feedback()) == [q for q in order if q in report.feedback()]
    assert [case.question for case in report.cases] == sorted(
        (case.question for case in report.cases), key=order.index)
