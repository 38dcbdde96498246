"""peng3dnet-rs: the peng3dnet networking library with a native Rust core.

Every public name of peng3dnet is importable from this package and from its original
submodule, e.g. ``peng3dnet.Server`` is ``peng3dnet.net.Server``.
"""

from .constants import *  # noqa: F403
from .errors import *  # noqa: F403
from .util import *  # noqa: F403
from .version import *  # noqa: F403
