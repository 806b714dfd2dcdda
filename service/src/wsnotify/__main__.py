"""``python -m wsnotify`` is the same as the ``wsnotify`` console script."""

import sys

from .cli import main

sys.exit(main())
