"""``python -m backprop``: the backprop command line."""

import sys

from backprop.cli import main

sys.exit(main())
