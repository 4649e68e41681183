"""OCI 1.1 referrers: attach an artifact manifest to a subject manifest, and list what is attached.

A manifest with `subject` is pushed by digest. A registry with the referrers API answers `OCI-Subject` and
indexes it itself; for one without it (Debian's docker-registry 2.8), the client keeps the referrers tag
`sha256-<hex>` of the subject: an image index of the referrers' descriptors, with their `artifactType` and
`annotations` (distribution-spec v1.1, "Referrers Tag Schema"). Listing asks the API first, then that tag.

The tag is read, extended and written back: two signers of one image at the same moment can lose an entry
(the spec's own fallback has the same race); signing runs once per published image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from llm_platform.errors import RegistryError
from llm_platform.modelcar.blob import BytesBlob
from llm_platform.oci import OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, canonical_json, sha256_digest
from llm_platform.registry.client import RegistryClient

EMPTY_CONFIG = b"{}"


def referrers_tag(digest: str) -> str:
    return digest.replace(":", "-", 1)


def descriptor(media_type: str, body: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(body), "size": len(body), **extra}


def artifact_manifest(
    artifact_type: str,
    layers: list[dict[str, Any]],
    subject: dict[str, Any],
    *,
    annotations: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
) -> bytes:
    """An OCI 1.1 artifact manifest: the empty config unless given one, `layers`, `subject`."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config or descriptor(OCI_EMPTY, EMPTY_CONFIG),
        "layers": layers,
        "subject": subject,
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return canonical_json(manifest)


def referrer_descriptor(manifest_body: bytes) -> dict[str, Any]:
    """The descriptor of a referrer as an index lists it: its artifactType (else config media type) and
    annotations copied from the manifest."""
    manifest = json.loads(manifest_body)
    entry = descriptor(manifest.get("mediaType", OCI_MANIFEST), manifest_body)
    entry["artifactType"] = manifest.get("artifactType") or manifest["config"]["mediaType"]
    if manifest.get("annotations"):
        entry["annotations"] = manifest["annotations"]
    return entry


@dataclass(frozen=True)
class Attached:
    digest: str
    indexed_by: Literal["registry", "tag"]
    bytes_uploaded: int
    blobs_uploaded: int


def ensure_small_blob(client: RegistryClient, repository: str, data: bytes) -> int:
    """Upload a small blob unless the repository holds it; the bytes sent."""
    blob = BytesBlob("application/octet-stream", data)  # a blob has no media type of its own
    if client.blob_size(repository, blob.digest) == blob.size:
        return 0
    return client.upload_blob(repository, blob, label=f"attachment {blob.digest[7:19]}")


def attach(
    client: RegistryClient,
    repository: str,
    manifest_body: bytes,
    blobs: list[bytes],
    *,
    tag: str | None = None,
    replaces: str | None = None,
) -> Attached:
    """Push `blobs` (those missing), then the manifest (which names a `subject`), by `tag` if given; keep the
    referrers tag when the registry does not index the subject itself. `replaces`: the digest of an earlier
    version of this attachment (the manifest `tag` pointed at), dropped from the referrers tag."""
    sent = uploaded = 0
    for data in blobs:
        count = ensure_small_blob(client, repository, data)
        sent += count
        uploaded += 1 if count else 0
    digest, indexed = client.put_referrer_manifest(repository, manifest_body, OCI_MANIFEST, tag=tag)
    if not indexed:
        subject = json.loads(manifest_body)["subject"]["digest"]
        _add_to_referrers_tag(client, repository, subject, referrer_descriptor(manifest_body), replaces)
    return Attached(digest, "registry" if indexed else "tag", sent, uploaded)


def _tag_index(client: RegistryClient, repository: str, subject: str) -> dict[str, Any] | None:
    try:
        body, _, media_type = client.get_manifest(repository, referrers_tag(subject))
    except RegistryError as exc:
        if exc.status == 404:
            return None
        raise
    index = json.loads(body)
    if media_type != OCI_INDEX or not isinstance(index.get("manifests"), list):
        raise RegistryError(
            f"{client.host}/{repository}:{referrers_tag(subject)} is not an image index ({media_type}): "
            "the referrers tag is taken by something else"
        )
    return index


def _add_to_referrers_tag(
    client: RegistryClient, repository: str, subject: str, entry: dict[str, Any], replaces: str | None
) -> None:
    index = _tag_index(client, repository, subject) or {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
    }
    listed = [m for m in index["manifests"] if m.get("digest") != replaces or replaces == entry["digest"]]
    if any(m.get("digest") == entry["digest"] for m in listed) and len(listed) == len(index["manifests"]):
        return
    index["manifests"] = [m for m in listed if m.get("digest") != entry["digest"]] + [entry]
    client.put_manifest(repository, referrers_tag(subject), canonical_json(index), OCI_INDEX)


@dataclass(frozen=True)
class Referrers:
    descriptors: list[dict[str, Any]]
    source: Literal["registry", "tag"]


def list_referrers(client: RegistryClient, repository: str, subject: str) -> Referrers:
    """The descriptors of the manifests attached to `subject`: the referrers API, else the referrers tag."""
    body = client.get_referrers(repository, subject)
    if body is not None:
        return Referrers(list(json.loads(body).get("manifests") or []), "registry")
    index = _tag_index(client, repository, subject)
    return Referrers(list(index["manifests"]) if index else [], "tag")
