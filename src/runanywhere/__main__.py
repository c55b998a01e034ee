"""``python -m runanywhere`` is the ``runanywhere`` command."""

import sys

from .cli.main import main

sys.exit(main())
