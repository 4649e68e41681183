"""Content-addressed blobs: what a manifest describes and what a layout or a registry stores."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llm_platform.errors import PlatformError
from llm_platform.oci import digest_of, sha256_digest

CHUNK = 1 << 20


class Blob:
    """A blob with its media type, digest ("sha256:<hex>"), size and annotations; `open()` streams its
    exact bytes in chunks of at most 1 MiB."""

    def __init__(self, media_type: str, annotations: dict[str, str] | None = None) -> None:
        self.media_type = media_type
        self._annotations: dict[str, str] = dict(annotations or {})

    @property
    def annotations(self) -> dict[str, str]:
        return self._annotations

    @property
    def digest(self) -> str:
        raise NotImplementedError

    @property
    def size(self) -> int:
        raise NotImplementedError

    def open(self) -> Iterator[bytes]:
        raise NotImplementedError

    def descriptor(self) -> dict[str, Any]:
        descriptor: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            descriptor["annotations"] = dict(sorted(self.annotations.items()))
        return descriptor


class BytesBlob(Blob):
    """A small blob held in memory (config, manifest)."""

    verifies_digest = True  # the digest is computed from the very bytes it yields

    def __init__(self, media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> None:
        super().__init__(media_type, annotations)
        self.data = data
        self._digest = sha256_digest(data)

    @property
    def digest(self) -> str:
        return self._digest

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> Iterator[bytes]:
        yield self.data


class StreamBlob(Blob):
    """A blob whose digest and size are known and whose bytes come from `opener` (a file, a registry);
    the stream is checked against the digest and size as it is read."""

    verifies_digest = True

    def __init__(
        self,
        media_type: str,
        digest: str,
        size: int,
        opener: Callable[[], Iterator[bytes]],
        annotations: dict[str, str] | None = None,
        origin: str = "",
    ) -> None:
        super().__init__(media_type, annotations)
        self._digest, self._size, self._opener, self.origin = digest, size, opener, origin

    @property
    def digest(self) -> str:
        return self._digest

    @property
    def size(self) -> int:
        return self._size

    def open(self) -> Iterator[bytes]:
        hasher, count = hashlib.sha256(), 0
        for chunk in self._opener():
            hasher.update(chunk)
            count += len(chunk)
            if count > self._size:
                raise PlatformError(f"{self.origin}blob {self._digest} is longer than {self._size} bytes")
            yield chunk
        if count != self._size or digest_of(hasher) != self._digest:
            raise PlatformError(f"{self.origin}blob {self._digest} does not match its digest/size (corrupt?)")


def read_file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
