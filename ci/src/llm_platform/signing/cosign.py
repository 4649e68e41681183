"""cosign's signature format, as cosign (specs/SIGNATURE_SPEC.md) and containers/image
(signature/internal/sigstore_payload.go) define and read it.

The payload is a simple-signing JSON document naming the manifest digest; it is one layer of an OCI image
manifest tagged `sha256-<hex>.sig` in the image's repository, with the base64 DER ECDSA P-256 signature of
the payload bytes in the layer annotation `dev.cosignproject.cosign/signature`. The identity is the
repository only (as cosign writes it), so policy.json accepts it with `signedIdentity: matchRepository`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from llm_platform.oci import (
    ANNOTATION_COSIGN_SIGNATURE,
    COSIGN_SIGNATURE_ARTIFACT,
    COSIGN_SIMPLESIGNING,
    DIGEST_RE,
    OCI_CONFIG,
    OCI_MANIFEST,
    canonical_json,
    sha256_digest,
)
from llm_platform.signing.keys import SigningKey, VerifyingKey

SIGNATURE_TYPE = "cosign container image signature"


def signature_tag(digest: str) -> str:
    """`sha256-<hex>.sig`: where cosign and containers/image look for the signatures of `digest`."""
    return digest.replace(":", "-", 1) + ".sig"


def simple_signing_payload(repository: str, digest: str, creator: str) -> bytes:
    """The payload that is signed: exactly the `critical` fields containers/image accepts (no more, no less)."""
    return canonical_json(
        {
            "critical": {
                "identity": {"docker-reference": repository},
                "image": {"docker-manifest-digest": digest},
                "type": SIGNATURE_TYPE,
            },
            "optional": {"creator": creator},
        }
    )


@dataclass(frozen=True)
class SignatureImage:
    """The `.sig` image: its config blob, the payload blob of our signature, and its manifest (whose
    `subject` is the signed image)."""

    config: bytes
    payload: bytes
    manifest: bytes


def _manifest(layers: list[dict[str, Any]], subject: dict[str, Any]) -> tuple[bytes, bytes]:
    """(config, manifest) of a `.sig` image with these layers. The config is one as cosign writes it (an image
    whose layers are the payloads), so tools that walk the signature as an image find a consistent rootfs."""
    config = canonical_json(
        {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": COSIGN_SIGNATURE_ARTIFACT,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": layers,
            "subject": subject,
        }
    )
    return config, manifest


def signature_image(
    key: SigningKey, *, repository: str, digest: str, subject: dict[str, Any], creator: str
) -> SignatureImage:
    payload = simple_signing_payload(repository, digest, creator)
    layer = {
        "mediaType": COSIGN_SIMPLESIGNING,
        "digest": sha256_digest(payload),
        "size": len(payload),
        "annotations": {ANNOTATION_COSIGN_SIGNATURE: base64.b64encode(key.sign(payload)).decode()},
    }
    config, manifest = _manifest([layer], subject)
    return SignatureImage(config, payload, manifest)


def with_layers(image: SignatureImage, others: list[dict[str, Any]]) -> SignatureImage:
    """`image` with the signature layers of other signers after ours (cosign keeps every signature)."""
    manifest = json.loads(image.manifest)
    config, body = _manifest([*manifest["layers"], *others], manifest["subject"])
    return SignatureImage(config, image.payload, body)


class BadSignatureError(Exception):
    """Why a signature layer does not sign the image (one line)."""


def check_signature(
    key: VerifyingKey, payload: bytes, encoded_signature: str, *, repository: str, digest: str
) -> None:
    """The signature is the key's over `payload`, and the payload is a cosign signature of `digest` in
    `repository`, read as strictly as containers/image reads it; BadSignatureError says what is wrong."""
    try:
        signature = base64.b64decode(encoded_signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignatureError("signature annotation is not base64") from None
    if not key.verifies(signature, payload):
        raise BadSignatureError(f"signature does not verify with {key.source}")
    try:
        document = json.loads(payload)
        critical = document["critical"]
        fields = (set(document), set(critical), set(critical["image"]), set(critical["identity"]))
        kind = critical["type"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        reference = critical["identity"]["docker-reference"]
    except (ValueError, KeyError, TypeError):
        raise BadSignatureError("payload is not a simple-signing document") from None
    if fields != (
        {"critical", "optional"},
        {"identity", "image", "type"},
        {"docker-manifest-digest"},
        {"docker-reference"},
    ):
        raise BadSignatureError("payload fields differ from the simple-signing format")
    if kind != SIGNATURE_TYPE:
        raise BadSignatureError(f"payload type is {kind!r}, not {SIGNATURE_TYPE!r}")
    if not isinstance(signed_digest, str) or not DIGEST_RE.match(signed_digest) or signed_digest != digest:
        raise BadSignatureError(f"payload signs {signed_digest!r}, not {digest}")
    if reference != repository:
        raise BadSignatureError(f"payload names {reference!r}, not {repository}")
