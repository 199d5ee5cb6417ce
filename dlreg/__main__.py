"""`python -m dlreg ...` entry point."""

import sys

from dlreg.cli import main

sys.exit(main())
