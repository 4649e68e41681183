"""Files pinned by sha256 in a lock, synced into a local cache: the one implementation behind
`llm-platform crds sync` (gitops/crds.lock.yaml), written for any lock of the same shape.

A lock entry names a relative `file` (its path in the cache), its `sha256` and its upstream `url`.
`sync_pinned` takes every entry that is not already cached with the right sha256 from a source —
`Upstream` (its URL, over HTTP) or `Mirror` (a directory laid out like the cache: DIR/<file>) — verifies
the bytes against the lock exactly the same way for both, and only then writes them into the cache with
`oci.atomic_write`, so the cache never holds a half-written or unverified file. Every failing entry is
named in one line; an unreachable upstream stops at once and says how to give a mirror instead.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self
from urllib.parse import urlsplit

from llm_platform.errors import InputError, PinnedFileError
from llm_platform.http_client import httpx
from llm_platform.logs import get_logger
from llm_platform.oci import atomic_write

log = get_logger("pinned")


class PinnedFile(Protocol):
    """One lock entry: where the file lives in the cache (and a mirror), its sha256 and its origin."""

    @property
    def file(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def url(self) -> str: ...


@dataclass(frozen=True)
class SyncTarget:
    """What is being synced, for messages: the command (`crds sync`) and how its user gives a mirror."""

    command: str
    mirror_hint: str  # e.g. "--mirror DIR or LLM_PLATFORM_CRDS_MIRROR=DIR"


# The two sources: `fetch(entry)` returns the entry's bytes, unverified, or raises `EntryRefusedError` /
# `SourceUnreachableError`; `origin(entry)` is where they come from, as messages name it.


class EntryRefusedError(Exception):
    """This entry cannot be taken from this source (missing, unreadable, HTTP error); the sync goes on."""


class SourceUnreachableError(Exception):
    """The source cannot be reached at all: no point in trying the other entries."""


@dataclass
class Upstream:
    """Each entry's own URL. A client may be passed in (tests, connection reuse); otherwise one is opened
    for the sync and closed after it."""

    client: httpx.Client | None = None
    _own: bool = field(default=False, init=False, repr=False)

    def __enter__(self) -> Self:
        if self.client is None:
            self.client = httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=15.0))
            self._own = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own and self.client is not None:
            self.client.close()
            self.client, self._own = None, False

    def origin(self, entry: PinnedFile) -> str:
        return entry.url

    def fetch(self, entry: PinnedFile) -> bytes:
        assert self.client is not None, "use Upstream as a context manager"
        try:
            resp = self.client.get(entry.url)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            raise SourceUnreachableError(
                f"cannot reach {urlsplit(entry.url).netloc}: {_one_line(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            raise EntryRefusedError(f"{entry.url}: {_one_line(exc)}") from exc
        if resp.status_code != 200:
            raise EntryRefusedError(f"{entry.url}: HTTP {resp.status_code}")
        return resp.content


@dataclass(frozen=True)
class Mirror:
    """A local directory holding the locked files at their lock paths (DIR/<file>), e.g. a copy of
    upstream kept where there is no internet. Its files are trusted no more than a download."""

    root: Path

    def origin(self, entry: PinnedFile) -> str:
        return str(self.root / entry.file)

    def fetch(self, entry: PinnedFile) -> bytes:
        path = self.root / entry.file
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise EntryRefusedError(
                f"{path}: missing from the mirror; put the file from {entry.url} there"
            ) from exc
        except OSError as exc:
            raise EntryRefusedError(f"{path}: cannot read it from the mirror: {exc.strerror}") from exc


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_cached(dest: Path, sha256: str) -> bool:
    try:
        return dest.is_file() and file_sha256(dest) == sha256
    except OSError:
        return False


def _drop(dest: Path) -> None:
    """Remove a cached file that failed verification (never a directory)."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()


def sync_pinned(
    entries: Iterable[PinnedFile],
    cache: Path,
    source: Upstream | Mirror,
    target: SyncTarget,
) -> tuple[int, int]:
    """Put every entry into `cache/<file>`, verified against its sha256. Returns (fetched, already cached).

    A cached file with the right sha256 is kept without reading the source; a wrong one is replaced. A file
    the source lacks or whose bytes do not match the lock is refused: nothing is written for it (a stale
    cached copy is removed, so the cache only ever holds verified files) and the sync fails after the other
    entries, naming every refused file in one line. An unreachable upstream fails at once, in one line that
    says how to give a mirror."""
    if isinstance(source, Mirror) and not source.root.is_dir():
        raise InputError(
            f"{target.command}: mirror {source.root} is not a directory (give a directory laid out "
            f"like the cache, DIR/<file>, with {target.mirror_hint})"
        )
    entries = list(entries)
    for entry in entries:  # the lock's loader should refuse these already; the cache must never be escaped
        rel = Path(entry.file)
        if not entry.file or rel.is_absolute() or ".." in rel.parts:
            raise InputError(f"{target.command}: locked file {entry.file!r} is not a plain relative path")
    fetched = cached = 0
    refused: list[str] = []
    transfer_failed = False
    with source if isinstance(source, Upstream) else contextlib.nullcontext():
        for entry in entries:
            dest = cache / entry.file
            if _is_cached(dest, entry.sha256):
                cached += 1
                continue
            try:
                data = source.fetch(entry)
            except SourceUnreachableError as exc:
                raise PinnedFileError(
                    f"{target.command}: {exc}; to sync without the internet give a mirror "
                    f"(a directory laid out like the cache, DIR/<file>): "
                    f"{target.mirror_hint}"
                ) from exc
            except EntryRefusedError as exc:
                refused.append(str(exc))
                transfer_failed = True
                _drop(dest)
                continue
            got = hashlib.sha256(data).hexdigest()
            if got != entry.sha256:
                hint = f"; replace it with the file from {entry.url}" if isinstance(source, Mirror) else ""
                refused.append(
                    f"{source.origin(entry)}: sha256 {got} does not match the lock ({entry.sha256}){hint}"
                )
                _drop(dest)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, data, keep_mode=False)
            fetched += 1
            log.debug("%s: %s from %s", target.command, entry.file, source.origin(entry))
    if refused:
        hint = (
            f" (or sync from a mirror: {target.mirror_hint})"
            if transfer_failed and isinstance(source, Upstream)
            else ""
        )
        raise PinnedFileError(
            f"{target.command} refused {len(refused)} file(s): " + "; ".join(refused) + hint
        )
    return fetched, cached
