"""The push phase of `publish`: make a registry hold an image plan, then prove it, then tag it.

Per blob, concurrently: HEAD (skip) → cross-repository mount → upload (streamed; a chunked upload learns a
new layer's digest while it streams, so a cold push reads each file once). Then the config, the manifest by
digest, a verification of what the registry serves (manifest bytes, every blob's digest and size), and only
then the tags: a tag never points at an image that was not verified.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from llm_platform.errors import RegistryError, StaleDigestError
from llm_platform.logs import get_logger
from llm_platform.modelcar import tar_layer
from llm_platform.modelcar.blob import Blob
from llm_platform.modelcar.image import ImagePlan, ModelLayer
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


class _KnownDigestLayer:
    """A model layer whose digest is known (a hashing pass just learnt it, or the digest cache or the previous
    image recorded it), streamed for upload without hashing: the registry checks the bytes against the digest
    on commit, so a file that changed since its digest was learnt is rejected there."""

    def __init__(self, layer: ModelLayer) -> None:
        self.layer = layer
        self.digest = layer.digest
        self.size = layer.size
        self.media_type = layer.media_type

    def open(self) -> Iterator[bytes]:
        return tar_layer.stream_layer([(f.path, f.size, f.opener) for f in self.layer.files])


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
    digest = blob.digest  # reads and hashes a local file whose digest is not known yet
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
        counters.add("bytes_uploaded", client.upload_blob(repository, _KnownDigestLayer(blob), label=label))
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
