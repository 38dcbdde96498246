"""peng3dnet-rs: the peng3dnet networking library with a native Rust core.

Every public name of peng3dnet is importable from this package and from its original
submodule, e.g. ``peng3dnet.Server`` is ``peng3dnet.net.Server``. Diagnostics go to the
``peng3dnet`` logger, which has no handler of its own.
"""

import logging as _logging

_logging.getLogger("peng3dnet").addHandler(_logging.NullHandler())

from .conntypes import *  # noqa: E402, F403
from .constants import *  # noqa: E402, F403
from .errors import *  # noqa: E402, F403
from .ext import *  # noqa: E402, F403
from .net import *  # noqa: E402, F403
from .registry import *  # noqa: E402, F403
from .util import *  # noqa: E402, F403
from .version import *  # noqa: E402, F403
