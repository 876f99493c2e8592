"""Build the student release, the solutions, the autograder zip and the nbgrader course
from the master notebook (`coursekit build`, `make build`).

One module per step (the flow is in `pipeline`); `coursekit.lab_files` is the one place
naming the lab's own Python and the names it ships under.

- `master`: the one reader of the master's otter-assign markup (on otter's own predicates);
- `contract`: what the master, the lab's lab.toml and its checks must agree on;
- `stage`: read, check and stamp the master for otter assign;
- `solution_check`: grade the solution in this process (readable messages);
- `otter_zip`: otter assign (grading nothing), then the zip Gradescope runs;
- `notebooks`: the release and solutions notebooks;
- `nbgrader_course`: the same lab as an nbgrader course;
- `graded_work`: the intro's and README.md's list of graded work;
- `zip_check`: grade the built solutions and release through the built zip;
- `outputs`: stage every output and move them into place only when all succeeded.
"""

from coursekit.build.errors import BuildError
from coursekit.build.notebooks import HIDDEN_MARKERS, SOLUTION_MARKERS
from coursekit.build.otter_zip import ENGINE_MODULES, otter_failure_lines
from coursekit.build.pipeline import build
from coursekit.build.stage import stage_master

__all__ = ["BuildError", "ENGINE_MODULES", "HIDDEN_MARKERS", "SOLUTION_MARKERS", "build",
           "otter_failure_lines", "stage_master"]
