"""`python -m httap` is the `httap` command."""

import sys

from httap.cli import main

sys.exit(main())
