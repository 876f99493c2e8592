"""coursekit: the TA tooling of the Attention Basics course package.

Modules: `build` (release, solutions, autograder), `data` (MNIST via torchvision),
`checks` (the logic behind the hidden tests), `grade` (grading submissions), `cli`.
"""

__version__ = "0.1.0"
