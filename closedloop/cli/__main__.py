"""``python -m closedloop.cli``: the same as the ``closedloop`` console script."""

import sys

from closedloop.cli import main

sys.exit(main())
