"""peng3dnet-rs: the peng3dnet networking library with a native Rust core.

Every public name of peng3dnet is importable from this package and from its original
submodule, e.g. ``peng3dnet.Server`` is ``peng3dnet.net.Server``. Diagnostics go to
loggers under ``peng3dnet`` (``peng3dnet.net``, ``peng3dnet.aio``), created only when
they first have something to record: importing creates no logger, thread or socket.
"""

from .conntypes import *  # noqa: F403
from .constants import *  # noqa: F403
from .errors import *  # noqa: F403
from .ext import *  # noqa: F403
from .net import *  # noqa: F403
from .registry import *  # noqa: F403
from .util import *  # noqa: F403
from .version import *  # noqa: F403
