"""Batch grading (`coursekit grade`): CSV and feedback, Gradescope export layout, resuming
after kill -9, exit codes, hostile ids and files, and the shared attack corpus."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.attacks import ATTACKS, EVERY_DOOR, SECRETS
from tests.helpers import A, COURSE, FAILS, LAB, QUESTIONS, SOLVED, TOTAL, grade, score_dict, write_corpus, write_nb
from coursekit.batch.submissions import find_submissions
from coursekit.grade import grade_all

RELEASE = A.release_dir / f"{A.name}.ipynb"
NAMES = ["c01_at_operator", "c04_einsum", "w01_softmax_wrong_dim", "w06_retrieve_mean",
         "w11_weights_detached", "w14_only_lookup_done", "w15_stubs_left_in", "c07_cast_at_the_end"]


@pytest.fixture(scope="module")
def subs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("subs")
    write_corpus(RELEASE, folder, NAMES)
    (folder / "broken.ipynb").write_text("{ not json")
    return folder


@pytest.fixture(scope="module")
def reference_run(subs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    grade_all([subs], out, jobs=2, progress=False)
    return out


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_csv_rows_feedback_and_charts(reference_run):
    rows = _csv(reference_run / "grades.csv")
    assert [r["student"] for r in rows] == sorted(NAMES + ["broken"])
    assert list(rows[0]) == ["student", *QUESTIONS, "total", "status", "isolation", "device", "message"]
    by = {r["student"]: r for r in rows}
    assert (by["c01_at_operator"]["total"], by["c01_at_operator"]["status"]) == (f"{TOTAL:g}", "ok")
    assert (by["c01_at_operator"]["device"], by["broken"]["device"]) == ("cpu", "")  # auto: no GPU here
    w11 = score_dict(FAILS["w11_weights_detached"])
    assert (by["w11_weights_detached"]["forward"], by["w11_weights_detached"]["training"]) == (
        f"{w11['forward']:g}", f"{w11['training']:g}")
    assert by["broken"]["status"] == "bad input" and "invalid JSON" in by["broken"]["message"]
    results = json.loads((reference_run / "feedback" / "w01_softmax_wrong_dim" / "results.json").read_text())
    w01 = score_dict(FAILS["w01_softmax_wrong_dim"])
    assert {t["name"]: t["score"] for t in results["tests"] if "score" in t} == w01
    report = (reference_run / "feedback" / "w01_softmax_wrong_dim" / "report.md").read_text()
    assert f"**Score: {sum(w01.values()):g} / {sum(SOLVED):g}**" in report  # out of every point
    assert "softmax over the queries, not the keys" in report
    assert not any(reference_run.glob("grades.csv.*"))


def test_summary_and_charts(reference_run, capsys):
    from coursekit.grade import summarise
    from coursekit.report import decode

    table = LAB.case_table(A.points)
    rows = [(p.stem, decode(p.read_text(), table)) for p in sorted((reference_run / ".reports").glob("*.json"))]
    text = summarise(rows, reference_run)
    assert f"{len(NAMES) + 1} submissions" in text and "lookup" in text and "status: bad input 1, ok 8" in text
    trained = sum(r.device == "cpu" for _, r in rows)  # auto: the CPU here
    assert trained >= 5 and all(r.device in ("cpu", "") for _, r in rows)
    assert f"training check on: cpu {trained}, not run {len(rows) - trained}" in text
    for chart in ("score_histogram.png", "question_pass_rates.png"):
        assert (reference_run / chart).read_bytes()[:4] == b"\x89PNG"


def test_resume_after_kill_9(subs, reference_run, tmp_path):
    """Kill the grader in the middle; the rerun grades only the rest and gives the same CSV."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "coursekit", "grade", str(subs), "--out", str(out), "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=COURSE.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / ".reports").glob("*.json"))) < 3:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in (out / ".reports").glob("*.json")}
    assert 3 <= len(done_before) < len(NAMES) + 1
    assert not (out / "grades.csv").exists()  # written only at the end, never half
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / ".reports").glob("*.json")}
    subprocess.run(cmd, cwd=COURSE.root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (out / "grades.csv").read_text() == (reference_run / "grades.csv").read_text()
    for name, stamp in stamps.items():  # finished submissions were not graded again
        assert (out / ".reports" / name).stat().st_mtime_ns == stamp


def test_gradescope_export_layout(tmp_path):
    export = tmp_path / "export"
    for sub, name in (("submission_101", "c01_at_operator"), ("submission_102", "w15_stubs_left_in")):
        (export / sub).mkdir(parents=True)
        write_corpus(RELEASE, export / sub, [name])
        (export / sub / f"{name}.ipynb").rename(export / sub / f"{A.name}.ipynb")
    (export / "submission_metadata.yml").write_text(
        "submission_101:\n  :submitters:\n  - :name: Ada L\n    :sid: '1001'\n    :email: ada@example.edu\n"
        "submission_102:\n  :submitters:\n  - :name: Bo K\n    :email: bo@example.edu\n")
    found = find_submissions([export])
    assert [(sid, p.parent.name) for sid, p in found] == [("1001", "submission_101"),
                                                         ("bo@example.edu", "submission_102")]


def test_grade_reports_missing_mnist_root(tmp_path, monkeypatch, capsys):
    import dataclasses

    from coursekit import course
    from coursekit.cli import main

    # the course with its MNIST root missing and no cached slice (its outputs under tmp_path)
    a = dataclasses.replace(A, root=tmp_path, _lab=[], settings={
        **A.settings, "data_root": tmp_path / "no_mnist", "cache": tmp_path / ".cache"})
    c = dataclasses.replace(COURSE, root=tmp_path, assignments={A.name: a})
    monkeypatch.setattr(course, "load", lambda *args, **kwargs: c)
    (tmp_path / "a.ipynb").write_text("{}")
    assert main(["grade", str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out")]) == 2
    assert f"coursekit grade: MNIST data root {tmp_path / 'no_mnist'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_score_histogram_bins_half_points(tmp_path):
    """11.5 is counted at 11.5, not in the 12 bar; the count axis has whole numbers only."""
    from coursekit.batch.outputs import plot_score_histogram, score_bins

    totals = [12, 12, 11.5, 11.5, 11.5, 11, 7, 0, 0.4]
    centres, counts = score_bins(totals, 12)
    assert centres == [i / 2 for i in range(25)]
    got = dict(zip(centres, counts))
    assert got[12] == 2 and got[11.5] == 3 and got[11] == 1 and got[7] == 1 and got[0.5] == 1 and got[0] == 1
    assert sum(counts) == len(totals)
    drawn = plot_score_histogram(totals, 12, tmp_path / "score_histogram.png")
    assert (tmp_path / "score_histogram.png").read_bytes()[:4] == b"\x89PNG"
    heights = dict(zip(drawn["centres"], drawn["heights"]))
    assert heights[12] == 2 and heights[11.5] == 3 and heights[11] == 1
    assert drawn["count_ticks"] and all(float(t).is_integer() for t in drawn["count_ticks"])


# --- exit codes ------------------------------------------------------------------------

def test_exit_code_says_some_rows_are_to_retry(fake_workers, tmp_path, capsys):
    """Graded, but one row is `error`: exit TO_RETRY, not 0; once all are graded, 0."""
    from coursekit import cli

    subs = tmp_path / "subs"
    for name in ("a", "boom"):
        _touch(subs / f"{name}.ipynb", name)
    out = tmp_path / "out"
    assert cli.main(["grade", str(subs), "--out", str(out), "--quiet", "--jobs", "1"]) == cli.TO_RETRY == 75
    assert "1 submission(s) to grade again" in capsys.readouterr().err
    assert _rows(out)["boom"]["status"] == "error"
    (subs / "boom.ipynb").unlink()
    assert cli.main(["grade", str(subs), "--out", str(out), "--quiet", "--jobs", "1"]) == cli.GRADED == 0


def test_exit_code_says_nothing_could_be_graded(tmp_path, monkeypatch, capsys):
    from coursekit import cli

    settings = COURSE.config_file.read_text()
    assert '"hidden": "after_published"' in settings
    (tmp_path / "course_config.py").write_text(settings.replace('"hidden": "after_published"', '"hidden": "never"'))
    monkeypatch.setenv("COURSEKIT_CONFIG", str(tmp_path / "course_config.py"))
    (tmp_path / "a.ipynb").write_text("{}")
    assert cli.main(["grade", str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out")]) == cli.CANNOT_GRADE == 2
    assert capsys.readouterr().err.startswith("coursekit grade: course_config.py: RESULTS_VISIBILITY must map")
    assert cli.main(["grade", str(tmp_path / "nothing.ipynb"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_help_names_the_exit_codes(capsys):
    from coursekit import cli

    with pytest.raises(SystemExit):
        cli.main(["grade", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "75 graded, but some rows are `error` or not graded" in text
    assert "2 nothing could be graded" in text


# --- one count of usable GPUs ----------------------------------------------------------

def test_the_jobs_check_counts_the_gpus_the_sandboxes_may_use(fake_dev, monkeypatch):
    """Two GPUs, this grader given one (CUDA_VISIBLE_DEVICES=1): 2 sandboxes per GPU make
    2 GPU sandboxes, not 4; the check and the sandboxes' slots agree on it."""
    from coursekit.sandbox import gpu

    dev = str(fake_dev)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu.gpu_sandboxes(2, dev=dev) == 4
    gpu.check_jobs(4, "cuda", 2, dev=dev)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert gpu.gpu_sandboxes(2, dev=dev) == 2
    assert [gpu.slot_for(i, "cuda", 2, dev=dev) is not None for i in range(4)] == [True, True, False, False]
    gpu.check_jobs(2, "cuda", 2, dev=dev)
    gpu.check_jobs(3, "auto", 2, dev=dev)  # auto: the rest train on the CPU
    with pytest.raises(gpu.DeviceError, match=r"--jobs 3 needs more GPU sandboxes than this machine has "
                                              r"\(2: GPUs this grader may use"):
        gpu.check_jobs(3, "cuda", 2, dev=dev)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu.gpu_sandboxes(2, dev=dev) == 0


def test_grade_refuses_jobs_beyond_the_visible_gpus(tmp_path, monkeypatch, capsys):
    """`coursekit grade` counts the GPUs as the sandboxes do: the visible ones."""
    import dataclasses

    from coursekit import cli, course
    from coursekit.sandbox import gpu

    cuda = dataclasses.replace(COURSE, device="cuda")
    monkeypatch.setattr(course, "load", lambda *args, **kwargs: cuda)
    monkeypatch.setattr(gpu, "gpu_minors", lambda dev="/dev": [0, 1])  # two on the machine...
    monkeypatch.setattr(gpu, "visible_minors", lambda dev="/dev", proc="": [1])  # ...one for us
    per = COURSE.policy.sandboxes_per_gpu
    (tmp_path / "a.ipynb").write_text("{}")
    assert cli.main(["grade", str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out"), "--quiet",
                     "--jobs", str(per + 1)]) == 2
    assert f"--jobs {per + 1} needs more GPU sandboxes than this machine has ({per}:" in capsys.readouterr().err


# --- student ids and searching (hostile names) ------------------------------------------

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
    ids = {p.relative_to(subs).as_posix(): sid for sid, p in find_submissions([subs])}
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
    found = [(sid, p.parent.name) for sid, p in find_submissions([export])]
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
    assert [p.name for _, p in find_submissions([subs])] == ["real.ipynb"]
    _touch(tmp_path / "export" / "submission_1" / "lab.ipynb")
    (tmp_path / "export" / "submission_2").symlink_to(outside)
    (tmp_path / "export" / "submission_metadata.yml").write_text("submission_1:\n  :submitters:\n  - :sid: '1'\n")
    assert [(sid, p.parent.name) for sid, p in find_submissions([tmp_path / "export"])] == [("1", "submission_1")]


# --- outputs (hostile text) --------------------------------------------------------------

def _report(status="ok", message="", isolation="namespaces", cases=()):
    from coursekit.report import Report

    return Report(status=status, message=message, isolation=isolation, cases=list(cases))


def test_csv_cells_are_formula_safe(tmp_path):
    from coursekit.batch.outputs import write_csv

    path = tmp_path / "grades.csv"
    write_csv([("=1+2", _report("bad input", "=HYPERLINK(\"http://x\")")),
               ("@sum", _report(message="-2+3")), ("+1", _report(message="\tx")),
               ("bob", _report(message="fine", isolation=""))], path, list(A.points))
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["student", *A.points, "total", "status", "isolation", "device", "message"]
    assert [r[0] for r in rows[1:]] == ["'=1+2", "'@sum", "'+1", "bob"]
    assert [r[-1] for r in rows[1:]] == ["'=HYPERLINK(\"http://x\")", "'-2+3", "'\tx", "fine"]
    assert rows[1][1:len(A.points) + 4] == ["0"] * len(A.points) + ["0", "bad input", "namespaces"]
    assert rows[4][len(A.points) + 3] == ""


def test_markdown_report_escapes_student_text():
    from coursekit.batch.outputs import markdown_report
    from coursekit.report import CaseResult

    case = CaseResult("lookup_1", "lookup", 5.0, False, "lookup: <script>x</script> | `y` [a](javascript:z)\n# fake")
    text = markdown_report("<img src=x onerror=alert(1)>|`", _report(
        "bad input", "sub.ipynb:<b>x</b>\n\n**12/12**", cases=[case]), A)
    assert "<img" not in text and "<script>" not in text and "<b>" not in text
    assert f"# {A.title}: &lt;img src=x onerror=alert(1)&gt;\\|\\`" in text
    assert "> bad input: sub.ipynb:&lt;b&gt;x&lt;/b&gt; \\*\\*12/12\\*\\*" in text
    assert f"| lookup | 0 / {A.points['lookup']:g} | lookup: &lt;script&gt;x&lt;/script&gt; \\| \\`y\\` \\[a\\](javascript:z) # fake |" in text
    assert not any(line.startswith("# fake") for line in text.splitlines())


# --- the batch goes on (a stand-in grader in the local workers) ---------------------------

class _FakeGrader:
    """Stands in for the engine in the workers: fails, dies or writes junk on cue, by name."""

    def grade_path(self, path: Path):
        from coursekit.report import CaseResult, Report

        name = path.name
        if name.startswith("boom"):
            raise RuntimeError("grader bug with student text <b>")
        if name.startswith("die"):
            os._exit(9)  # the worker process dies, as a kill -9 or the OOM killer would do
        if name.startswith("junk"):
            return SimpleNamespace(status="ok", cases="not a list")  # encodes to no report
        return Report(isolation="fake", cases=[CaseResult("lookup_1", "lookup", 5.0, True)])


def _fake_executor(jobs: int | None, cluster: str | None, require: str | None, *course_and_assignment):
    from coursekit.batch.pool import LocalPool

    return lambda todo: LocalPool(min(jobs or 1, todo), lambda slot, sandboxes: _FakeGrader())


@pytest.fixture
def fake_workers(monkeypatch):
    """Local workers with the stand-in grader, and no checks before grading."""
    from coursekit.batch import grading

    monkeypatch.setattr(grading, "executor_for", _fake_executor)
    monkeypatch.setattr(grading, "check_before_grading", lambda *args, **kw: None)


def _fake_run(subs: Path, out: Path, jobs: int = 1):
    from coursekit.batch.grading import grade_batch

    return grade_batch([subs], out, _fake_executor(jobs, None, None), COURSE, A, progress=False)


def _rows(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_submission_never_stops_the_batch(jobs, fake_workers, tmp_path):
    subs = tmp_path / "subs"
    for name in ["a", "b", "boom", "c", "die", "d", "e"]:
        _touch(subs / f"{name}.ipynb", name)
    outcome = _fake_run(subs, tmp_path / "out", jobs)
    rows = _rows(tmp_path / "out")
    assert {s: (r["status"], r["total"]) for s, r in rows.items()} == {
        "a": ("ok", "5"), "b": ("ok", "5"), "c": ("ok", "5"), "d": ("ok", "5"), "e": ("ok", "5"),
        "boom": ("error", "0"), "die": ("error", "0")}
    assert rows["boom"]["message"] == "grading failed with an internal error (RuntimeError); it is retried on the next run"
    assert rows["die"]["message"] == "the grading process died while grading it; it is retried on the next run"
    assert rows["a"]["isolation"] == "fake"
    assert (outcome.to_retry, outcome.not_graded) == (2, 0)
    # errors are not stored: the next run grades them again
    assert len(list((tmp_path / "out" / ".reports").glob("*.json"))) == 5


def test_malformed_or_error_stored_reports_are_graded_again(fake_workers, tmp_path):
    from coursekit.report import Report, encode

    subs = tmp_path / "subs"
    _touch(subs / "a.ipynb", "a")
    out = tmp_path / "out"
    _fake_run(subs, out)
    [stored] = (out / ".reports").glob("*.json")
    good = stored.read_text()
    for junk in ("{bad", json.dumps({"status": "ok", "message": "", "cases": "x"}),
                 encode(Report(status="error", message="not graded: the sandbox did not start"))):
        stored.write_text(junk)
        _fake_run(subs, out)
        assert stored.read_text() == good and _rows(out)["a"]["total"] == "5"


def test_a_report_that_does_not_encode_is_an_error_row(fake_workers, tmp_path):
    subs = tmp_path / "subs"
    _touch(subs / "junk.ipynb", "x")
    _touch(subs / "a.ipynb", "a")
    _fake_run(subs, tmp_path / "out")
    rows = _rows(tmp_path / "out")
    assert rows["junk"]["status"] == "error" and rows["a"]["status"] == "ok"


def test_dot_dot_submission_stays_inside_feedback(fake_workers, tmp_path):
    subs = tmp_path / "subs"
    _touch(subs / "...ipynb", "x")
    out = tmp_path / "out" / "grades"
    _fake_run(subs, out)
    assert not (out / "report.md").exists() and not (out / "results.json").exists()
    assert not (out.parent / "report.md").exists()
    assert (out / "feedback" / "submission" / "report.md").is_file()
    assert list(_rows(out)) == ["submission"]


def test_workers_that_cannot_start_end_the_run_with_an_error(tmp_path):
    """Not a submission's fault: the run stops with one line instead of looping."""
    from coursekit.batch.executor import CannotGrade
    from coursekit.batch.grading import grade_batch
    from coursekit.batch.pool import LocalPool

    def broken(slot: int, sandboxes: int):
        raise RuntimeError("no MNIST here")

    _touch(tmp_path / "subs" / "a.ipynb")
    with pytest.raises(CannotGrade, match="the grading workers stopped before grading anything"):
        grade_batch([tmp_path / "subs"], tmp_path / "out", lambda todo: LocalPool(2, broken), COURSE, A,
                    progress=False)
    assert not (tmp_path / "out" / "grades.csv").exists()


@pytest.mark.slow  # end to end: one `coursekit grade` run as a TA types it
def test_shared_attacks_through_coursekit_grade(tmp_path):
    """The CLI's front door grades the shared attacks (tests/attacks, EVERY_DOOR) as the
    engine in-process, `otter run` and nbgrader do: each row has the scores of its code
    without the attack, and no feedback file holds anything of the grader's."""
    subs = tmp_path / "subs"
    for name in EVERY_DOOR:
        write_nb(subs, name, ATTACKS[name][0])
    run = grade(subs, tmp_path / "out")
    assert run.rc == 0, run.why()
    assert {name: run.scores(name) for name in EVERY_DOOR} == {name: ATTACKS[name][1] for name in EVERY_DOOR}
    for name in EVERY_DOOR:
        for path in (tmp_path / "out" / "feedback" / name).iterdir():
            text = path.read_text()
            for secret in SECRETS + ("LEAK",):
                assert secret not in text, (name, path.name, secret)
