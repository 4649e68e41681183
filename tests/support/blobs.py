"""Synthetic blobs for registry tests: exact bytes, streamed in small buffers like the real layer sources."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.publish_fixtures import write_pattern


@dataclass
class MemoryBlob:
    data: bytes
    chunk: int = 64 * 1024
    media_type: str = "application/vnd.oci.image.layer.v1.tar"
    opens: int = field(default=0, compare=False)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> Iterator[bytes]:
        self.opens += 1
        for start in range(0, len(self.data), self.chunk):
            yield self.data[start : start + self.chunk]


@dataclass
class FileBlob:
    path: Path
    digest: str
    size: int
    chunk: int = 1024 * 1024
    media_type: str = "application/vnd.oci.image.layer.v1.tar"

    @classmethod
    def create(cls, path: Path, size: int, seed: int = 0) -> FileBlob:
        return cls(path=path, digest="sha256:" + write_pattern(path, size, seed), size=size)

    def open(self) -> Iterator[bytes]:
        with self.path.open("rb") as src:
            while piece := src.read(self.chunk):
                yield piece


def random_blob(size: int, chunk: int = 64 * 1024) -> MemoryBlob:
    return MemoryBlob(os.urandom(size), chunk=chunk)
