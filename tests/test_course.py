"""The course's settings are read and checked once (coursekit.course), and a lab folder is
loaded through one interface (coursekit.lab): a wrong value or a broken folder is one
error naming the file and the setting, never a traceback from deep inside grading."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from coursekit import course
from tests.helpers import A, edit, set_key
from coursekit.lab import LabError, load_lab

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the course's settings and its first lab's lab.toml, to break one at a time."""
    shutil.copy(ROOT / "course_config.py", tmp_path / "course_config.py")
    first = course.load().assignment()
    (tmp_path / "source" / first.name).mkdir(parents=True)
    shutil.copy(first.folder / course.LAB_FILE, tmp_path / "source" / first.name / course.LAB_FILE)
    return tmp_path


def test_the_course_reads_its_labs():
    c = course.load()
    a = c.assignment()
    assert list(c.assignments) == ["attention_basics"]
    assert a.master == ROOT / "source" / "attention_basics" / "attention_basics.ipynb"
    assert a.points and all(v >= 0 for v in a.points.values())
    assert not set(a.points) & set(a.manual_points)
    lab = a.lab()
    assert set(c.question for c in lab.cases.values()) == set(a.points)  # every question scored
    assert course.load() is c  # read once


@pytest.mark.parametrize("old, new, says", [
    ('RESULTS_VISIBILITY = {"public": "visible", "hidden": "after_published"}',
     'RESULTS_VISIBILITY = {"public": "visible", "hidden": "later"}', "RESULTS_VISIBILITY"),
    ('DEVICE = "auto"', 'DEVICE = "tpu"', "DEVICE must be one of auto, cpu, cuda"),
    ("TIME_LIMIT_S = 240", "TIME_LIMIT_S = -1", "TIME_LIMIT_S must be a number > 0"),
    ('LABS = ["attention_basics"]', 'LABS = ["attention_basics", "nowhere"]', "source/nowhere/lab.toml: missing"),
    ("IGNORE_TAG = ", "_IGNORE = ", "IGNORE_TAG is missing"),
    # a course_config.py of before the rename: the limit's new name is asked for
    ("LONG_CALL_TIME_LIMIT_S = ", "TRAINING_TIME_LIMIT_S = ", "LONG_CALL_TIME_LIMIT_S is missing"),
])
def test_a_wrong_course_setting_is_one_error_naming_it(tree, old, new, says):
    edit(tree / "course_config.py", old, new)
    with pytest.raises(course.ConfigError) as err:
        course.load(tree / "course_config.py")
    assert says in str(err.value)


AUTO, WRITTEN = next(iter(A.points)), next(iter(A.manual_points))  # the lab's first of each kind


# Each wrong lab.toml: a TA's edit by key (whatever its value is now) or of its text.
WRONG_LAB_TOML = {
    "negative_points": (lambda t: set_key(t, AUTO, "-2"), f"points.{AUTO} must be a number ≥ 0"),
    "points_not_a_number": (lambda t: set_key(t, AUTO, '"two"'), f"points.{AUTO} must be a number"),
    "written_and_autograded": (lambda t: set_key(t, WRITTEN, f"1\n{AUTO} = 1"),
                               f"{AUTO} in both [points] and [manual_points]"),
    "no_title": (lambda t: edit(t, 'title = "', 'name = "'), "`title` is missing"),
    "not_toml": (lambda t: edit(t, "[points]", "[points"), "not valid TOML"),
}


@pytest.mark.parametrize("name", sorted(WRONG_LAB_TOML))
def test_a_wrong_lab_setting_names_lab_toml(tree, name):
    change, says = WRONG_LAB_TOML[name]
    toml = next((tree / "source").glob("*/lab.toml"))
    change(toml)
    with pytest.raises(course.ConfigError) as err:
        course.load(tree / "course_config.py")
    assert str(toml) in str(err.value) and says in str(err.value)


def test_the_lab_checks_its_own_tables(tree):
    """[training] is the lab's own table: its make_lab says what is wrong, naming lab.toml."""
    first = course.load().assignment()
    set_key(tree / "source" / first.name / "lab.toml", "steps", "7.5")
    a = course.load(tree / "course_config.py").assignment()
    with pytest.raises(LabError, match=r"lab\.toml: training\.steps must be an integer ≥ 0"):
        load_lab(first.folder, a.settings)


def _lab_folder(tmp_path: Path, name: str, lab_py: str | None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    if lab_py is not None:
        (folder / "lab.py").write_text(textwrap.dedent(lab_py))
    return folder


@pytest.mark.parametrize("lab_py, says", [
    (None, "lab.py: missing"),
    ("x = 1\n", "defines no make_lab"),
    ("def make_lab(settings):\n    return 42\n", "make_lab returned int"),
    ("""
     from coursekit.lab import Call, Case, Lab
     def make_lab(settings):
         return Lab(name="broken", folder=__import__("pathlib").Path(__file__).parent, settings=settings,
                    calls=(Call("a", "f"),), cases={"c": Case("q", ("a", "b"), lambda o, p: None)},
                    definitions=("f",), job_module="x", inputs=lambda d, s: {}, load_data=lambda p: {},
                    make_data=lambda p: None, public_checks=__import__("pathlib").Path(__file__))
     """, "case 'c' needs calls the lab does not make: b"),
])
def test_a_broken_lab_folder_is_one_error_naming_the_file(tmp_path, lab_py, says):
    folder = _lab_folder(tmp_path, f"lab_{abs(hash(says)) % 10**8}", lab_py)
    with pytest.raises(LabError) as err:
        load_lab(folder, {})
    assert says in str(err.value) and str(folder) in str(err.value)


def test_a_folder_without_init_is_not_a_lab(tmp_path):
    (tmp_path / "nolab").mkdir()
    with pytest.raises(LabError, match="__init__.py: missing"):
        load_lab(tmp_path / "nolab", {})
