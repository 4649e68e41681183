"""The push phase of `publish`: make a registry hold an image plan, then prove it, then tag it.

Per blob, concurrently: HEAD (skip) → cross-repository mount → upload (streamed; a chunked upload learns a
new layer's digest while it streams, so a cold push reads each file once). Then the config, the manifest by
digest, a verification of what the registry serves (manifest bytes, every blob's digest and size), and only
then the tags: a tag never points at an image that was not verified.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from llm_platform.errors import RegistryError, StaleDigestError
from llm_platform.logs import get_logger
from llm_platform.modelcar import tar_layer
from llm_platform.modelcar.blob import Blob
from llm_platform.modelcar.image import ImagePlan, ModelLayer
from llm_platform.modelcar.layer_stream import LayerStream
from llm_platform.oci import OCI_CONFIG, OCI_MANIFEST
from llm_platform.registry.client import RegistryClient

log = get_logger("modelcar.push")


@dataclass
class PushCounters:
    """What a push moved; updated from the upload threads."""

    bytes_uploaded: int = 0
    uploaded: int = 0
    present: int = 0
    mounted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)


@dataclass(frozen=True)
class PushTarget:
    """Where and how: the repository, the repositories blobs may be mounted from, and which model layers of
    unknown digest are uploaded at once rather than hashed first to ask whether the registry has them."""

    client: RegistryClient
    repository: str
    mount_sources: Sequence[str] = ()
    stream_unknown: Callable[[ModelLayer], bool] = lambda layer: False
    concurrency: int = 4
    # Where a large hub layer of unknown digest waits for its upload (None: it is read twice).
    spool_dir: Path | None = None


class _KnownDigestLayer:
    """A model layer whose digest is known (a hashing pass just learnt it, or the digest cache or the previous
    image recorded it), streamed for upload without hashing the layer: the registry checks the bytes against the
    digest on commit, so a file that changed since its digest was learnt is rejected there. Files streamed from
    the hub are still verified as they arrive (sha256 or git blob id), so a wrong byte from the hub fails before
    the commit, and their upload resumes mid-layer (`open_from`)."""

    def __init__(self, layer: ModelLayer) -> None:
        self.layer = layer
        self.digest = layer.digest
        self.size = layer.size
        self.media_type = layer.media_type
        self.resumable = layer.resumable
        self._stream = LayerStream(layer.files, hash_layer=False) if layer.resumable else None

    def open(self) -> Iterator[bytes]:
        if self._stream is not None:
            return self.open_from(0)
        return tar_layer.stream_layer([(f.path, f.size, f.opener) for f in self.layer.files])

    def open_from(self, start: int) -> Iterator[bytes]:
        assert self._stream is not None
        return self._stream.read(start, on_end=lambda digest, size: None)


# A layer of hub files whose digest must be known before its upload starts is held in memory up to this size
# (one download instead of two; at most this much per concurrent upload).
HELD_IN_MEMORY_MAX = 16 << 20


class _HeldLayer:
    """A model layer of hub files read once, its digest learnt on the way, and kept until it is uploaded: in
    memory when small (`HELD_IN_MEMORY_MAX`), else in a file of the spool directory (deleted after). For a
    registry that needs the digest before the upload starts."""

    resumable = True

    def __init__(self, layer: ModelLayer, spool_dir: Path | None) -> None:
        self.media_type, self.size = layer.media_type, layer.size
        self._data: bytes | None = None
        self._path: Path | None = None
        if spool_dir is None:
            self._data = b"".join(layer.open())
        else:
            spool_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="layer-", suffix=".tar", dir=spool_dir)
            self._path = Path(name)
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in layer.open():
                        out.write(chunk)
            except BaseException:
                self.remove()
                raise
        self.digest = layer.digest

    def open(self) -> Iterator[bytes]:
        return self.open_from(0)

    def open_from(self, start: int) -> Iterator[bytes]:
        if self._data is not None:
            for at in range(start, len(self._data), tar_layer.CHUNK):
                yield self._data[at : at + tar_layer.CHUNK]
            return
        assert self._path is not None
        with self._path.open("rb") as spooled:
            spooled.seek(start)
            while chunk := spooled.read(tar_layer.CHUNK):
                yield chunk

    def remove(self) -> None:
        self._data = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def blob_label(blob: Blob) -> str:
    if isinstance(blob, ModelLayer):
        return blob.label
    if blob.media_type == OCI_CONFIG:
        return "image config"
    return f"base layer {blob.digest[7:19]}"


def ensure_blob(target: PushTarget, blob: Blob, counters: PushCounters) -> None:
    """Make the registry hold `blob`: skip, mount, or upload it."""
    client, repository, label = target.client, target.repository, blob_label(blob)
    if isinstance(blob, ModelLayer) and not blob.known and target.stream_unknown(blob):
        counters.add("bytes_uploaded", client.upload_blob(repository, blob, label=label))
        counters.add("uploaded")
        return
    held: _HeldLayer | None = None
    if isinstance(blob, ModelLayer) and blob.resumable and not blob.known:
        if blob.size <= HELD_IN_MEMORY_MAX:
            held = _HeldLayer(blob, None)
        elif target.spool_dir is not None:
            held = _HeldLayer(blob, target.spool_dir)
    try:
        _ensure_known(target, blob, counters, label, held)
    finally:
        if held is not None:
            held.remove()


def _ensure_known(
    target: PushTarget, blob: Blob, counters: PushCounters, label: str, held: _HeldLayer | None
) -> None:
    client, repository = target.client, target.repository
    digest = blob.digest  # reads and hashes a file whose digest is not known yet (a hub file: downloads it)
    size = client.blob_size(repository, digest)
    if size is not None:
        if size != blob.size:
            raise RegistryError(
                f"{client.host}: {repository} holds {digest} with size {size}, expected {blob.size}"
            )
        counters.add("present")
        log.debug("%s already in %s", label, repository)
        return
    for source_repository in target.mount_sources:
        if source_repository != repository and client.mount_blob(repository, digest, source_repository):
            counters.add("mounted")
            log.info("mounted %s from %s", label, source_repository)
            return
    if not isinstance(blob, ModelLayer):
        counters.add("bytes_uploaded", client.upload_blob(repository, blob, label=label))
        counters.add("uploaded")
        return
    try:
        upload = held if held is not None else _KnownDigestLayer(blob)
        counters.add("bytes_uploaded", client.upload_blob(repository, upload, label=label))
    except RegistryError as exc:
        if "DIGEST_INVALID" not in exc.codes:
            raise
        raise StaleDigestError(
            f"{exc}; {label} no longer matches the digest recorded for it (the file changed after the digest "
            f"cache or the previous image recorded it). That record is dropped: run the publish again",
            path=blob.files[0].path,  # names the layer: no other layer holds this file
            cause=exc,
        ) from None
    counters.add("uploaded")


def _run_all(client: RegistryClient, tasks: list[Callable[[], None]], concurrency: int) -> None:
    """Run tasks on a bounded pool; the first failure aborts uploads in flight and is raised."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="publish") as pool:
        futures: list[Future[None]] = [pool.submit(task) for task in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            client.abort()
            for future in pending:
                future.cancel()
            wait(pending)
            raise failed[0].exception()  # type: ignore[misc]


def verify_blobs(client: RegistryClient, repository: str, plan: ImagePlan) -> None:
    """Every blob of the plan is in the repository at its size."""
    unique = {blob.digest: blob for blob in [plan.config, *plan.layers]}  # base layers may repeat
    for blob in unique.values():
        size = client.blob_size(repository, blob.digest)
        if size != blob.size:
            found = "missing" if size is None else f"{size} bytes, expected {blob.size}"
            raise RegistryError(
                f"{client.host}: verification failed: blob {blob.digest} of {repository} is {found}"
            )


def verify_image(client: RegistryClient, repository: str, plan: ImagePlan) -> None:
    """What the registry serves by digest is byte-identical to the plan, and every blob is there at its size."""
    body, digest, _ = client.get_manifest(repository, plan.manifest_digest)
    if digest != plan.manifest_digest or body != plan.manifest_bytes:
        raise RegistryError(
            f"{client.host}: verification failed: {repository}@{plan.manifest_digest} is served as {digest}"
        )
    verify_blobs(client, repository, plan)


def push_image(target: PushTarget, plan: ImagePlan, counters: PushCounters) -> str:
    """Upload what the repository lacks, the config, then the manifest by digest; verify; return the digest.

    Model layers go largest first, so the long uploads start early. The config is pushed last: its bytes
    hold every layer digest, known only once every layer has streamed.
    """
    client, repository = target.client, target.repository
    blobs: list[Blob] = sorted(plan.layers, key=lambda b: b.size, reverse=True)
    _run_all(
        client,
        [lambda blob=blob: ensure_blob(target, blob, counters) for blob in blobs],  # type: ignore[misc]
        target.concurrency,
    )
    ensure_blob(target, plan.config, counters)
    digest = client.put_manifest(repository, plan.manifest_digest, plan.manifest_bytes, OCI_MANIFEST)
    if digest != plan.manifest_digest:
        raise RegistryError(f"{client.host}: manifest stored as {digest}, expected {plan.manifest_digest}")
    verify_image(client, repository, plan)
    return digest


def push_tags(
    client: RegistryClient, repository: str, plan: ImagePlan, tags: Sequence[str], resolved: dict[str, str]
) -> None:
    """Point every tag at the verified image; `resolved` says what tags resolved to a moment ago."""
    for tag in tags:
        if resolved.get(tag) == plan.manifest_digest:
            continue
        client.put_manifest(repository, tag, plan.manifest_bytes, OCI_MANIFEST)
        if client.manifest_digest(repository, tag) != plan.manifest_digest:
            raise RegistryError(
                f"{client.host}: tag {tag} of {repository} does not resolve to {plan.manifest_digest}"
            )
