"""Type stubs for the native module ``peng3dnet._core`` (Rust, built with PyO3)."""

from typing import Any, Optional

__version__: str

def build_info() -> dict[str, str]:
    """What the core was built from: version, profile, target, zlib backend."""

def packb(obj: Any) -> bytes:
    """Encode ``obj`` exactly as ``msgpack.packb(obj)`` does."""

def unpackb(data: bytes, *, max_depth: int = 1024, max_container_len: Optional[int] = None) -> Any:
    """Decode ``data`` exactly as ``msgpack.unpackb(data)`` does, within the given limits."""

class FrameCodec:
    """Packet encoder and incremental decoder with compression and decoding limits."""

    def __init__(
        self,
        *,
        compress: bool = True,
        compress_threshold: int = 8192,
        compress_level: int = 6,
        max_frame_len: int = 268435456,
        max_inflated_len: int = 268435456,
        max_depth: int = 1024,
        max_container_len: Optional[int] = None,
    ) -> None: ...
    def encode(self, pid: int, msg: Any) -> bytes:
        """Return the complete frame (prefix, header, body) for packet ``pid``."""
    def feed(self, data: bytes) -> list[tuple[int, int, Any]]:
        """Append received bytes; return every completed packet as ``(pid, flags, msg)``."""
    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as packets."""
