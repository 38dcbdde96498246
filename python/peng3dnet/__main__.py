"""``python -m peng3dnet``: the command line (see :mod:`peng3dnet.cli`)."""

import sys

from .cli import main

sys.exit(main())
