"""Keyless signing and its verification, through sigstore-python: an ephemeral key, a short-lived Fulcio
certificate for the CI's OIDC identity, a Rekor entry for every signature.

What is signed is what the key path signs (the OMS and provenance statements, as DSSE sigstore bundles),
plus the signature of the manifest digest in the form cosign v3 stores it: a sigstore bundle whose DSSE
statement has the image digest as subject and predicate type `https://sigstore.dev/cosign/sign/v1`, attached
as an OCI 1.1 referrer (cosign's specs/BUNDLE_SPEC.md), so that `cosign verify --certificate-identity ...
--certificate-oidc-issuer ...` accepts it.

The identity token comes from `$SIGSTORE_ID_TOKEN` (the variable cosign and sigstore-python read), else from
the CI's ambient credential (`id.detect_credential`: GitHub Actions with `id-token: write`, GitLab `id_tokens`,
Buildkite, Google Cloud). The token is handed to sigstore-python only: no message built here holds it, and
every error that leaves this module is scrubbed of it.

Every call into sigstore-python runs under a deadline (`NetworkBounds`): its Fulcio and Rekor clients set
no timeout of their own, so a stalled service would otherwise hang the publish.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llm_platform.errors import InputError, PlatformError
from llm_platform.logs import get_logger
from llm_platform.network import NetworkBounds
from llm_platform.oci import IN_TOTO_PAYLOAD, canonical_json
from llm_platform.signing.dsse import BadBundleError

if TYPE_CHECKING:
    from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
    from sigstore.oidc import IdentityToken
    from sigstore.sign import Signer

log = get_logger("signing.keyless")

TOKEN_ENV = "SIGSTORE_ID_TOKEN"
# cosign v3's predicate type for the signature of an image (the statement's subject is the manifest digest).
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
_NO_TOKEN = (
    f"--keyless: no OIDC identity token: set ${TOKEN_ENV}, or run where the CI provides one (GitHub Actions: "
    f"`permissions: id-token: write`; GitLab: an `id_tokens` entry with `aud: sigstore`)"
)

_T = TypeVar("_T")


class KeylessError(PlatformError):
    """Fulcio, Rekor, the TUF trust root or the OIDC provider failed (one line, no token)."""


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())[:400]


def bounded(what: str, call: Callable[[], _T], *, bounds: NetworkBounds, secrets: list[str]) -> _T:
    """`call()` in a daemon thread, given up after the retry budget: a stalled service ends the run with one
    line naming `what` instead of hanging it (the thread is left behind, the process exits)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"keyless {what}", daemon=True)
    worker.start()
    worker.join(bounds.retry_budget)
    if worker.is_alive():
        raise KeylessError(f"keyless {what}: no answer within {bounds.retry_budget:g} s")
    error = outcome.get("error")
    if error is None:
        return outcome["value"]
    if isinstance(error, PlatformError):
        raise error
    raise KeylessError(
        f"keyless {what}: {type(error).__name__}: {_scrub(str(error), secrets) or 'failed'}"
    ) from None


def trust_config(path: Path | None, bounds: NetworkBounds) -> ClientTrustConfig:
    """The Sigstore instance to sign with and verify against: a client trust config file (trusted root and
    signing config of a private instance, the form `cosign --trusted-root/--signing-config` and
    sigstore-python's `--trust-config` take), else Sigstore's public-good instance, refreshed over TUF."""
    from sigstore.models import ClientTrustConfig

    if path is None:
        return bounded("trust root (TUF)", ClientTrustConfig.production, bounds=bounds, secrets=[])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the Sigstore trust config ({type(exc).__name__})") from None
    try:
        return ClientTrustConfig.from_json(text)
    except Exception as exc:  # noqa: BLE001 - the protobuf parser raises several types
        raise InputError(f"{path}: not a Sigstore client trust config ({_scrub(str(exc), [])})") from None


def identity_token(environ: Mapping[str, str] | None = None, *, bounds: NetworkBounds) -> IdentityToken:
    """The OIDC token to sign with: `$SIGSTORE_ID_TOKEN`, else the CI's ambient credential."""
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential

    environ = os.environ if environ is None else environ
    raw = environ.get(TOKEN_ENV, "").strip()
    where = f"${TOKEN_ENV}"
    if not raw:
        secrets = [environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")]
        found = bounded("ambient OIDC credential", detect_credential, bounds=bounds, secrets=secrets)
        if not found:
            raise InputError(_NO_TOKEN)
        raw, where = found, "the CI's OIDC token"
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise InputError(
            f"--keyless: {where} is not a usable identity token: {_scrub(str(exc), [raw])}"
        ) from None


class KeylessSigner:
    """Signs statements as sigstore bundles under one Fulcio certificate (requested when opened, so a refused
    token or an unreachable Fulcio fails before anything is pushed; renewed when it expires)."""

    def __init__(self, token: IdentityToken, trust: ClientTrustConfig, bounds: NetworkBounds) -> None:
        from sigstore.sign import SigningContext

        self._token, self._bounds = token, bounds
        self._context = SigningContext.from_trust_config(trust)
        self.identity, self.issuer = token.identity, token.federated_issuer
        self._signer: Signer | None = None

    @classmethod
    def from_environment(
        cls, trust_config_path: Path | None = None, bounds: NetworkBounds | None = None
    ) -> KeylessSigner:
        bounds = bounds or NetworkBounds.from_timeout()
        token = identity_token(bounds=bounds)
        signer = cls(token, trust_config(trust_config_path, bounds), bounds)
        signer.open()
        return signer

    def _bounded(self, what: str, call: Callable[[], _T]) -> _T:
        return bounded(what, call, bounds=self._bounds, secrets=[str(self._token)])

    def open(self) -> None:
        """Request the Fulcio certificate for the identity."""
        if not self._token.in_validity_period():
            raise InputError(f"--keyless: the identity token of {self.identity} has expired; get a fresh one")
        context, token = self._context, self._token

        def new_signer() -> Signer:
            with context.signer(token, cache=True) as signer:
                return signer

        self._signer = self._bounded("signing certificate (Fulcio)", new_signer)
        log.info("keyless: a Fulcio certificate for %s (issuer %s)", self.identity, self.issuer)

    def bundle(self, document: dict[str, Any]) -> bytes:
        """`document` (an in-toto statement) signed as a DSSE envelope, its Rekor entry included: the
        sigstore bundle's JSON bytes."""
        from sigstore.dsse import Statement
        from sigstore.sign import ExpiredCertificate

        statement = Statement(canonical_json(document))

        def sign() -> Bundle | None:
            assert self._signer is not None
            try:
                return self._signer.sign_dsse(statement)
            except ExpiredCertificate:
                return None  # the certificate lives 10 minutes; a long publish outlives it

        if self._signer is None:
            self.open()
        signed = self._bounded("signature (Rekor)", sign)
        if signed is None:
            self.open()
            signed = self._bounded("signature (Rekor)", sign)
        if signed is None:
            raise KeylessError("keyless signature: Fulcio issued a certificate that had already expired")
        return signed.to_json().encode()


class KeylessIdentity:
    """What a keyless signature must show: the certificate's identity (its SAN: a workflow URL, an email) and
    the OIDC issuer that vouched for it, under the Sigstore instance's trusted root."""

    def __init__(self, identity: str, issuer: str, trusted_root: TrustedRoot) -> None:
        self.identity, self.issuer, self._root = identity, issuer, trusted_root

    @classmethod
    def load(
        cls, identity: str, issuer: str, trust_config_path: Path | None, bounds: NetworkBounds | None = None
    ) -> KeylessIdentity:
        if not identity.strip() or not issuer.strip():
            raise InputError("--certificate-identity and --certificate-oidc-issuer must both be non-empty")
        return cls(
            identity,
            issuer,
            trust_config(trust_config_path, bounds or NetworkBounds.from_timeout()).trusted_root,
        )

    @property
    def source(self) -> str:
        return f"identity {self.identity} (issuer {self.issuer})"

    def open_bundle(self, bundle: bytes) -> dict[str, Any]:
        """The in-toto statement of `bundle` once its certificate chains to the trusted root, names the
        identity and issuer, its Rekor entry checks out, and its DSSE signature verifies."""
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle
        from sigstore.verify import Verifier, policy

        try:
            parsed = Bundle.from_json(bundle)
        except Exception as exc:  # noqa: BLE001 - the bundle parser raises several types
            raise BadBundleError(
                f"does not verify for {self.source}: not a keyless sigstore bundle ({_scrub(str(exc), [])})"
            ) from None
        try:
            payload_type, payload = Verifier(trusted_root=self._root).verify_dsse(
                parsed, policy.Identity(identity=self.identity, issuer=self.issuer)
            )
        except (SigstoreError, ValueError) as exc:
            raise BadBundleError(f"does not verify for {self.source}: {_scrub(str(exc), [])}") from None
        if payload_type != IN_TOTO_PAYLOAD:
            raise BadBundleError(f"DSSE payload type {payload_type!r}, expected {IN_TOTO_PAYLOAD}")
        try:
            statement = json.loads(payload)
        except ValueError:
            raise BadBundleError("DSSE payload is not JSON") from None
        if not isinstance(statement, dict):
            raise BadBundleError("DSSE payload is not an in-toto statement")
        return statement
