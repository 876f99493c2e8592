"""A second, minimal lab (issue 21): one autograded function, `scale(scores, temperature)`,
one hidden check and one written question. The tests build and grade it with the same
commands as Attention Basics, in a course of their own (tests/test_second_lab.py)."""
