"""Hostile submissions: every malformed file becomes that submission's one-line verdict,
sizes are bounded before anything is read or decompressed, links are never followed,
and nothing a student controls can stop a batch, escape `feedback/` or inject into the
CSV, Markdown or results.json a TA or student opens.

Run inside `unshare --pid --fork --mount-proc` like the rest of the suite.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

import course_config as cfg
from coursekit import grade
from coursekit import submission
from coursekit.submission import SubmissionError, gradable_cells, read_submission


def _nb(cells: list | None = None, **extra) -> dict:
    """A minimal valid notebook (format 4) as a dict."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": cells if cells is not None else [
              {"cell_type": "code", "id": "c1", "metadata": {}, "source": "x = 1",
               "outputs": [], "execution_count": None}]}
    nb.update(extra)
    return nb


def _code(**fields) -> dict:
    cell = {"cell_type": "code", "id": "c1", "metadata": {}, "source": "x = 1",
            "outputs": [], "execution_count": None}
    cell.update(fields)
    return {k: v for k, v in cell.items() if v is not _DROP}


_DROP = object()


# --- submission.py: damaged notebooks ----------------------------------------------

DAMAGED = {
    "code_cell_without_source": (_nb([_code(source=_DROP)]), "cell 1 has no source"),
    "source_is_a_number": (_nb([_code(source=42)]), "cell 1 has a source that is not text"),
    "source_list_of_numbers": (_nb([_code(source=["a = 1\n", 2])]), "cell 1 has a source that is not text"),
    "cell_not_an_object": (_nb([_code(), "print('hi')"]), "cell 2 is not an object"),
    "cell_metadata_a_list": (_nb([_code(metadata=["otter_ignore"])]), "cell 1 has metadata that is not an object"),
    "tags_a_string": (_nb([_code(metadata={"tags": "otter_ignore"})]), "cell 1 has tags that are not a list of strings"),
    "tags_list_of_numbers": (_nb([_code(metadata={"tags": [1]})]), "cell 1 has tags that are not a list of strings"),
    "notebook_metadata_a_list": (_nb(metadata=[1, 2]), "its metadata is not an object"),
    "cells_an_object": (_nb(cells={"a": 1}), "its cells are not a list"),
    "cell_type_missing": (_nb([_code(cell_type=_DROP)]), "cell 1 has no cell type"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_notebook_is_bad_input(case, tmp_path):
    nb, problem = DAMAGED[case]
    path = tmp_path / "sub.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(SubmissionError) as err:
        read_submission(path)
    assert str(err.value) == f"sub.ipynb is a damaged notebook ({problem})"


def test_gradable_cells_refuses_a_damaged_notebook_it_did_not_read():
    """The otter plugin hands gradable_cells a notebook otter read: no AttributeError."""
    import nbformat

    nb = nbformat.from_dict(_nb([_code(source=_DROP)]))
    with pytest.raises(SubmissionError, match=r"^the submission is a damaged notebook \(cell 1 has no source\)$"):
        gradable_cells(nb)


def test_gradable_cells_joins_list_sources_and_skips_ignored_cells():
    import nbformat

    nb = nbformat.from_dict(_nb([_code(source=["a = 1\n", "b = 2"]),
                                 _code(source="c = 3", metadata={"tags": [cfg.IGNORE_TAG]})]))
    assert gradable_cells(nb) == ["a = 1\nb = 2"]


def test_deeply_nested_json_is_bad_input(tmp_path):
    path = tmp_path / "deep.ipynb"
    path.write_text('{"cells": [' + "[" * 200_000 + "]" * 200_000 + '], "nbformat": 4}')
    with pytest.raises(SubmissionError) as err:
        read_submission(path)
    assert str(err.value) == "deep.ipynb is not a notebook: its JSON is nested too deeply"


def test_moderately_deep_metadata_is_bad_input(tmp_path):
    """Deep enough for the JSON parser, too deep for a notebook (limit 100 levels)."""
    nested: object = 1
    for _ in range(300):
        nested = {"a": nested}
    path = tmp_path / "deep.ipynb"
    path.write_text(json.dumps(_nb(metadata={"x": nested})))
    with pytest.raises(SubmissionError, match=r"^deep\.ipynb is not a notebook: its JSON is nested too deeply$"):
        read_submission(path)


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    path = tmp_path / "ok.ipynb"
    source = 'x = "\\"' + "[" * 200 + '"'  # an escaped quote, then brackets, in a string
    path.write_text(json.dumps(_nb([_code(source=source)], metadata={"note": "[{" * 300})))
    assert gradable_cells(read_submission(path)) == [source]


def test_valid_notebook_still_reads(tmp_path):
    path = tmp_path / "ok.ipynb"
    path.write_text(json.dumps(_nb([_code(source=["a = 1\n", "b = 2"])])))
    nb = read_submission(path)
    assert gradable_cells(nb) == ["a = 1\nb = 2"]
    assert submission.check_submission_file(path) is None


# --- submission.py: zips --------------------------------------------------------------

def _patch_sizes(zip_bytes: bytes, member: str, size: int) -> bytes:
    """The zip with `member`'s uncompressed size rewritten (local and central headers)."""
    data = bytearray(zip_bytes)
    name = member.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        if data[local + 30: local + 30 + len(name)] == name:
            struct.pack_into("<L", data, local + 22, size)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        if data[central + 46: central + 46 + len(name)] == name:
            struct.pack_into("<L", data, central + 24, size)
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


@pytest.fixture
def one_mb_cap(monkeypatch):
    monkeypatch.setattr(cfg, "MAX_SUBMISSION_MB", 1)
    return 1 << 20


@pytest.fixture
def decompressed(monkeypatch):
    """Counts every byte zipfile decompresses (whatever the reading code asks for)."""
    counter = {"bytes": 0}
    real = zipfile._get_decompressor

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def decompress(self, data, max_length=0):
            out = self.inner.decompress(data, max_length)
            counter["bytes"] += len(out)
            return out

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

    monkeypatch.setattr(zipfile, "_get_decompressor", lambda kind: Counting(real(kind)))
    return counter


def test_zip_member_lying_about_its_size_is_never_decompressed_past_the_cap(tmp_path, one_mb_cap, decompressed):
    buf = io.BytesIO()
    body = json.dumps(_nb()).encode() + b" " * (8 << 20)  # 8 MB, a few KB compressed
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lab.ipynb", body)
    path = tmp_path / "bomb.zip"
    path.write_bytes(_patch_sizes(buf.getvalue(), "lab.ipynb", 1000))  # the header says 1000 bytes
    assert path.stat().st_size < one_mb_cap
    with pytest.raises(SubmissionError) as err:
        read_submission(path)
    assert str(err.value) == "bomb.zip is a damaged zip file"
    assert decompressed["bytes"] <= one_mb_cap + 1 + 65536  # one read buffer past the cap at most


def test_notebook_over_the_cap_in_a_small_zip_is_refused(tmp_path, one_mb_cap):
    path = tmp_path / "small.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lab.ipynb", json.dumps(_nb()) + " " * (2 << 20))
    assert path.stat().st_size < 100_000
    message = "small.zip: the notebook in it is larger than 1 MB"
    with pytest.raises(SubmissionError, match=f"^{message}$"):
        submission.check_submission_file(path)
    with pytest.raises(SubmissionError, match=f"^{message}$"):
        read_submission(path)


def test_check_submission_file_refuses_an_oversize_file(tmp_path, one_mb_cap):
    path = tmp_path / "big.ipynb"
    path.write_bytes(b" " * (one_mb_cap + 1))
    with pytest.raises(SubmissionError, match=r"^big\.ipynb is larger than 1 MB$"):
        submission.check_submission_file(path)


def test_check_submission_file_accepts_a_good_zip(tmp_path):
    path = tmp_path / "good.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("lab.ipynb", json.dumps(_nb()))
    assert submission.check_submission_file(path) is None
    assert gradable_cells(read_submission(path)) == ["x = 1"]


def test_zip_with_too_many_members_is_refused(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("lab.ipynb", json.dumps(_nb()))
        for i in range(10_000):
            zf.writestr(f"f{i}", b"")
    with pytest.raises(SubmissionError, match=r"^many\.zip holds more than 10000 files$"):
        read_submission(path)


@pytest.mark.parametrize("member", ["../../lab.ipynb", "/etc/lab.ipynb", "a/../../lab.ipynb", "C:\\lab.ipynb"])
def test_zip_member_with_an_unsafe_path_is_refused(member, tmp_path):
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(member), json.dumps(_nb()))
    with pytest.raises(SubmissionError, match=r"^up\.zip holds a file with an unsafe path \("):
        read_submission(path)


def test_zip_member_names_in_messages_are_one_short_line(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a\nFAKE: full marks\r" + "x" * 200 + ".ipynb", json.dumps(_nb()))
        zf.writestr("b\x1b[31m.ipynb", json.dumps(_nb()))
    with pytest.raises(SubmissionError) as err:
        read_submission(path)
    message = str(err.value)
    assert message.startswith("two.zip holds more than one notebook (a?FAKE: full marks?xxx")
    assert message.isprintable() and len(message) < 200


def test_assignment_name_in_message_is_one_short_line(tmp_path):
    path = tmp_path / "other.ipynb"
    path.write_text(json.dumps(_nb(metadata={"otter": {"assignment_name": "lab\n\n# 12/12 full marks" + "!" * 500}})))
    with pytest.raises(SubmissionError) as err:
        read_submission(path)
    message = str(err.value)
    assert message.startswith("other.ipynb is a notebook of assignment 'lab??# 12/12 full marks!!!")
    assert message.endswith(f"not '{cfg.ASSIGNMENT}'")
    assert message.isprintable() and len(message) < 200


def test_file_name_in_message_is_one_short_line(tmp_path):
    path = tmp_path / ("evil\nline" + "y" * 200 + ".ipynb")
    path.write_text("")
    with pytest.raises(SubmissionError) as err:
        read_submission(path)
    message = str(err.value)
    assert message.startswith("evil?lineyyy") and message.endswith(" is empty")
    assert message.isprintable() and len(message) < 100


# --- submission.py: links and special files ----------------------------------------

def test_symlinked_submission_is_not_followed(tmp_path):
    target = tmp_path / "real.ipynb"
    target.write_text(json.dumps(_nb()))
    link = tmp_path / "sub.ipynb"
    link.symlink_to(target)
    with pytest.raises(SubmissionError, match=r"^sub\.ipynb is a link, not a file$"):
        read_submission(link)
    with pytest.raises(SubmissionError, match=r"^sub\.ipynb is a link, not a file$"):
        submission.check_submission_file(link)


def test_fifo_submission_does_not_hang(tmp_path):
    path = tmp_path / "pipe.ipynb"
    os.mkfifo(path)
    with pytest.raises(SubmissionError, match=r"^pipe\.ipynb is not a regular file$"):
        read_submission(path)


def test_not_utf8_in_a_zip_is_bad_input(tmp_path):
    path = tmp_path / "latin.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("lab.ipynb", b'{"cells": [], "nbformat": 4, "x": "\xe9"}')
    with pytest.raises(SubmissionError, match=r"^latin\.zip:lab\.ipynb is not a notebook: not UTF-8 text$"):
        read_submission(path)


# --- grade.py: student ids and searching ----------------------------------------------

def _touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_student_ids_are_safe(tmp_path):
    subs = tmp_path / "subs"
    for name in ["...ipynb", "=1+2.ipynb", "alice (1).ipynb", "a\nb.ipynb", ".hidden.ipynb",
                 "José.ipynb", "x" * 200 + ".ipynb", "sec1/bob.ipynb", "Carol.ipynb", "carol.zip",
                 "carol#2.ipynb", "-rf.ipynb", "李.ipynb"]:
        _touch(subs / name)
    ids = {p.relative_to(subs).as_posix(): sid for sid, p in grade.find_submissions([subs])}
    assert ids == {
        "...ipynb": "submission", "=1+2.ipynb": "1+2", "alice (1).ipynb": "alice_1", "a\nb.ipynb": "a_b",
        ".hidden.ipynb": "hidden", "José.ipynb": "Jose", "x" * 200 + ".ipynb": "x" * 100,
        "sec1/bob.ipynb": "sec1__bob", "Carol.ipynb": "Carol", "carol#2.ipynb": "carol#2",
        "carol.zip": "carol#3", "-rf.ipynb": "rf", "李.ipynb": "submission#2"}


def test_gradescope_metadata_ids_are_safe(tmp_path):
    export = tmp_path / "export"
    for sub in ("submission_1", "submission_2", "submission_3"):
        _touch(export / sub / "lab.ipynb")
    (export / "submission_metadata.yml").write_text(
        "submission_1:\n  :submitters:\n  - :sid: '../../etc/passwd'\n"
        "submission_2: [1, 2]\n"
        "submission_3:\n  :submitters:\n  - :email: \"<b>x</b>@a.edu\"\n")
    found = [(sid, p.parent.name) for sid, p in grade.find_submissions([export])]
    assert found == [("etc_passwd", "submission_1"), ("submission_2", "submission_2"),
                     ("b_x_b_@a.edu", "submission_3")]


def test_search_never_follows_links_or_reads_special_files(tmp_path):
    subs = tmp_path / "subs"
    _touch(subs / "real.ipynb")
    outside = tmp_path / "outside"
    _touch(outside / "secret.ipynb")
    (subs / "linked.ipynb").symlink_to(outside / "secret.ipynb")
    (subs / "linked_dir").symlink_to(outside)
    os.mkfifo(subs / "pipe.ipynb")
    assert [p.name for _, p in grade.find_submissions([subs])] == ["real.ipynb"]


def test_gradescope_export_skips_linked_folders(tmp_path):
    export = tmp_path / "export"
    _touch(export / "submission_1" / "lab.ipynb")
    _touch(tmp_path / "outside" / "lab.ipynb")
    (export / "submission_2").symlink_to(tmp_path / "outside")
    (export / "submission_metadata.yml").write_text("submission_1:\n  :submitters:\n  - :sid: '1'\n")
    assert [(sid, p.parent.name) for sid, p in grade.find_submissions([export])] == [("1", "submission_1")]


# --- grade.py: outputs ------------------------------------------------------------------

def _report(status="ok", message="", isolation="namespaces", cases=()):
    scores = {q: 0.0 for q in cfg.AUTOGRADED_POINTS}
    feedback = {q: [] for q in cfg.AUTOGRADED_POINTS}
    for c in cases:
        if c.passed:
            scores[c.question] += c.points
        else:
            feedback[c.question].append(c.message)
    return SimpleNamespace(status=status, message=message, isolation=isolation, cases=list(cases),
                           scores=scores, total=sum(scores.values()), feedback=lambda: feedback)


def test_csv_cells_are_formula_safe(tmp_path):
    path = tmp_path / "grades.csv"
    grade.write_csv([("=1+2", _report("bad input", "=HYPERLINK(\"http://x\")")),
                     ("@sum", _report(message="-2+3")), ("+1", _report(message="\tx")),
                     ("bob", _report(message="fine"))], path)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["student", *cfg.AUTOGRADED_POINTS, "total", "status", "isolation", "device", "message"]
    assert [r[0] for r in rows[1:]] == ["'=1+2", "'@sum", "'+1", "bob"]
    assert [r[-1] for r in rows[1:]] == ["'=HYPERLINK(\"http://x\")", "'-2+3", "'\tx", "fine"]
    assert rows[1][1:len(cfg.AUTOGRADED_POINTS) + 4] == ["0"] * len(cfg.AUTOGRADED_POINTS) + ["0", "bad input", "namespaces"]


def test_csv_isolation_is_empty_for_reports_without_it(tmp_path):
    path = tmp_path / "grades.csv"
    report = _report()
    del report.isolation
    grade.write_csv([("bob", report)], path)
    row = next(csv.DictReader(path.open()))
    assert (row["status"], row["isolation"]) == ("ok", "")


def test_markdown_report_escapes_student_text():
    case = SimpleNamespace(case="lookup_1", question="lookup", points=5.0, passed=False,
                           message="lookup: <script>x</script> | `y` [a](javascript:z)\n# fake")
    text = grade.markdown_report("<img src=x onerror=alert(1)>|`", _report(
        "bad input", "sub.ipynb:<b>x</b>\n\n**12/12**", cases=[case]))
    assert "<img" not in text and "<script>" not in text and "<b>" not in text
    assert "# Attention Basics: &lt;img src=x onerror=alert(1)&gt;\\|\\`" in text
    assert "> bad input: sub.ipynb:&lt;b&gt;x&lt;/b&gt; \\*\\*12/12\\*\\*" in text
    assert "| lookup | 0 / 5 | lookup: &lt;script&gt;x&lt;/script&gt; \\| \\`y\\` \\[a\\](javascript:z) # fake |" in text
    assert not any(line.startswith("# fake") for line in text.splitlines())


def test_gradescope_results_escape_html():
    case = SimpleNamespace(case="lookup_1", question="lookup", points=5.0, passed=False,
                           message="lookup: <img src=x> & more")
    from coursekit.report import gradescope_results

    out = gradescope_results(_report("bad input", "a<b>.ipynb is empty", cases=[case]))
    assert out["output"] == "bad input: a&lt;b&gt;.ipynb is empty"
    lookup = next(t for t in out["tests"] if t["name"] == "lookup")
    assert "❌ lookup: &lt;img src=x&gt; &amp; more" in lookup["output"].splitlines()
    assert "<" not in json.dumps(out)


# --- grade.py: stored reports -------------------------------------------------------------

GOOD_CASE = {"case": "lookup_1", "question": "lookup", "points": 5.0, "passed": True, "message": ""}
MALFORMED_REPORTS = {
    "not_json": "{bad",
    "a_list": "[]",
    "status_a_number": json.dumps({"status": 1, "message": "", "cases": []}),
    "message_missing": json.dumps({"status": "ok", "cases": []}),
    "cases_an_object": json.dumps({"status": "ok", "message": "", "cases": {}}),
    "points_a_string": json.dumps({"status": "ok", "message": "", "cases": [{**GOOD_CASE, "points": "5"}]}),
    "points_a_bool": json.dumps({"status": "ok", "message": "", "cases": [{**GOOD_CASE, "points": True}]}),
    "points_infinite": '{"status": "ok", "message": "", "cases": [{"case": "c", "question": "lookup", '
                       '"points": Infinity, "passed": true, "message": ""}]}',
    "passed_a_string": json.dumps({"status": "ok", "message": "", "cases": [{**GOOD_CASE, "passed": "yes"}]}),
    "unknown_question": json.dumps({"status": "ok", "message": "", "cases": [{**GOOD_CASE, "question": "q9"}]}),
    "too_many_cases": json.dumps({"status": "ok", "message": "", "cases": [GOOD_CASE] * 2000}),
    "isolation_a_list": json.dumps({"status": "ok", "message": "", "cases": [], "isolation": []}),
    "device_unknown": json.dumps({"status": "ok", "message": "", "cases": [], "device": "tpu; rm -rf /"}),
    "device_a_number": json.dumps({"status": "ok", "message": "", "cases": [], "device": 1}),
    "deep": '{"status": "ok", "message": "", "cases": []' + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_REPORTS))
def test_load_report_refuses_malformed_reports(case, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(MALFORMED_REPORTS[case])
    with pytest.raises(ValueError):
        grade._load_report(path)


def test_load_report_reads_isolation(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"status": "ok", "message": "", "cases": [GOOD_CASE], "isolation": "namespaces"}))
    report = grade._load_report(path)
    assert (report.status, report.total, getattr(report, "isolation", None)) == ("ok", 5.0, "namespaces")


# --- grade.py: the batch goes on ---------------------------------------------------------

def _fake_grade_one(path: str, report_path: str) -> str:
    """Stands in for the engine in the workers: fails or dies on cue, by file name."""
    name = Path(path).name
    if name.startswith("boom"):
        raise RuntimeError("grader bug with student text <b>")
    if name.startswith("die"):
        os._exit(9)  # the worker process dies, as a kill -9 or the OOM killer would do
    report = {"status": "ok", "message": "", "isolation": "fake", "cases": [GOOD_CASE]}
    Path(report_path).write_text(json.dumps(report))
    return report_path


@pytest.fixture
def fake_workers(monkeypatch):
    monkeypatch.setattr(grade, "_load_grader", lambda slot: None, raising=False)
    monkeypatch.setattr(grade, "_grade_one", _fake_grade_one)


def _rows(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_submission_never_stops_the_batch(jobs, fake_workers, tmp_path):
    subs = tmp_path / "subs"
    for name in ["a", "b", "boom", "c", "die", "d", "e"]:
        _touch(subs / f"{name}.ipynb", name)
    grade.grade_all([subs], tmp_path / "out", jobs=jobs, progress=False)
    rows = _rows(tmp_path / "out")
    assert {s: (r["status"], r["total"]) for s, r in rows.items()} == {
        "a": ("ok", "5"), "b": ("ok", "5"), "c": ("ok", "5"), "d": ("ok", "5"), "e": ("ok", "5"),
        "boom": ("error", "0"), "die": ("error", "0")}
    assert rows["boom"]["message"] == "grading failed with an internal error (RuntimeError); it is retried on the next run"
    assert rows["die"]["message"] == "the grading process died while grading it; it is retried on the next run"
    assert rows["a"]["isolation"] == "fake"
    # errors are not stored: the next run grades them again
    assert len(list((tmp_path / "out" / ".reports").glob("*.json"))) == 5


@pytest.mark.parametrize("case", ["not_json", "points_a_string", "too_many_cases"])
def test_malformed_stored_report_is_regraded(case, fake_workers, tmp_path):
    subs = tmp_path / "subs"
    _touch(subs / "a.ipynb", "a")
    out = tmp_path / "out"
    grade.grade_all([subs], out, jobs=1, progress=False)
    [stored] = (out / ".reports").glob("*.json")
    stored.write_text(MALFORMED_REPORTS[case])
    grade.grade_all([subs], out, jobs=1, progress=False)
    assert json.loads(stored.read_text())["cases"] == [GOOD_CASE]
    assert _rows(out)["a"]["total"] == "5"


def test_a_stored_error_report_is_graded_again(fake_workers, tmp_path):
    """A report whose grading failed (its sandbox did not start: status "error") is the
    grader's fault, not a grade: the next run grades the submission again."""
    subs = tmp_path / "subs"
    _touch(subs / "a.ipynb", "a")
    out = tmp_path / "out"
    grade.grade_all([subs], out, jobs=1, progress=False)
    [stored] = (out / ".reports").glob("*.json")
    stored.write_text(json.dumps({"status": "error", "message": "not graded: the sandbox did not start",
                                  "isolation": "", "cases": []}))
    grade.grade_all([subs], out, jobs=1, progress=False)
    assert (_rows(out)["a"]["status"], _rows(out)["a"]["total"]) == ("ok", "5")
    assert json.loads(stored.read_text())["status"] == "ok"


def test_dot_dot_submission_stays_inside_feedback(fake_workers, tmp_path):
    subs = tmp_path / "subs"
    _touch(subs / "...ipynb", "x")
    out = tmp_path / "out" / "grades"
    grade.grade_all([subs], out, jobs=1, progress=False)
    assert not (out / "report.md").exists() and not (out / "results.json").exists()
    assert not (out.parent / "report.md").exists()
    assert (out / "feedback" / "submission" / "report.md").is_file()
    assert list(_rows(out)) == ["submission"]


def test_hostile_files_graded_for_real_in_one_batch(tmp_path):
    """The real engine: damaged and deep notebooks and a link are rows, not crashes."""
    subs = tmp_path / "subs"
    _touch(subs / "nosource.ipynb", json.dumps(_nb([_code(source=_DROP)])))
    _touch(subs / "deep.ipynb", '{"cells": [' + "[" * 200_000 + "]" * 200_000 + '], "nbformat": 4}')
    _touch(subs / "tags.ipynb", json.dumps(_nb([_code(metadata={"tags": "otter_ignore"})])))
    (subs / "link.ipynb").symlink_to(subs / "tags.ipynb")  # never searched: not a regular file
    out = tmp_path / "out"
    grade.grade_all([subs, subs / "link.ipynb"], out, jobs=1, progress=False)
    rows = _rows(out)
    assert {s: r["status"] for s, r in rows.items()} == {
        "deep": "bad input", "nosource": "bad input", "tags": "bad input", "link": "bad input"}
    assert rows["nosource"]["message"] == "nosource.ipynb is a damaged notebook (cell 1 has no source)"
    assert rows["deep"]["message"] == "deep.ipynb is not a notebook: its JSON is nested too deeply"
    assert rows["link"]["message"] == "link.ipynb is a link, not a file"


def _broken_loader(slot: int) -> None:
    raise RuntimeError("no MNIST here")


def test_workers_that_cannot_start_end_the_run_with_an_error(monkeypatch, tmp_path):
    """Not a submission's fault: the run stops with a clear error instead of looping."""
    monkeypatch.setattr(grade, "_load_grader", _broken_loader, raising=False)
    _touch(tmp_path / "subs" / "a.ipynb")
    with pytest.raises(RuntimeError, match="the grading workers stopped before grading anything"):
        grade.grade_all([tmp_path / "subs"], tmp_path / "out", jobs=2, progress=False)
    assert not (tmp_path / "out" / "grades.csv").exists()
