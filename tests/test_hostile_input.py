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

import pytest

from tests.helpers import A, COURSE
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
                                 _code(source="c = 3", metadata={"tags": [COURSE.rules.ignore_tag]})]))
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


ONE_MB = submission.Rules(max_mb=1)  # a course whose submissions may be 1 MB


@pytest.fixture
def one_mb_cap():
    """The cap of `ONE_MB` in bytes (the tests that use it read with `ONE_MB`)."""
    return ONE_MB.limit_bytes


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
        read_submission(path, ONE_MB)
    assert str(err.value) == "bomb.zip is a damaged zip file"
    assert decompressed["bytes"] <= one_mb_cap + 1 + 65536  # one read buffer past the cap at most


def test_notebook_over_the_cap_in_a_small_zip_is_refused(tmp_path, one_mb_cap):
    path = tmp_path / "small.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("lab.ipynb", json.dumps(_nb()) + " " * (2 << 20))
    assert path.stat().st_size < 100_000
    message = "small.zip: the notebook in it is larger than 1 MB"
    with pytest.raises(SubmissionError, match=f"^{message}$"):
        submission.check_submission_file(path, ONE_MB)
    with pytest.raises(SubmissionError, match=f"^{message}$"):
        read_submission(path, ONE_MB)


def test_check_submission_file_refuses_an_oversize_file(tmp_path, one_mb_cap):
    path = tmp_path / "big.ipynb"
    path.write_bytes(b" " * (one_mb_cap + 1))
    with pytest.raises(SubmissionError, match=r"^big\.ipynb is larger than 1 MB$"):
        submission.check_submission_file(path, ONE_MB)


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
        read_submission(path, submission.Rules(assignment=A.name))
    message = str(err.value)
    assert message.startswith("other.ipynb is a notebook of assignment 'lab??# 12/12 full marks!!!")
    assert message.endswith(f"not '{A.name}'")
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


# --- the batch's outputs and its real engine ---------------------------------------------
# (ids, searching, CSV and Markdown escaping, stored reports and the fake-worker batch are
# tested with the batch's modules in tests/test_batch.py and tests/test_report.py)

def _report(status="ok", message="", isolation="namespaces", cases=()):
    from coursekit.report import Report

    return Report(status=status, message=message, isolation=isolation, cases=list(cases))


def test_gradescope_results_escape_html():
    from coursekit.report import CaseResult

    case = CaseResult("lookup_1", "lookup", 5.0, False, "lookup: <img src=x> & more")
    from coursekit.report import gradescope_results

    out = gradescope_results(_report("bad input", "a<b>.ipynb is empty", cases=[case]), COURSE.visibility)
    assert out["output"] == "bad input: a&lt;b&gt;.ipynb is empty"
    lookup = next(t for t in out["tests"] if t["name"] == "lookup")
    assert "❌ lookup: &lt;img src=x&gt; &amp; more" in lookup["output"].splitlines()
    assert "<" not in json.dumps(out)


def _touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _rows(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}


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
