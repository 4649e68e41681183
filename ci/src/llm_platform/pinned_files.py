"""Files pinned by sha256, synced into a local cache: the one implementation behind `llm-platform crds
sync` (gitops/crds.lock.yaml) and `llm-platform charts sync` (gitops/charts.lock.yaml).

An entry names a relative `file`, its path in the cache. A source says what sha256 the entry's bytes must
have when they come from it, fetches them, and names where they come from in messages:

- `Upstream` (each entry's own `url`, over HTTP) and `Mirror` (a directory laid out like the cache,
  DIR/<file>) both expect the lock's own `sha256` (`LockedFile`: file, sha256, url);
- other sources bring their own rule: `llm_platform.lint.charts_lock` verifies a chart pulled from its
  chart repository against the lock's published digest, and a chart from a mirror directory against the
  mirror's INDEX.json, since the two are different bytes.

`sync_pinned` takes every entry that is not already cached with the expected sha256 from the source,
verifies the bytes exactly the same way for every source, and only then writes them into the cache with
`oci.atomic_write`, so the cache never holds a half-written or unverified file. Every failing entry is named
in one line; an unreachable remote source stops at once and says how to give a mirror instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from llm_platform.documents import CONFIG_LIMITS, DocumentError, cut, load_yaml_file, locate
from llm_platform.errors import InputError, PinnedFileError
from llm_platform.http_client import httpx
from llm_platform.logs import get_logger
from llm_platform.oci import atomic_write

log = get_logger("pinned")


LockModel = TypeVar("LockModel", bound=BaseModel)


def load_lock_file(path: Path, model: type[LockModel]) -> LockModel:
    """A lock file (YAML, bounded like every config) validated as `model`; errors name file:line and field."""
    try:
        doc = load_yaml_file(path, CONFIG_LIMITS)
    except DocumentError as exc:
        if exc.kind in ("missing", "unreadable"):
            raise InputError(f"{path}: cannot read lock file: {exc.detail}") from None
        raise
    try:
        return model.model_validate(doc.data if doc is not None else None)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        where = f"{path}:{locate(doc.node, loc)[0]}" if doc is not None else str(path)
        field = ".".join(map(str, loc))
        raise InputError(f"{where}: {'field ' + field + ': ' if field else ''}{cut(err['msg'])}") from None


class PinnedFile(Protocol):
    """What `sync_pinned` needs of any entry: where it lives in the cache."""

    @property
    def file(self) -> str: ...


class LockedFile(PinnedFile, Protocol):
    """An entry that carries its own sha256 and its upstream URL (a CRD lock entry)."""

    @property
    def sha256(self) -> str: ...

    @property
    def url(self) -> str: ...


E = TypeVar("E", bound=PinnedFile)
E_contra = TypeVar("E_contra", bound=PinnedFile, contravariant=True)


@dataclass(frozen=True)
class SyncTarget:
    """What is being synced, for messages: the command (`crds sync`) and how its user gives a mirror."""

    command: str
    mirror_hint: str  # e.g. "--mirror DIR or LLM_PLATFORM_CRDS_MIRROR=DIR"
    mirror_layout: str = "a directory laid out like the cache, DIR/<file>"  # what such a mirror holds


class EntryRefusedError(Exception):
    """This entry cannot be taken from this source (missing, unreadable, HTTP error, no digest to check it
    against); the sync goes on."""


class SourceUnreachableError(Exception):
    """The source cannot be reached at all: no point in trying the other entries."""


class Source(Protocol[E_contra]):
    """Where entries come from, and what their bytes must hash to when they come from there. Used as a
    context manager around one sync (a client or an index is opened for it)."""

    # True for a source across the network: a failed transfer then suggests a mirror.
    @property
    def remote(self) -> bool: ...

    def check(self, target: SyncTarget) -> None:
        """Refuse an unusable source before anything is synced (InputError)."""

    def expected_sha256(self, entry: E_contra) -> str:
        """The sha256 this source's bytes must have, or EntryRefusedError when it cannot say."""
        ...

    def verified_against(self, entry: E_contra) -> str:
        """What that sha256 comes from, for a mismatch message (`the lock`)."""
        ...

    def fetch(self, entry: E_contra) -> bytes:
        """The entry's bytes, unverified; EntryRefusedError or SourceUnreachableError."""
        ...

    def origin(self, entry: E_contra) -> str:
        """Where the bytes come from, as messages name it."""
        ...

    def mismatch_hint(self, entry: E_contra) -> str:
        """Appended to a mismatch message: how to repair this source ('' for none)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass
class Upstream:
    """Each entry's own URL, verified against the lock's sha256. A client may be passed in (tests,
    connection reuse); otherwise one is opened for the sync and closed after it."""

    client: httpx.Client | None = None
    _own: bool = field(default=False, init=False, repr=False)
    remote = True

    def __enter__(self) -> Self:
        if self.client is None:
            self.client = httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=15.0))
            self._own = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own and self.client is not None:
            self.client.close()
            self.client, self._own = None, False

    def check(self, target: SyncTarget) -> None:
        pass

    def expected_sha256(self, entry: LockedFile) -> str:
        return entry.sha256

    def verified_against(self, entry: LockedFile) -> str:
        return "the lock"

    def origin(self, entry: LockedFile) -> str:
        return entry.url

    def mismatch_hint(self, entry: LockedFile) -> str:
        return ""

    def fetch(self, entry: LockedFile) -> bytes:
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
    upstream kept where there is no internet. Its files are trusted no more than a download: verified
    against the lock's sha256."""

    root: Path
    remote = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def check(self, target: SyncTarget) -> None:
        if not self.root.is_dir():
            raise InputError(
                f"{target.command}: mirror {self.root} is not a directory (give a directory laid out "
                f"like the cache, DIR/<file>, with {target.mirror_hint})"
            )

    def expected_sha256(self, entry: LockedFile) -> str:
        return entry.sha256

    def verified_against(self, entry: LockedFile) -> str:
        return "the lock"

    def origin(self, entry: LockedFile) -> str:
        return str(self.root / entry.file)

    def mismatch_hint(self, entry: LockedFile) -> str:
        return f"; replace it with the file from {entry.url}"

    def fetch(self, entry: LockedFile) -> bytes:
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
    entries: Iterable[E],
    cache: Path,
    source: Source[E],
    target: SyncTarget,
) -> tuple[int, int]:
    """Put every entry into `cache/<file>`, verified against the sha256 its source expects. Returns
    (fetched, already cached).

    A cached file with the expected sha256 is kept without reading the source; a wrong one is replaced. A
    file the source lacks or whose bytes do not match is refused: nothing is written for it (a stale cached
    copy is removed, so the cache only ever holds verified files) and the sync fails after the other
    entries, naming every refused file in one line. An entry the source has no sha256 for is refused
    without a transfer, and its cached copy (verified when it was written) is left alone. An unreachable
    remote source fails at once, in one line that says how to give a mirror."""
    source.check(target)
    entries = list(entries)
    for entry in entries:  # the lock's loader should refuse these already; the cache must never be escaped
        rel = Path(entry.file)
        if not entry.file or rel.is_absolute() or ".." in rel.parts:
            raise InputError(f"{target.command}: locked file {entry.file!r} is not a plain relative path")
    fetched = cached = 0
    refused: list[str] = []
    transfer_failed = False
    with source:
        for entry in entries:
            dest = cache / entry.file
            try:
                expected = source.expected_sha256(entry)
            except EntryRefusedError as exc:
                refused.append(str(exc))
                continue
            if _is_cached(dest, expected):
                cached += 1
                continue
            try:
                data = source.fetch(entry)
            except SourceUnreachableError as exc:
                raise PinnedFileError(
                    f"{target.command}: {exc}; to sync without the internet give a mirror "
                    f"({target.mirror_layout}): {target.mirror_hint}"
                ) from exc
            except EntryRefusedError as exc:
                refused.append(str(exc))
                transfer_failed = True
                _drop(dest)
                continue
            got = hashlib.sha256(data).hexdigest()
            if got != expected:
                refused.append(
                    f"{source.origin(entry)}: sha256 {got} does not match "
                    f"{source.verified_against(entry)} ({expected}){source.mismatch_hint(entry)}"
                )
                _drop(dest)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(dest, data, keep_mode=False)
            fetched += 1
            log.debug("%s: %s from %s", target.command, entry.file, source.origin(entry))
    if refused:
        hint = f" (or sync from a mirror: {target.mirror_hint})" if transfer_failed and source.remote else ""
        raise PinnedFileError(
            f"{target.command} refused {len(refused)} file(s): " + "; ".join(refused) + hint
        )
    return fetched, cached
