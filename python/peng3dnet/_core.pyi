"""Type stubs for the native module ``peng3dnet._core`` (Rust, built with PyO3).

The public API is the Python package; these classes are what it drives. Every method
that waits releases the GIL while it does.
"""

from typing import Any, Awaitable, Literal, Optional, Union, final

from typing_extensions import disjoint_base

__all__ = [
    "EV_CLOSED",
    "EV_CONNECTED",
    "EV_HANDSHAKE_COMPLETE",
    "EV_INIT",
    "EV_LOG",
    "EV_PACKET",
    "EV_SENT",
    "INTERNAL_ID_LIMIT",
    "INTERNAL_PACKETS",
    "PID_CLOSE",
    "ClientCore",
    "Connection",
    "EventBatch",
    "FrameCodec",
    "PeerCore",
    "ServerCore",
    "__version__",
    "build_info",
    "direct_readers",
    "packb",
    "runtime_tasks",
    "timer_entries",
    "unpackb",
]

__version__: str

EV_CONNECTED: int
EV_PACKET: int
EV_SENT: int
EV_HANDSHAKE_COMPLETE: int
EV_INIT: int
EV_CLOSED: int
EV_LOG: int
INTERNAL_ID_LIMIT: int
"""Packet ids below this are internal: the handshake's and the close packet."""
INTERNAL_PACKETS: list[tuple[str, int]]
"""The internal packets (name, id) as both sides register them, in the original's order."""
PID_CLOSE: int
"""The close packet's id."""

_Addr = Union[tuple[str, int], tuple[str, int, int, int]]
_Event = tuple[Any, ...]

def build_info() -> dict[str, str]:
    """What the core was built from: version, profile, target, zlib backend."""

def runtime_tasks() -> Optional[int]:
    """Tasks alive on the network runtime; None before the first bind or connect."""

def timer_entries() -> int:
    """Entries in the process's timer queue (handshake deadlines and heartbeats)."""

def direct_readers() -> tuple[int, int]:
    """Connections whose sockets waiting threads read themselves now, and the most
    there may be (the process's first plain TCP connections)."""

def packb(obj: Any) -> bytes:
    """Encode ``obj`` exactly as ``msgpack.packb(obj)`` does."""

def unpackb(data: bytes, *, max_depth: int = ..., max_container_len: Optional[int] = None) -> Any:
    """Decode ``data`` exactly as ``msgpack.unpackb(data)`` does, within the given limits."""

@final
class EventBatch:
    """The events of one ``take_events`` call, each converted to its tuple (a packet's
    body decoded) when iteration reaches it; ``len()`` is how many were taken."""
    def __iter__(self) -> EventBatch: ...
    def __next__(self) -> _Event: ...
    def __len__(self) -> int: ...

@final
class FrameCodec:
    """Packet encoder and incremental decoder with compression and decoding limits
    (defaults: 256 MiB frames and inflated bodies, msgpack depth 1024)."""

    def __new__(
        cls,
        *,
        compress: bool = True,
        compress_threshold: int = 8192,
        compress_level: int = 6,
        max_frame_len: int = ...,
        max_inflated_len: int = ...,
        max_depth: int = ...,
        max_container_len: Optional[int] = None,
    ) -> FrameCodec: ...
    def encode(self, pid: int, msg: Any) -> bytes:
        """Return the complete frame (prefix, header, body) for packet ``pid``."""
    def feed(self, data: bytes) -> list[tuple[int, int, Any]]:
        """Append received bytes; return every completed packet as ``(pid, flags, msg)``."""
    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""

@final
class Connection:
    """One connection: what ``ClientOnServer.conn`` and ``Client.sock`` are."""

    @property
    def cid(self) -> int: ...
    @property
    def state(self) -> int:
        """``STATE_*``; ``STATE_CLOSED`` once the connection is over and dispatched."""
    def set_state(self, value: int) -> None: ...
    @property
    def conntype(self) -> str: ...
    def set_conntype(self, value: str) -> None: ...
    @property
    def ssl_seclevel(self) -> int: ...
    def getpeername(self) -> _Addr: ...
    def getsockname(self) -> _Addr: ...
    def fileno(self) -> int: ...
    @property
    def closing(self) -> bool: ...
    @property
    def finished(self) -> bool: ...
    @property
    def queued_bytes(self) -> int: ...
    def wait_writable(self, limit: int) -> Awaitable[None]:
        """Completes once at most ``limit`` bytes are queued or the connection is closing."""
    @property
    def close_reason(self) -> Optional[str]: ...
    def traffic(self) -> tuple[int, int, int, int]:
        """(bytes read, frames decoded, frames queued, bytes written) so far."""
    def stats(self) -> dict[str, Any]:
        """A snapshot of the connection's statistics (see ``Client.stats``)."""
    def send(
        self, pid: int, msg: Any, want_frame: bool = False
    ) -> Union[Literal[False], Literal[True], bytes]:
        """Queue a packet: ``False`` if the connection is closing, else the frame or ``True``."""
    def encode(self, pid: int, msg: Any) -> bytes:
        """The frame ``send`` would queue, without queueing it."""
    def queue(self, frame: bytes) -> bool:
        """Queue a frame made by ``encode``; ``False`` if the connection is closing."""
    def close(self, reason: Optional[str] = None) -> None:
        """Close gracefully: queued packets, then a close packet with ``reason``."""
    def abort(self, reason: Optional[str] = None) -> None:
        """End the connection at once, without a close packet."""
    def inject(self, raw: bytes) -> None:
        """Queue a raw packet (header and body) as if it had arrived on this connection."""
    def init_done(self) -> None: ...
    def classic_init(self) -> None: ...

@disjoint_base
class PeerCore:
    """What servers and clients share: configuration, registrations, events."""

    def configure(
        self,
        *,
        compress: bool,
        compress_threshold: int,
        compress_level: int,
        max_frame_len: int,
        max_inflated_len: int,
        max_depth: int,
        max_container_len: Optional[int],
        inbox_limit: int,
        linger: float,
        close_timeout: float,
        handshake_timeout: Optional[float],
        idle_timeout: Optional[float],
        write_queue_limit: int,
        keepalive_interval: Optional[float] = None,
        keepalive_timeout: Optional[float] = None,
        handshake_frame_len: Optional[int] = None,
        memory_budget: Optional[int] = None,
        memory_grace: Optional[float] = None,
    ) -> None:
        """Settings for connections made from now on (the memory budget applies at once
        to all). A keepalive interval turns on TCP keepalive and offers heartbeats;
        raises ValueError for invalid values."""
    def memory_stats(self) -> dict[str, Any]:
        """The memory budget: limit, bytes in use, peak, evictions, pressure now."""
    def register_packet(self, name: str, pid: int) -> None: ...
    def unregister_packet(self, name: str) -> None: ...
    def add_conntype(self, name: str, native: bool) -> None: ...
    def take_events(
        self, wait: bool = False, timeout: Optional[float] = None, max_events: int = 1024
    ) -> EventBatch: ...
    @property
    def has_work(self) -> bool:
        """Whether take_events without waiting would find events or an interrupt."""
    def dispatch_done(self) -> None: ...
    def interrupt(self) -> None: ...
    def wakeup_fd(self) -> int:
        """A socket that an event loop watches; readable once armed and an event came."""
    def arm_wakeup(self) -> bool:
        """Arm the wake-up socket; False if events are already waiting."""
    def drain_wakeup(self) -> None: ...
    def close_wakeup(self) -> None: ...
    def watch_sockets(self) -> list[int]: ...
    def read_watched_sockets(self) -> tuple[list[int], bool]: ...
    def unwatch_sockets(self) -> None: ...
    def events_ready(self) -> Awaitable[None]:
        """Completes once an event is queued (or after ``interrupt``); call from the loop."""

@final
class ServerCore(PeerCore):
    def __init__(self) -> None: ...
    def bind(self, addrs: list[_Addr]) -> _Addr: ...
    def bind_memory(self, name: str) -> tuple[str, int]:
        """Listen on the in-process address ``memory:name``; OSError if it is in use."""
    def listener_fileno(self) -> int: ...
    def start(self) -> None: ...
    def stop(self, reason: Optional[str] = None) -> None: ...
    def close_all(self, reason: Optional[str] = None) -> None: ...
    def configure_tls(
        self,
        enabled: bool,
        *,
        certfile: Optional[str] = None,
        keyfile: Optional[str] = None,
        client_ca: Optional[str] = None,
        require_client_cert: bool = True,
    ) -> None:
        """Use TLS for connections accepted from now on; raises TLSConfigError."""
    def set_max_connections(self, limit: int) -> None: ...
    def broadcast(self, pid: int, msg: Any, cids: list[int]) -> int:
        """Encode once; queue to each active, open connection of ``cids``; how many."""
    def wait_all_gone(self, timeout: Optional[float] = None) -> bool: ...
    @property
    def connection_count(self) -> int: ...
    def stats(self) -> dict[str, Any]:
        """Totals over every connection so far (see ``Server.stats``)."""
    def connection_stats(self) -> dict[int, dict[str, Any]]:
        """Each live connection's statistics, by cid."""
    def gen_cid(self) -> int: ...
    def connection(self, cid: int) -> Optional[Connection]: ...

@final
class ClientCore(PeerCore):
    def __new__(
        cls, target_conntype: str, autosync: bool = True, require_same_names: bool = True
    ) -> ClientCore: ...
    def set_options(self, target_conntype: str, autosync: bool, require_same_names: bool) -> None: ...
    @property
    def table_epoch(self) -> int: ...
    def table(self) -> list[tuple[str, int]]: ...
    def configure_tls(
        self,
        enabled: bool,
        *,
        ca: Optional[str] = None,
        require_verified: bool = False,
        check_hostname: bool = False,
        certfile: Optional[str] = None,
        keyfile: Optional[str] = None,
    ) -> None:
        """Use TLS for the next connection; raises TLSConfigError."""
    def connect(self, addrs: list[_Addr], timeout: float, host: str) -> Connection:
        """Connect (TLS handshake with ``host`` included); raises OSError or TLSError."""
    def connect_memory(self, name: str) -> Connection:
        """Connect to this process's server on ``memory:name``; ConnectionRefusedError if none."""
    @property
    def connection(self) -> Optional[Connection]: ...
    def wait_for_connection(self, timeout: Optional[float] = None) -> tuple[bool, bool, Optional[str]]: ...
    def wait_for_close(self, timeout: Optional[float] = None) -> bool: ...
    def stop(self, reason: Optional[str] = None) -> None: ...
