"""Sign a pushed modelcar and attach its attestations: `sign_image` is the entry point of `modelcar sign` (and
of `publish --sign-key`).

What it pushes, each with `subject` = the modelcar manifest: the cosign signature (tag `sha256-<hex>.sig`),
the OMS bundle and the SLSA provenance (sigstore bundles signed by the same key), and the ModelPack manifest
over the modelcar's own layer blobs. Only small blobs move: no weight byte is read or uploaded.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import partial
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llm_platform.errors import InputError, PlatformError, RegistryError
from llm_platform.logs import get_logger
from llm_platform.modelcar.spec import ModelcarSpec
from llm_platform.oci import (
    ANNOTATION_BUNDLE_CONTENT,
    ANNOTATION_BUNDLE_PREDICATE_TYPE,
    ANNOTATION_COSIGN_SIGNATURE,
    ANNOTATION_HF_REPO,
    ANNOTATION_REVISION,
    ANNOTATION_SPEC,
    COSIGN_SIGNATURE_ARTIFACT,
    COSIGN_SIMPLESIGNING,
    MODELPACK_MANIFEST,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE,
)
from llm_platform.registry.client import RegistryClient
from llm_platform.registry.reference import ImageReference
from llm_platform.signing import cosign, modelpack, oms, provenance
from llm_platform.signing.dsse import signed_bundle, statement
from llm_platform.signing.files import LayerFile, model_files
from llm_platform.signing.keyless import COSIGN_SIGN_PREDICATE, KeylessSigner
from llm_platform.signing.keys import SigningKey, VerifyingKey
from llm_platform.signing.referrers import (
    EMPTY_CONFIG,
    Attached,
    artifact_manifest,
    attach,
    descriptor,
    referrers_tag,
)

log = get_logger("signing.sign")

AttachmentKind = Literal["signature", "oms", "provenance", "modelpack"]


class Attachment(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AttachmentKind
    digest: str
    artifact_type: str
    indexed_by: Literal["registry", "tag"]


class SignResult(BaseModel):
    """What `sign_image` attached to the image `reference`."""

    model_config = ConfigDict(frozen=True)

    reference: str
    digest: str
    key_id: str | None  # the signing key's id; None when signed keyless
    identity: str | None = None  # keyless: the certificate's identity and its OIDC issuer
    issuer: str | None = None
    signature_tag: str | None  # the cosign `.sig` tag (key signing); keyless signatures are a bundle referrer
    referrers_tag: str | None  # set when the registry has no referrers API and the tag stands in for it
    attachments: list[Attachment]
    bytes_uploaded: int
    blobs_uploaded: int


def resolve_digest(client: RegistryClient, ref: ImageReference) -> str:
    if ref.digest:
        return ref.digest
    digest = client.manifest_digest(ref.repository, ref.tag or "latest")
    if digest is None:
        raise InputError(f"{ref}: no such image")
    return digest


def fetch_modelcar(client: RegistryClient, ref: ImageReference, digest: str) -> tuple[bytes, dict[str, Any]]:
    body, _, media_type = client.get_manifest(ref.repository, digest)
    if media_type != OCI_MANIFEST:
        raise InputError(
            f"{ref.name}@{digest}: a {media_type or 'manifest of unknown type'}, not a modelcar image"
        )
    return body, json.loads(body)


def check_spec(spec: ModelcarSpec, annotations: dict[str, str], where: str) -> None:
    """The spec is the image's: same name, same Hugging Face repo, and the same commit when it pins one."""
    if annotations.get(ANNOTATION_SPEC) != spec.name:
        raise InputError(
            f"{where} was built from spec {annotations.get(ANNOTATION_SPEC)!r}, not {spec.name!r}"
        )
    if annotations.get(ANNOTATION_HF_REPO) != spec.huggingface.repo:
        raise InputError(
            f"{where} holds {annotations.get(ANNOTATION_HF_REPO)!r}, the spec names {spec.huggingface.repo!r}"
        )
    if spec.huggingface.pins_commit and annotations.get(ANNOTATION_REVISION) != spec.huggingface.revision:
        raise InputError(
            f"{where} holds revision {annotations.get(ANNOTATION_REVISION)!r}, the spec pins {spec.huggingface.revision}"
        )


def _signature(
    client: RegistryClient, ref: ImageReference, digest: str, subject: dict[str, Any], key: SigningKey
) -> tuple[Attached, cosign.SignatureImage]:
    """The `.sig` image: our signature, plus the layers of other keys an earlier `.sig` already held."""
    tag = cosign.signature_tag(digest)
    image = cosign.signature_image(
        key,
        repository=ref.name,
        digest=digest,
        subject=subject,
        creator=f"llm-platform {metadata.version('llm-platform')}",
    )
    previous: str | None = None
    try:
        old_body, previous, _ = client.get_manifest(ref.repository, tag)
    except RegistryError as exc:
        if exc.status != 404:
            raise
    else:
        image = _keep_other_signers(client, ref.repository, image, json.loads(old_body), key)
    attached = attach(
        client, ref.repository, image.manifest, [image.config, image.payload], tag=tag, replaces=previous
    )
    return attached, image


def _attach_bundle(
    client: RegistryClient,
    repository: str,
    bundle: bytes,
    subject: dict[str, Any],
    predicate_type: str,
    layer_annotations: dict[str, str] | None = None,
) -> Attached:
    """A signed statement (sigstore bundle, DSSE) attached as a referrer, as cosign's BUNDLE_SPEC lays it out."""
    layer = descriptor(
        SIGSTORE_BUNDLE, bundle, **({"annotations": layer_annotations} if layer_annotations else {})
    )
    manifest = artifact_manifest(
        SIGSTORE_BUNDLE,
        [layer],
        subject,
        annotations={
            ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
            ANNOTATION_BUNDLE_PREDICATE_TYPE: predicate_type,
        },
    )
    return attach(client, repository, manifest, [EMPTY_CONFIG, bundle])


def _keyless_signature(
    client: RegistryClient, ref: ImageReference, digest: str, subject: dict[str, Any], signer: KeylessSigner
) -> Attached:
    """The signature of the manifest digest as cosign v3 stores a keyless one: a sigstore bundle (DSSE, predicate
    type cosign/sign/v1, subject the manifest digest) attached as a referrer."""
    algorithm, _, hex_digest = digest.partition(":")
    document = statement([{"name": ref.name, "digest": {algorithm: hex_digest}}], COSIGN_SIGN_PREDICATE, {})
    title = {"org.opencontainers.image.title": f"{referrers_tag(digest)}.sigstore.json"}
    return _attach_bundle(
        client, ref.repository, signer.bundle(document), subject, COSIGN_SIGN_PREDICATE, title
    )


def _keep_other_signers(
    client: RegistryClient,
    repository: str,
    image: cosign.SignatureImage,
    old: dict[str, Any],
    key: SigningKey,
) -> cosign.SignatureImage:
    mine = VerifyingKey(key.public_key, key.source)
    new = json.loads(image.manifest)
    kept = []
    for layer in old.get("layers") or []:
        signature = (layer.get("annotations") or {}).get(ANNOTATION_COSIGN_SIGNATURE, "")
        if layer.get("mediaType") != COSIGN_SIMPLESIGNING or layer["digest"] == new["layers"][0]["digest"]:
            continue
        payload = client.get_blob(repository, layer["digest"], max_size=64 * 1024)
        try:
            if mine.verifies(base64.b64decode(signature), payload):
                continue  # an earlier signature of ours: replaced by the new one
        except ValueError:
            pass
        kept.append(layer)
    if not kept:
        return image
    return cosign.with_layers(image, kept)


def sign_image(
    client: RegistryClient,
    ref: ImageReference,
    key: SigningKey | KeylessSigner,
    spec: ModelcarSpec,
    *,
    builder: provenance.Builder | None = None,
) -> SignResult:
    """Sign the modelcar `ref` (a tag is resolved to its digest) with `key` (or keyless: a Fulcio certificate
    and Rekor entries); attach OMS, provenance, ModelPack.

    `spec` is the spec the image was built from (checked against the image's annotations); `builder` says
    what built it (default: this CLI)."""
    digest = resolve_digest(client, ref)
    pinned = ref.with_digest(digest)
    body, manifest = fetch_modelcar(client, ref, digest)
    annotations: dict[str, str] = manifest.get("annotations") or {}
    check_spec(spec, annotations, str(pinned))
    try:
        files = model_files(manifest)
    except PlatformError as exc:
        raise PlatformError(f"{pinned}: {exc}") from None
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}
    repository = ref.repository
    results: list[tuple[AttachmentKind, str, Attached]] = []

    sign_statement: Callable[[dict[str, Any]], bytes]
    signer: dict[str, str | None]  # who signed, as SignResult names it
    if isinstance(key, KeylessSigner):
        sign_statement = key.bundle
        results.append(("signature", SIGSTORE_BUNDLE, _keyless_signature(client, ref, digest, subject, key)))
        signer = {"key_id": None, "identity": key.identity, "issuer": key.issuer, "signature_tag": None}
    else:
        sign_statement = partial(signed_bundle, key)
        signature, _ = _signature(client, ref, digest, subject, key)
        results.append(("signature", COSIGN_SIGNATURE_ARTIFACT, signature))
        signer = {"key_id": key.key_id, "signature_tag": cosign.signature_tag(digest)}

    statements: list[tuple[AttachmentKind, str, dict[str, Any]]] = [
        ("oms", oms.PREDICATE_TYPE, oms.oms_statement(spec.name, files)),
        (
            "provenance",
            provenance.PREDICATE_TYPE,
            provenance.provenance_statement(
                image=ref.name,
                manifest_digest=digest,
                annotations=annotations,
                files=files,
                spec=spec,
                builder=builder or provenance.cli_builder(),
            ),
        ),
    ]
    for kind, predicate_type, document in statements:
        bundle = sign_statement(document)
        results.append(
            (kind, SIGSTORE_BUNDLE, _attach_bundle(client, repository, bundle, subject, predicate_type))
        )

    config_json = _config_json(client, repository, files)
    pack_config = modelpack.modelpack_config(spec.name, annotations, files, config_json)
    pack_manifest = modelpack.modelpack_manifest(spec.name, files, pack_config, subject)
    results.append(
        ("modelpack", MODELPACK_MANIFEST, attach(client, repository, pack_manifest, [pack_config]))
    )

    result = SignResult(
        reference=str(pinned),
        digest=digest,
        **signer,
        referrers_tag=referrers_tag(digest) if any(a.indexed_by == "tag" for _, _, a in results) else None,
        attachments=[
            Attachment(kind=kind, digest=a.digest, artifact_type=artifact_type, indexed_by=a.indexed_by)
            for kind, artifact_type, a in results
        ],
        bytes_uploaded=sum(a.bytes_uploaded for _, _, a in results),
        blobs_uploaded=sum(a.blobs_uploaded for _, _, a in results),
    )
    by = f"identity {result.identity}" if result.key_id is None else f"key {result.key_id[:12]}…"
    log.info("signed %s with %s: %d attachments", result.reference, by, len(result.attachments))
    return result


def _config_json(client: RegistryClient, repository: str, files: list[LayerFile]) -> dict[str, Any] | None:
    """The model's config.json (model family, precision) from its small layer; None when there is none."""
    entry = next((f for f in files if f.path == "config.json"), None)
    if entry is None or entry.layer_size > modelpack.CONFIG_JSON_LIMIT:
        return None
    return modelpack.config_json_from_layer(
        client.get_blob(repository, entry.layer_digest, max_size=modelpack.CONFIG_JSON_LIMIT)
    )
