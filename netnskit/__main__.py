"""``python -m netnskit``: the command line."""

import sys

from netnskit.cli import main

sys.exit(main())
