"""Signing keys: an ECDSA P-256 private key in PEM (PKCS#8 or SEC1, optionally encrypted; the password comes
from the environment) and its public key in PEM (what `cosign verify --key` and policy.json `keyPath` take).

No message built here ever holds key material or a password: errors name where the key came from only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from llm_platform.errors import InputError
from llm_platform.signing import SIGNING_KEY_ENV, SIGNING_KEY_PASSWORD_ENV

# cosign's own private-key format (scrypt + NaCl secretbox) is not PKCS#8; `cryptography` cannot open it.
_COSIGN_KEY_MARKERS = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# RFC 6979: the same key over the same bytes gives the same signature, so signing an image again pushes the
# very same manifests (no new referrers) unless something really changed.
_DETERMINISTIC_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def _public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """sha256 hex of the public key's PEM: the hint a sigstore bundle carries (what `model_signing` checks)."""
    return hashlib.sha256(_public_pem(key)).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key; `source` says where it came from (a path or the environment variable's name)."""

    private_key: ec.EllipticCurvePrivateKey
    source: str

    def __repr__(self) -> str:  # a key in a traceback or a log shows its origin, never its numbers
        return f"SigningKey(source={self.source!r})"

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    @property
    def public_pem(self) -> bytes:
        return _public_pem(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 over SHA-256 of `data`, DER-encoded (cosign's and DSSE's signature bytes)."""
        return self.private_key.sign(data, _DETERMINISTIC_ECDSA_SHA256)


@dataclass(frozen=True)
class VerifyingKey:
    public_key: ec.EllipticCurvePublicKey
    source: str

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def verifies(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public_key.verify(signature, data, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True


def _check_p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey | object, source: str) -> None:
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        raise InputError(f"{source}: not an ECDSA key (cosign-compatible signatures need ECDSA P-256)")
    if not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{source}: ECDSA key on {key.curve.name}, expected P-256 (secp256r1)")


def _parse_private(pem: bytes, source: str, environ: Mapping[str, str]) -> SigningKey:
    if any(marker in pem for marker in _COSIGN_KEY_MARKERS):
        raise InputError(
            f"{source}: a cosign-format private key (scrypt + secretbox) is not supported; use a PKCS#8 PEM key "
            "(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc -out key.pem), which "
            "`cosign import-key-pair --key key.pem` also takes"
        )
    password_text = environ.get(SIGNING_KEY_PASSWORD_ENV)
    password = password_text.encode() if password_text else None
    try:
        key = serialization.load_pem_private_key(pem, password)
    except TypeError:
        if password is None:
            raise InputError(f"{source}: the key is encrypted: set ${SIGNING_KEY_PASSWORD_ENV}") from None
        raise InputError(
            f"{source}: the key is not encrypted, but ${SIGNING_KEY_PASSWORD_ENV} is set"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = f" or ${SIGNING_KEY_PASSWORD_ENV} is wrong" if password is not None else ""
        raise InputError(f"{source}: not a readable PEM private key{hint}") from None
    _check_p256(key, source)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return SigningKey(key, source)


def load_signing_key(path: Path | None, environ: Mapping[str, str] | None = None) -> SigningKey:
    """The private key from `path`, else from $LLM_PLATFORM_SIGNING_KEY (the PEM text itself)."""
    env = os.environ if environ is None else environ
    if path is not None:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot read the signing key ({exc.strerror or exc})") from None
        return _parse_private(pem, str(path), env)
    text = env.get(SIGNING_KEY_ENV, "")
    if not text.strip():
        raise InputError(f"no signing key: give --key FILE or set ${SIGNING_KEY_ENV} (the PEM text)")
    if "-----BEGIN" not in text:
        raise InputError(
            f"${SIGNING_KEY_ENV}: not PEM (it holds the key itself, not a path; --key takes a file)"
        )
    return _parse_private(text.encode(), f"${SIGNING_KEY_ENV}", env)


def load_verifying_key(path: Path) -> VerifyingKey:
    """A PEM public key (SubjectPublicKeyInfo, as `cosign generate-key-pair` writes cosign.pub)."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the public key ({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError(f"{path}: not a PEM public key") from None
    _check_p256(key, str(path))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return VerifyingKey(key, str(path))
