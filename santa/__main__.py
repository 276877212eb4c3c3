"""``python -m santa ...``: the same as the ``santa`` command."""

import sys

from santa.cli import main

sys.exit(main())
