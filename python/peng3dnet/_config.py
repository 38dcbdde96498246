"""Stackable configuration, compatible with ``peng3d.config.Config``.

A ``Config`` answers ``cfg[key]`` from its own dict, falling back to ``defaults`` (a dict
or another ``Config``) for keys it does not hold; assignments always go to its own dict.
``peng.cfg`` of a peng3d app is such an object, so a server or client created with a
``peng`` stacks its settings on the app's.
"""


class Config:
    """One layer of configuration on top of ``defaults``."""

    def __init__(self, config=None, defaults=None):
        self.config = {} if config is None else config
        self.defaults = {} if defaults is None else defaults

    def __getitem__(self, key):
        if key in self.config:
            return self.config[key]
        return self.defaults[key]

    def __setitem__(self, key, value):
        self.config[key] = value

    def __contains__(self, key):
        # Like peng3d: only this layer's own keys.
        return key in self.config

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __repr__(self):
        return f"{type(self).__name__}({self.config!r}, defaults={self.defaults!r})"
