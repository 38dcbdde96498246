"""Which overridable methods an app has replaced.

The original calls its overridable methods (``on_send``, a packet's ``send``, a
connection type's ``receive``, ``genCID``, ...) on every occasion, and apps override
them. peng3dnet-rs may skip a call only where the method is still the library's own and
its effect is had by other means (it does nothing, or the native core does it). Those
library versions are marked with :func:`library_default`; :func:`overrides` tells
whether an object uses one of them, answered once per class (plus one dict lookup for
hooks assigned on the object itself, which apps also do).
"""

__all__ = ["library_default", "overrides", "redefined"]

# class -> the names of marked methods that the class redefines
_REDEFINED = {}


def library_default(func):
    """Mark ``func`` as a library version of an overridable method whose call may be
    skipped while no subclass or instance replaces it."""
    func._peng3dnet_default = True
    return func


def redefined(cls):
    """The names of marked methods that ``cls`` (or a class between it and the library)
    replaces, worked out once per class."""
    found = _REDEFINED.get(cls)
    if found is None:
        marked = {
            name
            for klass in cls.__mro__
            for name, value in vars(klass).items()
            if getattr(value, "_peng3dnet_default", False)
        }
        found = frozenset(
            name for name in marked if not getattr(getattr(cls, name), "_peng3dnet_default", False)
        )
        _REDEFINED[cls] = found
    return found


def overrides(obj, name):
    """Whether ``obj``'s method ``name`` is not the library's marked version: its class
    replaces it, or it is set on the object itself."""
    # The cache is read here directly: this runs on every send and receive.
    found = _REDEFINED.get(type(obj))
    if found is None:
        found = redefined(type(obj))
    return name in found or name in getattr(obj, "__dict__", ())
