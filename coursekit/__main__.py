"""`python -m coursekit` runs the CLI."""

import sys

from coursekit.cli import main

sys.exit(main())
