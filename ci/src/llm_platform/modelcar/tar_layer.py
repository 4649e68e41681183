"""Deterministic, uncompressed tar layers of model files (one file each, or several above the layer
budget), streamed and sized before they are read.

Headers are fixed (mtime 0, uid/gid 0, empty user/group names, 0644 files, 0755 dirs) and the
entries ordered (files by path, each after the headers of its parent directories that the layer does
not hold yet), so a layer depends only on the paths and the bytes; a layer of one file is the same
whether or not other layers share. USTAR headers; a PAX record only where USTAR cannot say it (long or
non-ASCII names, sizes of 8 GiB and more). Everything about the layer except the file bytes is known up
front, so its exact size is computed without reading the files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from llm_platform.errors import PlatformError

BLOCK = 512
TRAILER = b"\0" * (2 * BLOCK)
CHUNK = 1 << 20
MODELS_ROOT = "models"
FILE_MODE = 0o644
DIR_MODE = 0o755


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _size_field(size: int) -> bytes:
    if size < 8**11:
        return _octal(size, 12)
    # GNU base-256 as well as the PAX record: scanners such as Clair ignore PAX sizes (see olot).
    return bytes([0x80]) + size.to_bytes(11, "big")


def _ustar(name: bytes, *, size: int, typeflag: bytes, mode: int) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = _octal(mode, 8)
    header[108:116] = _octal(0, 8)  # uid
    header[116:124] = _octal(0, 8)  # gid
    header[124:136] = _size_field(size)
    header[136:148] = _octal(0, 12)  # mtime
    header[148:156] = b" " * 8  # checksum placeholder while summing
    header[156:157] = typeflag
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[329:337] = _octal(0, 8)  # devmajor
    header[337:345] = _octal(0, 8)  # devminor
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _header(name: str, *, size: int = 0, directory: bool = False) -> bytes:
    """USTAR header for `name`, preceded by a PAX header only when USTAR cannot hold the name or size."""
    encoded = name.encode("utf-8")
    records = b""
    if len(encoded) > 100 or not encoded.isascii():
        records += _pax_record("path", name)
        # The USTAR name is only a fallback for readers without PAX support: ASCII, at most 100 bytes.
        encoded = encoded.decode("ascii", "replace").encode("ascii", "replace")[:100]
    if size >= 8**11:
        records += _pax_record("size", str(size))
    typeflag, mode = (b"5", DIR_MODE) if directory else (b"0", FILE_MODE)
    entry = _ustar(encoded, size=size, typeflag=typeflag, mode=mode)
    if not records:
        return entry
    pax = _ustar(b"././@PaxHeader", size=len(records), typeflag=b"x", mode=FILE_MODE)
    return pax + records + padding(len(records)) + entry


def member_name(path: str) -> str:
    return f"{MODELS_ROOT}/{path}"


def _file_headers(path: str, size: int, held: set[str]) -> bytes:
    """Headers of the file's parent directories not in `held` yet (added to it), then of the file itself."""
    parts = member_name(path).split("/")
    headers = []
    for depth in range(1, len(parts)):
        directory = "/".join(parts[:depth]) + "/"
        if directory not in held:
            held.add(directory)
            headers.append(_header(directory, directory=True))
    headers.append(_header(member_name(path), size=size))
    return b"".join(headers)


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


# A piece of a layer: header, padding or trailer bytes, or the index of the file whose bytes go there.
Segment = bytes | int


def layer_segments(files: Sequence[tuple[str, int]]) -> list[Segment]:
    """The layer of `files` ((path, size), sorted by path) as its pieces, in order: the one definition of a
    layer's bytes, which streaming, sizing and resuming all walk."""
    held: set[str] = set()
    segments: list[Segment] = []
    for index, (path, size) in enumerate(files):
        segments += [_file_headers(path, size, held), index, padding(size)]
    segments.append(TRAILER)
    return segments


def layer_size(files: Sequence[tuple[str, int]]) -> int:
    """Exact size of the layer of `files` ((path, size), sorted by path) before a byte of them is read."""
    return sum(
        len(segment) if isinstance(segment, bytes) else files[segment][1] for segment in layer_segments(files)
    )


def stream_layer(files: Sequence[tuple[str, int, Callable[[], BinaryIO]]]) -> Iterator[bytes]:
    """Yield the bytes of the layer of `files` ((path, size, opener), sorted by path) in chunks of at most 1 MiB.

    Each file must still have the size its header announces: a file that grew or shrank since it was
    listed would give a corrupt layer, so that is an error, not a silent truncation.
    """
    for segment in layer_segments([(path, size) for path, size, _ in files]):
        if isinstance(segment, bytes):
            yield segment
            continue
        path, size, open_source = files[segment]
        remaining = size
        with open_source() as source:
            while remaining:
                chunk = source.read(min(CHUNK, remaining))
                if not chunk:
                    raise PlatformError(shorter_than_recorded(path, size))
                remaining -= len(chunk)
                yield chunk
            if source.read(1):
                raise PlatformError(longer_than_recorded(path, size))


def shorter_than_recorded(path: str, size: int) -> str:
    return f"{path}: file is shorter than its recorded {size} bytes (changed during the build?)"


def longer_than_recorded(path: str, size: int) -> str:
    return f"{path}: file is longer than its recorded {size} bytes (changed during the build?)"
