"""Where model files come from: a local directory or a Hugging Face repo at a resolved commit.

Every file has a path (posix, relative to /models), a size, and a sha256 that is either known up
front (the hub's LFS sha256) or computed the first time the file is read. Reading always goes
through a verifying reader, so a download or a file that does not match what was recorded is an
error, never a silently different layer. And a file is read only while it stays the file that was
opened (`_StableFile`): one rewritten in place or replaced while it is read is an error before its last
bytes are handed on, so no layer, upload or digest-cache entry is made of a file that changed mid-read.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from llm_platform.errors import InputError, PlatformError
from llm_platform.logs import get_logger
from llm_platform.modelcar.paths import check_model_path, check_no_collisions
from llm_platform.modelcar.spec import ModelcarSpec
from llm_platform.network import NetworkBounds
from llm_platform.oci import GIT_COMMIT_RE

log = get_logger("modelcar.source")

# Bookkeeping of git and of `hf download --local-dir`, never model content.
LOCAL_SKIP_DIRS = (".git", ".cache/huggingface")


def file_identity(path: Path, st: os.stat_result | None = None) -> str | None:
    """The one definition of a local file's identity: device, inode, size, mtime, ctime and real path (of
    `st`, else of a fresh stat; None when it cannot be read). A write changes ctime, so a file written since
    has another identity. The digest cache keys its records by it, stable reads compare it."""
    if st is None:
        try:
            st = path.stat()
        except OSError:
            return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{os.path.realpath(path)}"


def _cannot_read(label: str, exc: OSError) -> InputError:
    return InputError(f"{label}: cannot read the model file ({exc.strerror or exc})")


class _StableFile(io.RawIOBase):
    """A local file, read only while it stays the file that was opened.

    The identity of the open file (fstat) is taken at open, the path's (stat) again when the end of the file
    is reached, before that end is reported: a file rewritten in place (size, mtime or ctime differ) or
    replaced (another inode) fails there, before the last bytes of its layer, and so before the request that
    would commit an upload. Two stats per file, none per read.
    """

    def __init__(self, path: Path, label: str) -> None:
        self._path, self._label = path, label
        self._raw: io.FileIO | None = None
        try:
            # O_NONBLOCK: a FIFO put in the file's place must not hang the open (no effect on regular files).
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise _cannot_read(label, exc) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            what = "is a directory, not a model file" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise InputError(f"{label}: {what}")
        self._raw = io.FileIO(fd, "rb", closefd=True)
        self._opened = file_identity(path, st)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # what the verifying reader calls: straight into its buffer
        assert self._raw is not None
        try:
            count = self._raw.readinto(buffer) or 0
        except OSError as exc:
            raise _cannot_read(self._label, exc) from None
        if not count:
            self._check_unchanged()
        return count

    def read(self, size: int = -1) -> bytes:
        # What a layer streamed without hashing calls: FileIO.read fills the bytes it returns (RawIOBase.read
        # would read into a bytearray and copy it: a second copy of every model byte).
        assert self._raw is not None
        if size is None or size < 0:
            return self.readall()
        try:
            data = self._raw.read(size) or b""
        except OSError as exc:
            raise _cannot_read(self._label, exc) from None
        if not data and size:
            self._check_unchanged()
        return data

    def readall(self) -> bytes:
        assert self._raw is not None
        try:
            data = self._raw.readall()
        except OSError as exc:
            raise _cannot_read(self._label, exc) from None
        self._check_unchanged()
        return data

    def _check_unchanged(self) -> None:
        """At end of file: the path still names the file that was opened, as it was when opened."""
        if file_identity(self._path) != self._opened:
            raise PlatformError(
                f"{self._label}: changed while it was read (size/mtime/ctime/inode); nothing was pushed or "
                f"written — run again when it is stable"
            )

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
        super().close()


class ContentHash:
    """The running hashes of a file's bytes, and how many there were: sha256 always; git's blob id (sha1 of
    `blob <size>\\0` and the bytes) too when the hub gave only that for the file (a small, non-LFS one).
    `copy()` is a few hundred bytes: what a resumed read starts from (`layer_stream`)."""

    def __init__(self, model_file: ModelFile) -> None:
        self.sha256 = hashlib.sha256()
        self.git_blob = (
            hashlib.sha1(b"blob %d\0" % model_file.size)
            if model_file.known_sha256 is None and model_file.known_git_blob is not None
            else None
        )
        self.count = 0

    def update(self, data: Any) -> None:
        self.sha256.update(data)
        if self.git_blob is not None:
            self.git_blob.update(data)
        self.count += len(data)

    def copy(self) -> ContentHash:
        twin = copy.copy(self)
        twin.sha256 = self.sha256.copy()
        twin.git_blob = self.git_blob.copy() if self.git_blob is not None else None
        return twin


class _VerifyingReader(io.RawIOBase):
    """Reads a source stream, hashing it; at end of file checks size and (if known) sha256 or git blob id.
    `hashes`: the hashes of the bytes before the stream's first one (a read resumed mid-file)."""

    def __init__(self, model_file: ModelFile, raw: BinaryIO, hashes: ContentHash | None = None) -> None:
        self._file = model_file
        self._raw = raw
        self.hashes = hashes or ContentHash(model_file)
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # Straight into the caller's buffer (no intermediate bytes object): the layer stream reads every
        # model byte through here, so a copy here is a copy of the whole model.
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            count = readinto(buffer) or 0
        else:
            data = self._raw.read(len(buffer))
            count = len(data)
            buffer[:count] = data
        if count:
            with memoryview(buffer) as view:
                self.hashes.update(view[:count])
        elif not self._done:
            self._done = True
            self._file._verified(self.hashes)
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass(eq=False)
class ModelFile:
    """One file of the model: `path` under /models, its `size`, and its content `sha256`.

    `opener_at` is set for a file read over the network (streamed from the hub): it opens the file's bytes
    from an offset, so a read cut or a layer upload resumed mid-file goes on from there; such a file is
    verified on every read, also when its layer's digest is known (`remote`)."""

    path: str
    size: int
    opener: Callable[[], BinaryIO] = field(repr=False)
    known_sha256: str | None = None
    origin: str = ""
    known_git_blob: str | None = None  # the hub's git blob id, checked when no sha256 is known
    opener_at: Callable[[int], BinaryIO] | None = field(default=None, repr=False)

    @property
    def remote(self) -> bool:
        return self.opener_at is not None

    @property
    def sha256(self) -> str:
        """Content sha256: the recorded one, or computed by reading the file once."""
        if self.known_sha256 is None:
            with self.open() as reader:
                while reader.read(1 << 20):
                    pass
        assert self.known_sha256 is not None
        return self.known_sha256

    def open(self) -> BinaryIO:
        """A reader of the file's bytes that fails at the end if size or sha256 differ from the record."""
        return io.BufferedReader(_VerifyingReader(self, self.opener()), buffer_size=1 << 20)

    def open_verified(self, start: int = 0, hashes: ContentHash | None = None) -> _VerifyingReader:
        """An unbuffered verifying reader from byte `start` on (a remote file only, unless 0), whose hashes go
        on from `hashes` (those of the bytes before `start`): its `hashes` are exact after every read."""
        if start:
            assert self.opener_at is not None and hashes is not None and hashes.count == start
            return _VerifyingReader(self, self.opener_at(start), hashes)
        return _VerifyingReader(self, self.opener())

    def _verified(self, hashes: ContentHash) -> None:
        if hashes.count != self.size:
            raise PlatformError(
                f"{self.origin}{self.path}: read {hashes.count} bytes, expected {self.size} (changed since it was "
                f"listed?)"
            )
        sha256 = hashes.sha256.hexdigest()
        if self.known_sha256 is not None and sha256 != self.known_sha256:
            raise PlatformError(
                f"{self.origin}{self.path}: sha256 {sha256} does not match the recorded {self.known_sha256}"
            )
        if hashes.git_blob is not None and hashes.git_blob.hexdigest() != self.known_git_blob:
            raise PlatformError(
                f"{self.origin}{self.path}: git blob id {hashes.git_blob.hexdigest()} does not match the hub's "
                f"{self.known_git_blob}"
            )
        self.known_sha256 = sha256


@dataclass
class ModelSource:
    """The selected files of one model, sorted by path, and the revision they are from."""

    kind: str  # "local" or "huggingface"
    location: str
    revision: str
    files: list[ModelFile]


def select(paths: Iterable[str], spec: ModelcarSpec) -> set[str]:
    """Paths kept by the spec's allow/ignore patterns, with huggingface_hub's matching rules."""
    from huggingface_hub.utils import filter_repo_objects

    return set(
        filter_repo_objects(
            list(paths),
            allow_patterns=list(spec.huggingface.allow_patterns) or None,
            ignore_patterns=list(spec.huggingface.ignore_patterns) or None,
        )
    )


def _finish(kind: str, location: str, revision: str, files: list[ModelFile]) -> ModelSource:
    if not files:
        raise InputError(f"{location}: no files match the spec's allow_patterns/ignore_patterns")
    for model_file in files:
        check_model_path(model_file.path, origin=location)
    check_no_collisions((f.path for f in files), origin=location)
    files.sort(key=lambda f: f.path.encode("utf-8"))
    return ModelSource(kind=kind, location=location, revision=revision, files=files)


def _walk_local(root: Path) -> dict[str, Path]:
    """Relative posix path -> file to read, for every regular file (or in-tree file symlink) under root."""
    real_root = root.resolve()
    found: dict[str, Path] = {}
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(directory).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        for name in sorted(dirnames):
            rel = rel_dir + name
            if rel in LOCAL_SKIP_DIRS:
                dirnames.remove(name)
            elif (Path(directory) / name).is_symlink():
                dirnames.remove(name)
                filenames.append(name)  # judged below with the file symlinks
        for name in sorted(filenames):
            full, rel = Path(directory) / name, rel_dir + name
            if full.is_symlink():
                target = Path(os.path.realpath(full))
                if not target.is_relative_to(real_root):
                    raise InputError(
                        f"{root}: refusing model file {rel!r}: symlink leaves the source directory"
                    )
                if target.is_dir():
                    raise InputError(f"{root}: refusing {rel!r}: symlinks to directories are not supported")
            mode = full.stat().st_mode
            if not stat.S_ISREG(mode):
                raise InputError(f"{root}: refusing model file {rel!r}: not a regular file")
            found[rel] = full
    return found


def _check_readable(root: Path, files: Iterable[str], candidates: dict[str, Path]) -> None:
    """Before anything is built or pushed: every selected file can be opened for reading."""
    for rel in files:
        if not os.access(candidates[rel], os.R_OK):
            raise InputError(f"{root}/{rel}: cannot read the model file (permission denied)")


def local_source(spec: ModelcarSpec, root: Path) -> ModelSource:
    """The spec's files from a local directory (patterns applied as for the hub).

    The directory is trusted to hold the spec's revision: the revision recorded is the spec's own.
    """
    if not root.is_dir():
        raise InputError(f"--source-dir {root}: not a directory")
    candidates = _walk_local(root)
    selected = select(candidates, spec)
    _check_readable(root, sorted(selected), candidates)
    files = [
        ModelFile(
            path=rel,
            size=candidates[rel].stat().st_size,
            opener=lambda p=candidates[rel], label=f"{root}/{rel}": cast(BinaryIO, _StableFile(p, label)),  # type: ignore[misc]
            origin=f"{root}/",
        )
        for rel in selected
    ]
    return _finish("local", str(root), spec.huggingface.revision, files)


def huggingface_source(
    spec: ModelcarSpec,
    *,
    token: str | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    bounds: NetworkBounds | None = None,
    retries: int | None = None,
    stream: bool = False,
) -> ModelSource:
    """The spec's files from the hub: the revision resolved to its commit sha, sizes, LFS sha256s and git blob
    ids from the hub's metadata; each file is downloaded on first open (into the hub cache) and verified, or
    with `stream` read straight from the hub on every open, never written anywhere (`hub_stream`).
    Every request runs under `bounds` (default: `NetworkBounds.from_timeout()`) with `retries` retries, and
    every failure is one line naming the repo and the file (`hub_http.hub_error`).
    The token goes to huggingface_hub (and, streaming, to the hub's own host) only; it never appears in a log
    or an error."""
    from huggingface_hub import HfApi

    from llm_platform.modelcar import hub_http, hub_stream

    bounds = bounds or NetworkBounds.from_timeout()
    retries = hub_http.HUB_RETRIES if retries is None else retries
    hub_http.install(bounds)
    repo, revision = spec.huggingface.repo, spec.huggingface.revision
    where = f"huggingface.co/{repo}@{revision}"
    api = HfApi(endpoint=endpoint, token=token or None)
    info = hub_http.call_api(
        lambda timeout: api.model_info(repo, revision=revision, files_metadata=True, timeout=timeout),
        where=where,
        what="model info",
        bounds=bounds,
        retries=retries,
    )
    commit = info.sha or ""
    if not GIT_COMMIT_RE.match(commit):
        raise PlatformError(f"{where}: the hub did not resolve the revision to a commit sha")
    if GIT_COMMIT_RE.match(revision) and commit != revision:
        raise PlatformError(f"{where}: the hub resolved the pinned commit to {commit}")
    log.info("%s resolved to commit %s", where, commit)
    siblings = {s.rfilename: s for s in info.siblings or []}
    streamer = (
        hub_stream.HubFiles(
            repo, commit, where, token=token or None, endpoint=endpoint, bounds=bounds, retries=retries
        )
        if stream
        else None
    )
    files = []
    for path in select(siblings, spec):
        sibling = siblings[path]
        lfs = sibling.lfs
        size = lfs.size if lfs is not None else sibling.size
        if size is None:
            raise PlatformError(f"{where}: the hub gave no size for {path}")

        def download(path: str = path) -> BinaryIO:
            local = hub_http.download(
                repo,
                path,
                commit=commit,
                where=where,
                bounds=bounds,
                retries=retries,
                token=token or None,
                cache_dir=cache_dir,
                endpoint=endpoint,
            )
            return cast(BinaryIO, _StableFile(local, f"{where}: {path} (hub cache {local})"))

        def stream_from(start: int, path: str = path, size: int = int(size)) -> BinaryIO:
            assert streamer is not None
            return cast(BinaryIO, streamer.open(path, size, start))

        def stream_whole(path: str = path, size: int = int(size)) -> BinaryIO:
            return stream_from(0, path, size)

        files.append(
            ModelFile(
                path=path,
                size=int(size),
                opener=download if streamer is None else stream_whole,
                known_sha256=lfs.sha256 if lfs is not None else None,
                origin=f"{where}: ",
                known_git_blob=sibling.blob_id if lfs is None else None,
                opener_at=None if streamer is None else stream_from,
            )
        )
    return _finish("huggingface", where, commit, files)


def open_source(
    spec: ModelcarSpec,
    *,
    source_dir: Path | None = None,
    token: str | None = None,
    cache_dir: Path | None = None,
    bounds: NetworkBounds | None = None,
    stream: bool = False,
) -> ModelSource:
    """`--source-dir` when given, otherwise the hub (token: the flag, else HF_TOKEN), streamed with `stream`."""
    if source_dir is not None:
        return local_source(spec, source_dir)
    return huggingface_source(
        spec,
        token=token or os.environ.get("HF_TOKEN") or None,
        cache_dir=cache_dir,
        bounds=bounds,
        stream=stream,
    )
