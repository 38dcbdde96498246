"""Extensions of the peng3dnet protocol."""

from . import ping

__all__ = ["ping"]
