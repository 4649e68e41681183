"""A model layer of remote files (streamed from the hub) read from any byte offset: what lets an upload that the
registry lost resume where the registry says it stands, reading from the hub only from there.

The bytes are those of `tar_layer.layer_segments`, the one definition of a layer. While they stream, every
`CHECKPOINT_BYTES` of file data a checkpoint keeps a copy of the running sha256 of the layer and of the running
hashes of the file being read (`source.ContentHash`): a few hundred bytes each, so about 100 KiB per GiB of
layer. A read from offset N starts at the last checkpoint at or before N: the file is requested from there
(`ModelFile.opener_at`: an HTTP Range request), the bytes up to N hashed and dropped, the rest yielded. So the
layer digest and each file's verification (sha256 against the hub's LFS sha256, or git blob id) are exactly
those of one uninterrupted read, and a file that turns out wrong fails before its layer's last byte, so before
any upload of it is committed.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llm_platform.errors import PlatformError
from llm_platform.modelcar import tar_layer
from llm_platform.modelcar.source import ContentHash, ModelFile
from llm_platform.oci import digest_of

CHECKPOINT_BYTES = 4 << 20


@dataclass(frozen=True)
class _Checkpoint:
    offset: int  # layer bytes before this point
    segment: int  # the segment this point is in
    within: int  # bytes of that segment before this point
    layer_hash: Any  # sha256 of the layer bytes before this point (None: the layer is not hashed)
    file_hash: ContentHash | None  # hashes of the file's bytes before this point (a file segment)


def _fill(reader: Any, buffer: bytearray) -> int:
    """Read until `buffer` is full or the reader ends: every chunk but a file's last is whole, so checkpoints
    fall where the hashes are."""
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        count = reader.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


class LayerStream:
    """The bytes of the layer of `files` from any offset (`read`); `hash_layer`: learn its digest on the way."""

    def __init__(self, files: Sequence[ModelFile], *, hash_layer: bool) -> None:
        self.files = list(files)
        self.segments = tar_layer.layer_segments([(f.path, f.size) for f in self.files])
        first = _Checkpoint(0, 0, 0, hashlib.sha256() if hash_layer else None, None)
        self._offsets, self._checkpoints = [0], {0: first}
        self._lock = threading.Lock()  # a resumed read may start while the abandoned one still runs

    def _record(self, checkpoint: _Checkpoint) -> None:
        with self._lock:
            if checkpoint.offset not in self._checkpoints:
                bisect.insort(self._offsets, checkpoint.offset)
                self._checkpoints[checkpoint.offset] = checkpoint

    def _restart_point(self, start: int) -> _Checkpoint:
        with self._lock:
            return self._checkpoints[self._offsets[bisect.bisect_right(self._offsets, start) - 1]]

    def read(self, start: int, on_end: Callable[[str | None, int], None]) -> Iterator[bytes]:
        """The layer's bytes from `start` on, in chunks of at most 1 MiB; at the end `on_end(digest, size)` (digest
        None when the layer is not hashed), before the generator finishes."""
        point = self._restart_point(start)
        layer_hash = point.layer_hash.copy() if point.layer_hash is not None else None
        offset = point.offset
        for index in range(point.segment, len(self.segments)):
            segment = self.segments[index]
            within = point.within if index == point.segment else 0
            if isinstance(segment, bytes):
                pieces: Iterator[bytes | bytearray] = iter((segment[within:],))
            else:
                hashes = point.file_hash.copy() if index == point.segment and point.file_hash else None
                pieces = self._file_pieces(index, self.files[segment], within, hashes, offset, layer_hash)
            for piece in pieces:
                if layer_hash is not None:
                    layer_hash.update(piece)
                before, offset = offset, offset + len(piece)
                if offset > start:
                    yield bytes(piece) if before >= start else bytes(memoryview(piece)[start - before :])
        on_end(digest_of(layer_hash) if layer_hash is not None else None, offset)

    def _file_pieces(
        self,
        segment: int,
        model_file: ModelFile,
        within: int,
        hashes: ContentHash | None,
        offset: int,
        layer_hash: Any,
    ) -> Iterator[bytearray]:
        """The file's bytes from `within` on, verified; a checkpoint every CHECKPOINT_BYTES. `layer_hash` is
        the caller's running layer hash, which has taken every piece yielded so far when the next is asked for."""
        reader = model_file.open_verified(within, hashes)
        try:
            position, last = within, offset
            while position < model_file.size:
                buffer = bytearray(min(tar_layer.CHUNK, model_file.size - position))
                count = _fill(reader, buffer)
                if count < len(buffer):  # the verifying reader names the shortfall first; this is a backstop
                    raise PlatformError(tar_layer.shorter_than_recorded(model_file.path, model_file.size))
                yield buffer
                position += count
                offset += count
                if offset - last >= CHECKPOINT_BYTES and position < model_file.size:
                    last = offset
                    self._record(
                        _Checkpoint(
                            offset,
                            segment,
                            position,
                            layer_hash.copy() if layer_hash is not None else None,
                            reader.hashes.copy(),
                        )
                    )
            if reader.readinto(bytearray(1)):  # at the end: the verifying reader checks size and hashes here
                raise PlatformError(tar_layer.longer_than_recorded(model_file.path, model_file.size))
        finally:
            reader.close()
