"""``python -m derive``: the backprop command line."""

import sys

from derive.cli import main

sys.exit(main())
