"""The sandbox that runs student code: one module per layer or role.

- `supervisor` (trusted): starts the zygote, runs jobs, keeps time and memory, reads
  results; the grader talks only to `Sandbox`.
- `zygote`: the warm process that forks one sandboxed job after another.
- `channel`: the one bounded, strictly parsed way results come back.
- layers, applied in the job: `namespaces` (+ `view`, what the job sees), `landlock`,
  `seccomp`, `limits`; and `uids` (a uid of its own when the grader is root).
- `memcg`: a memory cgroup per job, made by the supervisor and joined by the job's
  leader, where the machine allows one (else `limits.held_mb` counts held memory).

Levels, strongest first: `namespaces` (all layers), `landlock` (no namespaces: Landlock,
seccomp, limits, own uid as root), `process` (seccomp where it works, limits, own uid as
root). docs/security.md says which apply where.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sandbox", "Limits", "Policy", "JobOutcome", "JobResult", "SandboxError", "IsolationError",
           "LEVELS", "level_rank"]


def __getattr__(name: str) -> Any:
    # Lazy: the zygote imports this package and must not load the trusted side.
    if name in __all__:
        from coursekit.sandbox import supervisor

        return getattr(supervisor, name)
    raise AttributeError(name)
