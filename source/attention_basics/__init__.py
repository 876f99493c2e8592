"""The Attention Basics lab: its hidden checks (`checks.py`), the calls of student code they
need (`calls.py`, the only part the sandboxed job imports), the students' public checks
(`public_checks.py`), its data (`data.py`) and what the engine is given (`lab.py`)."""
