"""The autograder zip grades with its own engine, lab and settings, whatever coursekit,
course_config.py and lab are importable where it runs (here: this repository, installed
editable in the venv, with the lab's own points).

The zip under test is built from a copy of the repository whose lab.toml gives the first
question one point more (`QUESTION`, `OTHER_POINTS`): graded by that zip, the solutions
must get those points, and one more in all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import A, COURSE, otter_run, question_scores

REPO = COURSE.root
SOLUTIONS = A.solutions_dir / f"{A.name}.ipynb"
# The copy's setting that differs from this checkout's: the first question's points, plus one.
QUESTION = next(iter(A.points))
OTHER_POINTS = int(A.points[QUESTION]) + 1
OTHER_TOTAL = sum(A.points.values()) + 1
POINTS_LINE = re.compile(rf"(?m)^({QUESTION}\s*=\s*)(\d+(?:\.\d*)?)")
LAB_TOML = f"source/{A.name}/lab.toml"


def _copy_tree(dst: Path) -> Path:
    """A second checkout of the course with QUESTION worth OTHER_POINTS."""
    dst.mkdir(parents=True)
    shutil.copytree(REPO / "coursekit", dst / "coursekit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "source", dst / "source")
    shutil.copy(REPO / "course_config.py", dst / "course_config.py")
    text, changed = POINTS_LINE.subn(rf"\g<1>{OTHER_POINTS}", (REPO / LAB_TOML).read_text(), count=1)
    assert changed == 1, f"no '{QUESTION} = <points>' in {LAB_TOML}"
    (dst / LAB_TOML).write_text(text)
    return dst


@pytest.fixture(scope="module")
def other_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The autograder zip built from the copied checkout (QUESTION = OTHER_POINTS there)."""
    tree = _copy_tree(tmp_path_factory.mktemp("checkout") / "course")
    out = tree / "out"
    env = {**os.environ, "MNIST_ROOT": str(COURSE.mnist_root)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path; from coursekit.build import build; "
         f"build(run_tests=False, quiet=True, out_root=Path({str(out)!r}))"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    zip_path = out / A.autograder_zip.relative_to(REPO)
    config = zipfile.ZipFile(zip_path).read(LAB_TOML).decode()
    assert POINTS_LINE.search(config).group(2) == str(OTHER_POINTS)  # the zip carries the copy's settings
    return zip_path


def test_repo_engine_is_the_installed_one():
    """The premise: what `import coursekit` finds outside the zip is this repository."""
    out = subprocess.run([sys.executable, "-c", "import coursekit; from coursekit import course; "
                          f"print(coursekit.__file__); print(course.load().assignment().points[{QUESTION!r}])"],
                         cwd="/", capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(REPO / "coursekit" / "__init__.py"), str(A.points[QUESTION])]


def test_plugin_hands_over_to_the_zip_copy(tmp_path):
    """Loaded as otter loads it (by name, from whatever is installed), the plugin hands
    over to the zip's own plugin, engine and settings; nothing of the installed copy stays."""
    ag = tmp_path / "autograder"
    _copy_tree(ag / "source")  # the zip's root as otter unpacks it
    (ag / "submission").mkdir()
    sub = ag / "submission" / "sub.ipynb"
    sub.write_text("{}")
    probe = f"""
import importlib, json, sys
plugin_cls = getattr(importlib.import_module("coursekit.otter_plugin"), "TrustedGrading")
plugin = plugin_cls({str(sub)!r}, {{}}, {{}})
import coursekit.sandbox.supervisor
from pathlib import Path
from coursekit import course
c = course.load(Path({str(ag / "source" / "course_config.py")!r}), only={A.name!r})
a = c.assignment({A.name!r})
lab = a.lab()
mods = {{n: getattr(m, "__file__", None) for n, m in sys.modules.items()
        if n.split(".")[0] in ("coursekit", "course_config", {A.name!r})}}
print(json.dumps({{"plugin": sys.modules[type(plugin).__module__].__file__,
                  "question": a.points[{QUESTION!r}],
                  "points": sum(v for k, v in lab.case_points(a.points).items()
                                if lab.cases[k].question == {QUESTION!r}),
                  "zygote_path": str(coursekit.sandbox.supervisor.ENGINE_ROOT),
                  "modules": mods}}))
"""
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ag / "submission",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    source = str((ag / "source").resolve())
    assert got["plugin"].startswith(source + "/")
    assert got["question"] == OTHER_POINTS and got["points"] == OTHER_POINTS
    assert got["zygote_path"] == source  # the sandbox's zygote imports the zip's engine too
    outside = {n: f for n, f in got["modules"].items() if f and not f.startswith(source + "/")}
    assert outside == {}


def test_a_linked_notebook_never_chooses_the_plugin(tmp_path):
    """The upload's notebook is a link into a folder laid out like the autograder's
    (tests/attacks/otter/linked_notebook/): the plugin, found by name as otter finds it,
    still hands over to the real zip's copy and never imports the upload's."""
    ag = tmp_path / "autograder"
    _copy_tree(ag / "source")
    sub = ag / "submission"
    fake = sub / "sub" / "source" / "coursekit"
    fake.mkdir(parents=True)
    marker = tmp_path / "MARKER"
    attack = REPO / "tests" / "attacks" / "otter" / "linked_notebook" / "otter_plugin.py"
    (fake / "otter_plugin.py").write_text(attack.read_text().replace("__MARKER__", str(marker)))
    (fake / "__init__.py").write_text("")
    (sub / "sub" / "x").mkdir()
    (sub / "sub" / "x" / "real.ipynb").write_text("{}")
    (sub / f"{A.name}.ipynb").symlink_to("sub/x/real.ipynb")
    probe = f"""
import importlib, sys
cls = getattr(importlib.import_module("coursekit.otter_plugin"), "TrustedGrading")
plugin = cls({str(sub / f"{A.name}.ipynb")!r}, {{}}, {{}})
print(sys.modules[type(plugin).__module__].__file__)
"""
    proc = subprocess.run([sys.executable, "-c", probe], cwd=sub, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()
    assert proc.stdout.strip().splitlines()[-1] == str(ag / "source" / "coursekit" / "otter_plugin.py")


def test_sandbox_imports_the_engine_it_belongs_to():
    """The zygote is started on the folder of the supervisor's own coursekit, not on
    whatever `coursekit` the interpreter would import by name."""
    from coursekit.sandbox import supervisor

    assert supervisor.ENGINE_ROOT == Path(supervisor.__file__).resolve().parents[2]


@pytest.mark.slow
def test_otter_run_grades_with_the_zips_own_settings(other_zip, tmp_path):
    results = otter_run(other_zip, SOLUTIONS, tmp_path / "out")
    tests = {t["name"]: t for t in results["tests"]}
    assert tests[QUESTION]["score"] == OTHER_POINTS and tests[QUESTION]["max_score"] == OTHER_POINTS
    assert question_scores(results) == {**{q: float(p) for q, p in A.points.items()},
                                        QUESTION: OTHER_POINTS}
    assert sum(t.get("score", 0) for t in results["tests"]) == OTHER_TOTAL


@pytest.mark.slow
def test_selfcheck_grades_with_the_zips_own_settings(other_zip):
    proc = subprocess.run([sys.executable, "-m", "coursekit", "selfcheck", "--autograder", str(other_zip)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    total = f"{OTHER_TOTAL:g}"
    assert any(ln.startswith(f"self-check solutions: {total}/{total} (want {total})")
               and f"{QUESTION} {OTHER_POINTS}" in ln and ln.endswith(" OK") for ln in lines), proc.stdout
    assert any(ln.startswith(f"self-check release: 0/{total} (want 0)") and ln.endswith(" OK")
               for ln in lines), proc.stdout


def _coursekit_imports(path: Path) -> set[str]:
    """The coursekit modules a file imports (at any depth: lazy imports count)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("coursekit.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "coursekit":
            if node.module == "coursekit":
                found |= {f"coursekit.{a.name}" for a in node.names}
            else:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_zip_carries_every_module_its_engine_imports():
    """The zip's engine imports only from the zip: a module missing there would fail to
    import (it is never taken from an installed coursekit instead)."""
    from coursekit import build as B

    package = REPO / "coursekit"
    shipped = {"coursekit." + n[:-3].replace("/", ".").removesuffix(".__init__") for n in B.ENGINE_MODULES}
    shipped |= {"coursekit", "coursekit.sandbox"}
    missing = {}
    for name in B.ENGINE_MODULES:
        for mod in _coursekit_imports(package / name):
            as_module = package.parent / (mod.replace(".", "/") + ".py")
            as_package = package.parent / mod.replace(".", "/") / "__init__.py"
            if (as_module.is_file() or as_package.is_file()) and mod not in shipped:
                missing.setdefault(name, []).append(mod)
    assert missing == {}
