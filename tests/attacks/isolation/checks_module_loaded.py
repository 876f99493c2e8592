"""Probe (a notebook cell): find the hidden checks in the job's process.

Already imported (sys.modules, or any module loaded from checks.py / attention_checks.py)
or importable by name. `probe()` is True when the job can reach them.
"""
import importlib
import sys


def probe() -> bool:
    if "attention_basics.checks" in sys.modules or "attention_checks" in sys.modules:
        return True
    for module in list(sys.modules.values()):
        path = str(getattr(module, "__file__", None) or "")
        if path.endswith(("attention_basics/checks.py", "attention_checks.py")):
            return True
    for name in ("attention_basics.checks", "attention_checks"):
        try:
            module = importlib.import_module(name)
        except BaseException:
            continue
        if hasattr(module, "verdict") or hasattr(module, "probes"):
            return True
    return False
