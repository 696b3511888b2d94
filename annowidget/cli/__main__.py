"""``python -m annowidget.cli``: the same as the ``annowidget`` command."""

import sys

from annowidget.cli import main

sys.exit(main())
