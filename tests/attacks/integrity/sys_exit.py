# Raise SystemExit from a cell.
import sys
sys.exit(1)
