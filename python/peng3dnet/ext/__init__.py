"""Extensions of the peng3dnet protocol: :mod:`~peng3dnet.ext.ping` and the (empty)
:mod:`~peng3dnet.ext.mpgame`; ``from peng3dnet.ext import *`` gives both modules, as in
the original."""

from . import mpgame, ping

__all__ = ["mpgame", "ping"]
