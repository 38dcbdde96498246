"""Registries that translate between the three forms of a packet type.

A packet type has an integer id (on the wire), a string name (``"namespace:name"``)
and an object (a :class:`~peng3dnet.packet.Packet` instance). ``getID``/``getName``/
``getObj`` convert any form into the wanted one; ``reg[x]`` is ``getObj(x)``.
"""

import threading

from . import errors, packet  # noqa: F401 (packet: reachable as peng3dnet.registry.packet)
from ._hooks import library_default
from ._hooks import overrides as _overrides
from .packet import Packet

__all__ = ["BaseRegistry", "PacketRegistry"]

HAVE_BIDICT = True
"""Kept from the original, where the registries needed the ``bidict`` package; ours has
its own two-way map (:class:`BiMap`), so registries are always available."""


class BiMap:
    """A dict whose values are unique, with its inverse available as ``.inv``.

    Stands in for the ``bidict`` objects of the original (``reg_int_obj`` and
    ``reg_int_str``); ``m.inv`` is a live view with keys and values swapped.
    """

    __slots__ = ("_changed", "_fwd", "_inv", "_inverse")

    def __init__(self, items=None):
        self._fwd = {}
        self._inv = {}
        self._inverse = None
        # Called after every change (a registry forgets its cached send routes).
        self._changed = None
        if items:
            for key, value in dict(items).items():
                self[key] = value

    @classmethod
    def _view(cls, fwd, inv):
        view = cls.__new__(cls)
        view._fwd, view._inv, view._inverse, view._changed = fwd, inv, None, None
        return view

    @property
    def inv(self):
        """The inverse mapping (value -> key), sharing this map's storage."""
        # Made once: every send by packet name looks a name up through it.
        if self._inverse is None:
            self._inverse = BiMap._view(self._inv, self._fwd)
            self._inverse._inverse = self
            self._inverse._changed = self._changed
        return self._inverse

    def _notify(self):
        if self._changed is not None:
            self._changed()

    def __getitem__(self, key):
        return self._fwd[key]

    def __setitem__(self, key, value):
        owner = self._inv.get(value, _MISSING)
        if owner is not _MISSING and owner != key:
            raise errors.AlreadyRegisteredError(f"{value!r} is already mapped from {owner!r}")
        if key in self._fwd:
            del self._inv[self._fwd[key]]
        self._fwd[key] = value
        self._inv[value] = key
        changed = self._changed  # _notify(), inline: registries fill maps per client
        if changed is not None:
            changed()

    def __delitem__(self, key):
        value = self._fwd.pop(key)
        del self._inv[value]
        self._notify()

    def __contains__(self, key):
        return key in self._fwd

    def __iter__(self):
        return iter(self._fwd)

    def __len__(self):
        return len(self._fwd)

    def __eq__(self, other):
        if isinstance(other, BiMap):
            return self._fwd == other._fwd
        return self._fwd == other

    __hash__ = None

    def get(self, key, default=None):
        return self._fwd.get(key, default)

    def keys(self):
        return self._fwd.keys()

    def values(self):
        return self._fwd.values()

    def items(self):
        return self._fwd.items()

    def copy(self):
        return BiMap(self._fwd)

    def __repr__(self):
        return f"BiMap({self._fwd!r})"


_MISSING = object()


def _refuse_taken(obj, name, n, names, ids, objects):
    """Raise :class:`~peng3dnet.errors.AlreadyRegisteredError` if ``name``, id ``n`` or
    ``obj`` is registered already (``names``: name -> id, ``ids``: id -> name,
    ``objects``: object -> id)."""
    if name in names:
        raise errors.AlreadyRegisteredError(f"{name!r} is already registered with id {names[name]}")
    if n is not None and n in ids:
        raise errors.AlreadyRegisteredError(f"id {n} is already used by {ids[n]!r}")
    if obj in objects:
        raise errors.AlreadyRegisteredError(
            f"this object is already registered as {ids[objects[obj]]!r}; create one object per packet type"
        )


class BaseRegistry:
    """Maps objects of type ``objtype`` to unique names and integer ids.

    New ids count up from 64 (ids below 64 are reserved for internal packets) and skip
    ids that are already taken; generating them is thread-safe. Registering a name, id
    or object twice raises :class:`~peng3dnet.errors.AlreadyRegisteredError`.
    """

    objtype = object
    """Objects must be instances of this class (``objtype`` may override it per instance)."""

    def __init__(self, objtype=None):
        if objtype is not None:
            self.objtype = objtype
        self._routes = {}
        self.reg_int_obj = BiMap()
        self.reg_int_str = BiMap()
        self.nextid = 64
        self.idlock = threading.Lock()
        self._listeners = []

    # The two maps are properties so that replacing one (as _adopt_ids does, or an app
    # reaching into the registry) also drops the cached send routes.
    @property
    def reg_int_obj(self):
        """id -> object (a :class:`BiMap`; ``.inv`` maps objects to ids)."""
        return self._reg_int_obj

    @reg_int_obj.setter
    def reg_int_obj(self, bimap):
        self._reg_int_obj = self._watched(bimap)

    @property
    def reg_int_str(self):
        """id -> name (a :class:`BiMap`; ``.inv`` maps names to ids)."""
        return self._reg_int_str

    @reg_int_str.setter
    def reg_int_str(self, bimap):
        self._reg_int_str = self._watched(bimap)

    def _watched(self, bimap):
        if isinstance(bimap, BiMap):
            bimap._changed = self._forget_routes
            if bimap._inverse is not None:
                bimap._inverse._changed = self._forget_routes
        self._forget_routes()
        return bimap

    def _forget_routes(self):
        # A new dict rather than clear(): a sender that looked up the routes before the
        # change and stores what it computed from the old maps stores into the old dict.
        self._routes = {}

    def getNewID(self):
        """Return an unused id, counting up from 64."""
        with self.idlock:
            while self.nextid in self.reg_int_str:
                self.nextid += 1
            n = self.nextid
            self.nextid += 1
            return n

    def register(self, obj, name, n=None):
        """Register ``obj`` under ``name`` and id ``n`` (a new id if ``n`` is None)."""
        if not isinstance(obj, self.objtype):
            raise TypeError(
                f"this registry holds {self.objtype.__name__} objects, not {type(obj).__name__}; "
                f"register an instance of {self.objtype.__name__} or a subclass"
            )
        if not isinstance(name, str):
            raise TypeError(f"a registry name must be a str, not {type(name).__name__}")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**32):
            raise TypeError(f"a registry id must be an int from 0 to 2**32-1, not {n!r}")
        by_id_name, by_id_obj = self.reg_int_str, self.reg_int_obj
        if (
            type(by_id_name) is BiMap
            and type(by_id_obj) is BiMap
            and type(self).getNewID is BaseRegistry.getNewID
            and "getNewID" not in self.__dict__
        ):
            n = self._register_plain(obj, name, n, by_id_name, by_id_obj)
        else:
            n = self._register_general(obj, name, n, by_id_name, by_id_obj)
        for listener in self._listeners:
            listener.register_packet(name, n)

    def _register_plain(self, obj, name, n, by_id_name, by_id_obj):
        """:meth:`register` on the library's own maps and id generator: one lock held
        from the checks to the last store, the maps' dicts filled directly (a client
        registers a dozen packets as it starts, and clients start by the thousand)."""
        ids, names = by_id_name._fwd, by_id_name._inv
        with self.idlock:
            _refuse_taken(obj, name, n, names, ids, by_id_obj._inv)
            if n is None:  # getNewID(), inline
                n = self.nextid
                while n in ids:
                    n += 1
                self.nextid = n + 1
            stale = by_id_obj._fwd.get(n, _MISSING)  # only if an app filled the maps unevenly
            if stale is not _MISSING:
                del by_id_obj._inv[stale]
            by_id_obj._fwd[n] = obj
            by_id_obj._inv[obj] = n
            ids[n] = name
            names[name] = n
        for bimap in (by_id_obj, by_id_name):
            if bimap._changed is not None:
                bimap._changed()
        return n

    def _register_general(self, obj, name, n, by_id_name, by_id_obj):
        with self.idlock:
            _refuse_taken(obj, name, n, by_id_name.inv, by_id_name, by_id_obj.inv)
        if n is None:
            n = self.getNewID()
        by_id_obj[n] = obj
        by_id_name[n] = name
        return n

    def registerObject(self, obj, n=None):
        """Like :meth:`register`, with the name taken from ``obj.name``."""
        self.register(obj, obj.name, n)

    def deleteObj(self, obj):
        """Remove an entry, given in any of its three forms."""
        intid = self.getID(obj)
        name = self.reg_int_str[intid]
        del self.reg_int_obj[intid]
        del self.reg_int_str[intid]
        for listener in self._listeners:
            listener.unregister_packet(name)

    def getName(self, obj):
        """The name of ``obj`` (a str is returned as it is)."""
        if isinstance(obj, str):
            return obj
        if isinstance(obj, int):
            return self.reg_int_str[obj]
        if isinstance(obj, self.objtype):
            return self.reg_int_str[self.reg_int_obj.inv[obj]]
        raise TypeError(
            f"cannot convert a {type(obj).__name__} to a registry name; give an int, str or object"
        )

    getStr = getName

    @library_default
    def getID(self, obj):
        """The id of ``obj`` (an int is returned as it is)."""
        if isinstance(obj, int):
            return obj
        if isinstance(obj, str):
            return self.reg_int_str.inv[obj]
        if isinstance(obj, self.objtype):
            return self.reg_int_obj.inv[obj]
        raise TypeError(f"cannot convert a {type(obj).__name__} to a registry id; give an int, str or object")

    getInt = getID

    @library_default
    def getObj(self, obj):
        """The object of ``obj`` (an object of ``objtype`` is returned as it is)."""
        if isinstance(obj, self.objtype):
            return obj
        if isinstance(obj, int):
            return self.reg_int_obj[obj]
        if isinstance(obj, str):
            return self.reg_int_obj[self.reg_int_str.inv[obj]]
        raise TypeError(
            f"cannot convert a {type(obj).__name__} to a registry object; give an int, str or object"
        )

    def getAll(self, obj):
        """``(getObj(obj), getID(obj), getName(obj))``."""
        return self.getObj(obj), self.getID(obj), self.getName(obj)

    def __getitem__(self, item):
        return self.getObj(item)

    # --- for the peers -------------------------------------------------------------

    def _add_listener(self, listener):
        """Tell ``listener`` (a native core) about every current and future entry."""
        self._listeners.append(listener)
        for n, name in self.reg_int_str.items():
            listener.register_packet(name, n)

    def _remove_listener(self, listener):
        """Stop telling ``listener`` about entries, and take this registry's entries back
        from it (a peer whose registry is replaced)."""
        if listener in self._listeners:
            self._listeners.remove(listener)
            for name in list(self.reg_int_str.values()):
                listener.unregister_packet(name)

    def _adopt_ids(self, table):
        """Re-number entries as the handshake decided: ``table`` is ``[(name, id)]``.

        Each known name's object is asked of ``getObj`` and ``getInt``, as the original's
        handshake did (an app's registry may override them)."""
        if self._ids_match(table):
            with self.idlock:
                self.nextid = max([64, *(n + 1 for n in self.reg_int_str)])
            return
        new_obj, new_str = BiMap(), BiMap()
        for name, n in table:
            if name not in self.reg_int_str.inv:
                continue
            obj = self.getObj(name)
            # The original asked for the old id too, to remove it; the maps are rebuilt
            # here, but an override of getInt still hears of each name, as it did.
            self.getInt(name)
            new_obj[n] = obj
            new_str[n] = name
        with self.idlock:
            self.reg_int_obj, self.reg_int_str = new_obj, new_str
            self.nextid = max([64, *(n + 1 for n in new_str)])

    def _ids_match(self, table):
        """Whether adopting ``table`` would change nothing and tell nobody: each of its
        names known here already has its id, every name known here is in it, and
        ``getObj``/``getInt`` are the library's (an override hears of each name)."""
        if _overrides(self, "getObj") or _overrides(self, "getInt") or _overrides(self, "getID"):
            return False
        by_id = self.reg_int_str
        if not isinstance(by_id, BiMap):
            return False
        names = by_id._inv
        found = 0
        for name, n in table:
            if name in names:
                if names[name] != n:
                    return False
                found += 1
        return found == len(names)


class PacketRegistry(BaseRegistry):
    """A registry of :class:`~peng3dnet.packet.Packet` objects."""

    objtype = Packet
