"""Loggers that exist only once something is logged.

The original library creates no logger, so importing it never calls
``logging.getLogger``. Apps install their own logger class with
``logging.setLoggerClass`` before importing peng3dnet, and such a class may refuse to
be created before the app has set itself up. A :class:`LazyLogger` therefore answers
``isEnabledFor`` from the loggers that already exist (the nearest ancestor, else the
root) and creates its logger only for a record that will be emitted.
"""

import logging

__all__ = ["LazyLogger"]


class LazyLogger:
    """Stands for ``logging.getLogger(name)`` without creating it before a record."""

    __slots__ = ("_chain", "_logger", "name")

    def __init__(self, name):
        self.name = name
        self._logger = None
        parts = name.split(".")
        # The logger itself, then its ancestors: the first that exists decides the level.
        self._chain = tuple(".".join(parts[:i]) for i in range(len(parts), 0, -1))

    def _existing(self):
        loggers = logging.Logger.manager.loggerDict
        for name in self._chain:
            found = loggers.get(name)
            if isinstance(found, logging.Logger):
                if name == self.name:
                    self._logger = found
                return found
        return logging.getLogger()

    def isEnabledFor(self, level):
        logger = self._logger
        if logger is None:
            logger = self._existing()
        return logger.isEnabledFor(level)

    def log(self, level, msg, *args, **kwargs):
        if self.isEnabledFor(level):
            logger = self._logger
            if logger is None:
                logger = self._logger = logging.getLogger(self.name)
            kwargs.setdefault("stacklevel", 2)
            logger.log(level, msg, *args, **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.log(logging.DEBUG, msg, *args, stacklevel=3, **kwargs)

    def info(self, msg, *args, **kwargs):
        self.log(logging.INFO, msg, *args, stacklevel=3, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self.log(logging.WARNING, msg, *args, stacklevel=3, **kwargs)

    def error(self, msg, *args, **kwargs):
        self.log(logging.ERROR, msg, *args, stacklevel=3, **kwargs)

    def exception(self, msg, *args, exc_info=True, **kwargs):
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, stacklevel=3, **kwargs)
