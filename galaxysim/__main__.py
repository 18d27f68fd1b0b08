"""``python -m galaxysim`` runs the ``galaxysim`` command."""

import sys

from .cli import main

sys.exit(main())
