"""The autograder zip grades with its own engine, checks and settings, whatever coursekit
and course_config.py are importable where it runs (here: this repository, installed
editable in the venv, with `retrieve` worth 2 points).

The zip under test is built from a copy of the repository whose course_config.py makes
`retrieve` worth 3 points (13 in all): graded by that zip, the solutions must get 3 and 13.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import course_config as cfg
from tests.conftest import otter_run, question_scores

REPO = cfg.REPO_ROOT
SOLUTIONS = cfg.SOLUTIONS_DIR / f"{cfg.ASSIGNMENT}.ipynb"


def _copy_tree(dst: Path, retrieve_points: int = 3) -> Path:
    """A second checkout of the course with `retrieve` worth `retrieve_points`."""
    dst.mkdir(parents=True)
    shutil.copytree(REPO / "coursekit", dst / "coursekit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "source", dst / "source")
    text = (REPO / "course_config.py").read_text()
    assert '"retrieve": 2,' in text
    (dst / "course_config.py").write_text(text.replace('"retrieve": 2,', f'"retrieve": {retrieve_points},'))
    return dst


@pytest.fixture(scope="module")
def other_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The autograder zip built from the copied checkout (retrieve = 3 there)."""
    tree = _copy_tree(tmp_path_factory.mktemp("checkout") / "course")
    out = tree / "out"
    env = {**os.environ, "MNIST_ROOT": str(cfg.mnist_root())}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path; from coursekit.build import build; "
         f"build(run_tests=False, quiet=True, out_root=Path({str(out)!r}))"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    zip_path = out / cfg.AUTOGRADER_ZIP.relative_to(REPO)
    config = zipfile.ZipFile(zip_path).read("course_config.py").decode()
    assert '"retrieve": 3,' in config  # the zip carries the copy's settings
    return zip_path


def test_repo_engine_is_the_installed_one():
    """The premise: what `import coursekit` finds outside the zip is this repository."""
    out = subprocess.run([sys.executable, "-c", "import coursekit, course_config as c; "
                          "print(coursekit.__file__); print(c.AUTOGRADED_POINTS['retrieve'])"],
                         cwd="/", capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(REPO / "coursekit" / "__init__.py"), "2"]


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
import course_config, coursekit.engine, coursekit.sandbox.supervisor
mods = {{n: getattr(m, "__file__", None) for n, m in sys.modules.items()
        if n.split(".")[0] in ("coursekit", "course_config")}}
print(json.dumps({{"plugin": sys.modules[type(plugin).__module__].__file__,
                  "retrieve": course_config.AUTOGRADED_POINTS["retrieve"],
                  "points": sum(v for k, v in coursekit.engine.case_points().items()
                                if k.startswith("retrieve")),
                  "zygote_path": str(coursekit.sandbox.supervisor.ENGINE_ROOT),
                  "modules": mods}}))
"""
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ag / "submission",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    source = str((ag / "source").resolve())
    assert got["plugin"].startswith(source + "/")
    assert got["retrieve"] == 3 and got["points"] == 3
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
    (sub / f"{cfg.ASSIGNMENT}.ipynb").symlink_to("sub/x/real.ipynb")
    probe = f"""
import importlib, sys
cls = getattr(importlib.import_module("coursekit.otter_plugin"), "TrustedGrading")
plugin = cls({str(sub / f"{cfg.ASSIGNMENT}.ipynb")!r}, {{}}, {{}})
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
    assert tests["retrieve"]["score"] == 3 and tests["retrieve"]["max_score"] == 3
    assert question_scores(results) == {"lookup": 5, "retrieve": 3, "forward": 3, "training": 2}
    assert sum(t.get("score", 0) for t in results["tests"]) == 13


@pytest.mark.slow
def test_selfcheck_grades_with_the_zips_own_settings(other_zip):
    proc = subprocess.run([sys.executable, "-m", "coursekit", "selfcheck", "--autograder", str(other_zip)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(ln.startswith("self-check solutions: 13/13 (want 13)") and "retrieve 3" in ln
               and ln.endswith(" OK") for ln in lines), proc.stdout
    assert any(ln.startswith("self-check release: 0/13 (want 0)") and ln.endswith(" OK")
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
