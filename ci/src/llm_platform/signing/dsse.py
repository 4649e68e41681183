"""In-toto statements signed as DSSE envelopes inside a sigstore bundle (v0.3) that names its key by hint:
the form of an OMS signature (`model_signing ... key`) and of `cosign attest`'s bundles, without Rekor.

The signature is ECDSA P-256 over the DSSE pre-authentication encoding (PAE) of the statement's bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from llm_platform.oci import IN_TOTO_PAYLOAD, SIGSTORE_BUNDLE, canonical_json
from llm_platform.signing.keys import SigningKey, VerifyingKey

IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: `DSSEv1 <len> <type> <len> <payload>`."""
    head = f"DSSEv1 {len(payload_type.encode())} {payload_type} {len(payload)} ".encode()
    return head + payload


def statement(
    subjects: list[dict[str, Any]], predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    return {
        "_type": IN_TOTO_STATEMENT,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def signed_bundle(key: SigningKey, document: dict[str, Any]) -> bytes:
    """The sigstore bundle (JSON bytes) of `document` signed by `key`."""
    payload = canonical_json(document)
    signature = key.sign(pae(IN_TOTO_PAYLOAD, payload))
    return canonical_json(
        {
            "mediaType": SIGSTORE_BUNDLE,
            "verificationMaterial": {"publicKey": {"hint": key.key_id}, "tlogEntries": []},
            "dsseEnvelope": {
                "payload": base64.b64encode(payload).decode(),
                "payloadType": IN_TOTO_PAYLOAD,
                "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
            },
        }
    )


class BadBundleError(Exception):
    """Why a bundle is not a statement signed by the key (one line)."""


def open_bundle(key: VerifyingKey, bundle: bytes) -> dict[str, Any]:
    """The in-toto statement of `bundle` once its signature verifies with `key`; BadBundleError otherwise."""
    try:
        document = json.loads(bundle)
        if document["mediaType"] != SIGSTORE_BUNDLE:
            raise BadBundleError(f"bundle media type {document['mediaType']!r}, expected {SIGSTORE_BUNDLE}")
        hint = document["verificationMaterial"]["publicKey"].get("hint")
        envelope = document["dsseEnvelope"]
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise BadBundleError("not a sigstore bundle with a DSSE envelope") from None
    if hint and hint != key.key_id:
        raise BadBundleError(
            f"bundle names another key (hint {hint[:12]}…, {key.source} is {key.key_id[:12]}…)"
        )
    if payload_type != IN_TOTO_PAYLOAD:
        raise BadBundleError(f"DSSE payload type {payload_type!r}, expected {IN_TOTO_PAYLOAD}")
    if not any(key.verifies(sig, pae(payload_type, payload)) for sig in signatures):
        raise BadBundleError(f"DSSE signature does not verify with {key.source}")
    try:
        signed = json.loads(payload)
    except ValueError:
        raise BadBundleError("DSSE payload is not JSON") from None
    if not isinstance(signed, dict) or signed.get("_type") != IN_TOTO_STATEMENT:
        raise BadBundleError(f"DSSE payload is not an in-toto statement ({IN_TOTO_STATEMENT})")
    return signed
