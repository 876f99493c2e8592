"""The shared attack corpus: submissions whose extra cells (the files of integrity/, each
opening with what it tries) attack the grader, and the scores of the same code without the
attack. Every front door grades them and must give exactly those scores, with nothing
hidden in what a student sees:

- the engine in-process (`tests/test_integrity.py`): every entry;
- `coursekit grade` (`tests/test_batch.py`), `otter run` (`tests/test_grading.py`) and
  `nbgrader autograde` (`tests/test_nbgrader_hostile.py`): the entries of EVERY_DOOR, one
  run each (an end-to-end run costs a fresh process and sandbox per submission).

The other folders hold attacks that only one front door or one layer can meet: isolation/
(the sandbox, through `coursekit grade`, `otter run` and nbgrader in tests/test_isolation.py),
otter/ (files beside an upload's notebook), nbgrader/ (a submission's folder and metadata),
container/, local_services/ and memory/ (the weaker isolation levels), sandbox/ (one sandbox
on its own, tests/test_sandbox.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import (FULL, REF_FORWARD, REF_LOOKUP, REF_RETRIEVE, WRONG_LOOKUP, WRONG_LOOKUP_FAILS, ZERO, Spec,
                           cases, ref, scores)

HERE = Path(__file__).parent

# Text that must never appear in anything a student sees.
SECRETS = ("_SEED", "def probes", "run_case(", "attention_checks", "torch.randn(",
           "BUNDLE_SEED", "heldout", "import numpy as np\nimport torch")


def cell(name: str) -> str:
    """The source of the attack cell (or function body) integrity/<name>.py."""
    return (HERE / "integrity" / f"{name}.py").read_text()


PATCH_COMPARISONS, PATCH_OTTER = cell("patch_comparisons"), cell("patch_otter")
READ_FILES, LEAKY_LOOKUP = cell("read_files"), cell("leaky_lookup")
EXIT_CELL, SYS_EXIT, KILL_PARENT, KILL_ALL = cell("exit_cell"), cell("sys_exit"), cell("kill_parent"), cell("kill_all")
LOOP, IGNORE_SIGNALS, MEMORY_CELL = cell("loop"), cell("ignore_signals"), cell("exhaust_memory")
NO_GPU, USER_NAME, NO_UID_LOCK = cell("no_gpu"), cell("user_name"), cell("no_uid_lock")
EXIT_ZERO = cell("exit_zero")

# attack -> (the submission, the per-question scores of its code without the attack)
ATTACKS: dict[str, tuple[Spec, tuple[float, ...]]] = {
    "patch_comparisons_with_stubs": (Spec(after={"lookup": PATCH_COMPARISONS}), ZERO),
    "patch_comparisons_wrong_lookup": (Spec(WRONG_LOOKUP, REF_RETRIEVE, REF_FORWARD,
                                            after={"lookup": PATCH_COMPARISONS}), scores(WRONG_LOOKUP_FAILS)),
    "patch_otter_with_stubs": (Spec(after={"lookup": PATCH_OTTER}), ZERO),
    "read_files_and_print": (ref(above={"lookup": READ_FILES}), FULL),
    "leak_through_exception": (Spec(LEAKY_LOOKUP, REF_RETRIEVE, REF_FORWARD,
                                    above={"lookup": READ_FILES}), scores(cases("lookup"))),
    "os_exit_in_a_cell": (ref(after={"lookup": EXIT_CELL}), FULL),
    "kill_parent": (ref(after={"retrieve": KILL_PARENT}), FULL),
    "kill_every_process": (ref(after={"retrieve": KILL_ALL}), FULL),
    "sys_exit_in_a_cell": (ref(after={"lookup": SYS_EXIT}), FULL),
    "infinite_loop_in_a_cell": (ref(after={"lookup": IGNORE_SIGNALS + LOOP}), FULL),
    "infinite_loop_in_lookup": (Spec(LOOP, REF_RETRIEVE, REF_FORWARD), scores(cases("lookup"))),
    "exhaust_memory_in_a_cell": (ref(after={"lookup": MEMORY_CELL}), FULL),
    "gpu_hidden_from_student_code": (ref(above={"lookup": NO_GPU}), FULL),
    "user_name_lookup": (ref(above={"lookup": USER_NAME}), FULL),
    "uid_lock_not_inherited": (ref(above={"lookup": NO_UID_LOCK}), FULL),
    "os_exit_in_forward": (Spec(REF_LOOKUP, REF_RETRIEVE, EXIT_ZERO),
                           scores(cases("forward", "training"))),
}

# The attacks every end-to-end front door runs: patched comparisons and otter, reading the
# grader's files and leaking them through output or an exception, a cell that exits the
# process, and one that kills its parent.
EVERY_DOOR = ("patch_comparisons_with_stubs", "patch_otter_with_stubs", "read_files_and_print",
              "leak_through_exception", "os_exit_in_a_cell", "kill_parent")


class PickleMarker:
    """A pickle that creates the file `path` when loaded (nothing may unpickle an upload's)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
