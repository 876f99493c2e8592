"""coursekit: the TA tooling of the Attention Basics course package.

Modules: `build` (release, solutions, autograder), `data` (MNIST via torchvision),
`checks` (the logic behind the hidden tests), `grade` (grading submissions), `cli`.
"""

from pathlib import Path

__version__ = "0.1.0"

# The folder that holds this coursekit package: what the zygote and `otter assign` are
# given on PYTHONPATH, so they use this engine (in the autograder, the zip's own), never
# another coursekit found by name.
ENGINE_ROOT = Path(__file__).resolve().parent.parent
