"""Verify a signed modelcar: `verify_image` is the entry point of `modelcar verify` (and of `bump --verify-key`).

Named checks, each ok or failed with a one-line message: the cosign signature of the manifest digest, the
spec (when given) against the image, the OMS bundle against the layer annotations, the provenance against
the image and the spec, the ModelPack manifest against the image's layers, and the referrers listing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from llm_platform.errors import PlatformError, RegistryError
from llm_platform.modelcar.spec import ModelcarSpec
from llm_platform.oci import (
    ANNOTATION_BUNDLE_PREDICATE_TYPE,
    ANNOTATION_COSIGN_SIGNATURE,
    COSIGN_SIGNATURE_ARTIFACT,
    COSIGN_SIMPLESIGNING,
    MODELPACK_CONFIG,
    MODELPACK_MANIFEST,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE,
)
from llm_platform.registry.client import RegistryClient
from llm_platform.registry.reference import ImageReference
from llm_platform.signing import cosign, oms, provenance
from llm_platform.signing.dsse import BadBundleError, open_bundle
from llm_platform.signing.files import LayerFile, model_files
from llm_platform.signing.keyless import COSIGN_SIGN_PREDICATE, KeylessIdentity
from llm_platform.signing.keys import VerifyingKey
from llm_platform.signing.referrers import Referrers, list_referrers
from llm_platform.signing.sign import check_spec, fetch_modelcar, resolve_digest

_SMALL = 4 * 1024 * 1024  # attachments are small: a larger blob is refused, not read


class Check(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAILED'} {self.name}: {self.message}"


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    reference: str
    digest: str
    key_id: str | None  # None: verified keyless, against `identity`
    checks: list[Check]
    identity: str | None = None

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


class _CheckFailedError(Exception):
    """A check's failure, with its one-line reason."""


class _Image:
    """What the checks share: the image, its files and its referrers, fetched once."""

    def __init__(
        self, client: RegistryClient, ref: ImageReference, digest: str, key: VerifyingKey | KeylessIdentity
    ) -> None:
        self.client, self.ref, self.digest, self.key = client, ref, digest, key
        _, self.manifest = fetch_modelcar(client, ref, digest)
        self.annotations: dict[str, str] = self.manifest.get("annotations") or {}
        self._files: list[LayerFile] | None = None
        self._referrers: Referrers | None = None

    @property
    def files(self) -> list[LayerFile]:
        if self._files is None:
            self._files = model_files(self.manifest)
        return self._files

    @property
    def referrers(self) -> Referrers:
        if self._referrers is None:
            self._referrers = list_referrers(self.client, self.ref.repository, self.digest)
        return self._referrers

    def attached(self, artifact_type: str, predicate_type: str | None = None) -> list[dict[str, Any]]:
        """The referrers' manifests of this type (checked to name this image as their subject)."""
        found = []
        for entry in self.referrers.descriptors:
            notes = entry.get("annotations") or {}
            if entry.get("artifactType") != artifact_type:
                continue
            if predicate_type and notes.get(ANNOTATION_BUNDLE_PREDICATE_TYPE) != predicate_type:
                continue
            body, _, _ = self.client.get_manifest(self.ref.repository, entry["digest"])
            manifest = json.loads(body)
            if (manifest.get("subject") or {}).get("digest") == self.digest:
                found.append(manifest)
        if not found:
            where = "referrers API" if self.referrers.source == "registry" else "referrers tag"
            raise _CheckFailedError(
                f"none attached (the {where} lists no {predicate_type or artifact_type} for this image)"
            )
        return found

    def blob(self, digest: str) -> bytes:
        return self.client.get_blob(self.ref.repository, digest, max_size=_SMALL)

    @property
    def signer(self) -> str:
        if isinstance(self.key, KeylessIdentity):
            return self.key.source
        return "the key"

    def open_bundle(self, bundle: bytes) -> dict[str, Any]:
        if isinstance(self.key, KeylessIdentity):
            return self.key.open_bundle(bundle)
        return open_bundle(self.key, bundle)


def _keyless_signature(image: _Image) -> str:
    """cosign v3's keyless signature: a bundle referrer whose statement names this manifest digest."""
    algorithm, _, hex_digest = image.digest.partition(":")
    for signed in _statements(image, COSIGN_SIGN_PREDICATE):
        subjects = signed.get("subject")
        if not isinstance(subjects, list):
            continue
        if signed.get("predicateType") == COSIGN_SIGN_PREDICATE and any(
            isinstance(s, dict) and (s.get("digest") or {}).get(algorithm) == hex_digest for s in subjects
        ):
            return f"{image.digest} signed by {image.signer} (Fulcio certificate, Rekor entry; cosign bundle)"
    raise _CheckFailedError(f"no signature by {image.signer} names {image.digest} as its subject")


def _signature(image: _Image) -> str:
    if isinstance(image.key, KeylessIdentity):
        return _keyless_signature(image)
    tag = cosign.signature_tag(image.digest)
    try:
        body, _, media_type = image.client.get_manifest(image.ref.repository, tag)
    except RegistryError as exc:
        if exc.status == 404:
            raise _CheckFailedError(f"not signed: no {tag} in {image.ref.name}") from None
        raise
    if media_type != OCI_MANIFEST:
        raise _CheckFailedError(f"{tag} is a {media_type}, not an OCI image manifest")
    reasons = []
    for layer in json.loads(body).get("layers") or []:
        signature = (layer.get("annotations") or {}).get(ANNOTATION_COSIGN_SIGNATURE)
        if layer.get("mediaType") != COSIGN_SIMPLESIGNING or signature is None:
            continue
        try:
            cosign.check_signature(
                image.key,
                image.blob(layer["digest"]),
                signature,
                repository=image.ref.name,
                digest=image.digest,
            )
        except cosign.BadSignatureError as exc:
            reasons.append(str(exc))
            continue
        return f"{image.digest} signed by key {image.key.key_id[:12]}… (cosign simple signing, tag {tag})"
    raise _CheckFailedError("; ".join(dict.fromkeys(reasons)) or f"{tag} holds no cosign signature layer")


def _statements(image: _Image, predicate_type: str) -> list[dict[str, Any]]:
    """The statements of the attached bundles of `predicate_type` whose signature verifies with the key."""
    statements, reasons = [], []
    for manifest in image.attached(SIGSTORE_BUNDLE, predicate_type):
        for layer in manifest.get("layers") or []:
            try:
                statements.append(image.open_bundle(image.blob(layer["digest"])))
            except BadBundleError as exc:
                reasons.append(str(exc))
    if not statements:
        raise _CheckFailedError("; ".join(dict.fromkeys(reasons)) or "the attached manifest holds no bundle")
    return statements


def _first_clean(statements: list[dict[str, Any]], problems: Callable[[dict[str, Any]], list[str]]) -> None:
    found = [problems(s) for s in statements]
    if not any(not p for p in found):
        raise _CheckFailedError("; ".join(found[0]))


def _oms(image: _Image) -> str:
    _first_clean(_statements(image, oms.PREDICATE_TYPE), lambda s: oms.oms_problems(s, image.files))
    return f"OMS v1.0 bundle signed by {image.signer} covers the {len(image.files)} files of the layer annotations"


def _provenance(image: _Image, spec: ModelcarSpec | None) -> str:
    _first_clean(
        _statements(image, provenance.PREDICATE_TYPE),
        lambda s: provenance.provenance_problems(
            s, manifest_digest=image.digest, annotations=image.annotations, files=image.files, spec=spec
        ),
    )
    against = f"and spec {spec.name}" if spec else "(no --spec: the spec's hash not compared)"
    return f"SLSA v1 provenance signed by {image.signer} matches the image {against}"


def _modelpack(image: _Image) -> str:
    layers = {layer["digest"]: layer["size"] for layer in image.manifest.get("layers") or []}
    model_layers = list(dict.fromkeys(f.layer_digest for f in image.files))
    reasons = []
    for manifest in image.attached(MODELPACK_MANIFEST):
        pack_layers = manifest.get("layers") or []
        config_descriptor = manifest.get("config") or {}
        if config_descriptor.get("mediaType") != MODELPACK_CONFIG:
            reasons.append(f"config media type {config_descriptor.get('mediaType')!r}")
        elif any(layers.get(x["digest"]) != x["size"] for x in pack_layers):
            reasons.append("a layer is not one of the modelcar's blobs")
        elif [x["digest"] for x in pack_layers] != model_layers:
            reasons.append("its layers are not the modelcar's model layers")
        elif (
            json.loads(image.blob(config_descriptor["digest"])).get("modelfs", {}).get("diffIds")
            != model_layers
        ):
            reasons.append("its config's modelfs.diffIds are not the model layers")
        else:
            return f"ModelPack manifest over the modelcar's {len(pack_layers)} model layer blobs"
    raise _CheckFailedError("; ".join(reasons))


def _spec(image: _Image, spec: ModelcarSpec) -> str:
    check_spec(spec, image.annotations, f"{image.ref.name}@{image.digest}")
    return f"the image was built from spec {spec.name} ({spec.huggingface.repo})"


def _referrers(image: _Image) -> str:
    keyless = isinstance(image.key, KeylessIdentity)
    wanted = {
        "signature": (SIGSTORE_BUNDLE, COSIGN_SIGN_PREDICATE)
        if keyless
        else (COSIGN_SIGNATURE_ARTIFACT, None),
        "OMS bundle": (SIGSTORE_BUNDLE, oms.PREDICATE_TYPE),
        "provenance": (SIGSTORE_BUNDLE, provenance.PREDICATE_TYPE),
        "ModelPack manifest": (MODELPACK_MANIFEST, None),
    }
    listed = [
        (e.get("artifactType"), (e.get("annotations") or {}).get(ANNOTATION_BUNDLE_PREDICATE_TYPE))
        for e in image.referrers.descriptors
    ]
    missing = [
        name
        for name, (kind, predicate) in wanted.items()
        if not any(k == kind and (not predicate or p == predicate) for k, p in listed)
    ]
    where = "the referrers API" if image.referrers.source == "registry" else "the referrers tag"
    if missing:
        raise _CheckFailedError(f"{where} lists no {', '.join(missing)}")
    return f"{where} lists the signature, OMS bundle, provenance and ModelPack manifest"


def verify_image(
    client: RegistryClient,
    ref: ImageReference,
    key: VerifyingKey | KeylessIdentity,
    spec: ModelcarSpec | None = None,
) -> VerifyReport:
    """Check the signature and attestations of the modelcar `ref` with `key` (or, keyless, against an
    identity and issuer) and, when given, `spec`."""
    digest = resolve_digest(client, ref)
    image = _Image(client, ref, digest, key)
    checks: list[tuple[str, Callable[[], str]]] = [("signature", lambda: _signature(image))]
    if spec is not None:
        checks.append(("spec", lambda: _spec(image, spec)))
    checks += [
        ("oms", lambda: _oms(image)),
        ("provenance", lambda: _provenance(image, spec)),
        ("modelpack", lambda: _modelpack(image)),
        ("referrers", lambda: _referrers(image)),
    ]
    results = []
    for name, run in checks:
        try:
            results.append(Check(name=name, ok=True, message=run()))
        except (_CheckFailedError, PlatformError) as exc:
            results.append(Check(name=name, ok=False, message=str(exc)))
    return VerifyReport(
        reference=str(ref.with_digest(digest)),
        digest=digest,
        key_id=key.key_id if isinstance(key, VerifyingKey) else None,
        identity=key.identity if isinstance(key, KeylessIdentity) else None,
        checks=results,
    )
