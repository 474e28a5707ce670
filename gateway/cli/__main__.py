"""``python -m gateway.cli`` → the CLI (as ``python -m gateway``)."""

import sys

from . import main

sys.exit(main())
