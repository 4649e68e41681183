"""`llm-platform modelcar sign` and `modelcar verify`: thin front doors over `llm_platform.signing`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llm_platform.cli.modelcar import TimeoutOption
from llm_platform.cli.modelcar import app as modelcar_app
from llm_platform.errors import InputError
from llm_platform.registry import PASSWORD_ENV, USERNAME_ENV
from llm_platform.signing import SIGNING_KEY_ENV, SIGNING_KEY_PASSWORD_ENV

if TYPE_CHECKING:
    from llm_platform.registry.client import RegistryClient
    from llm_platform.registry.reference import ImageReference
    from llm_platform.signing.keyless import KeylessSigner
    from llm_platform.signing.keys import SigningKey

# The core (llm_platform.signing, cryptography, httpx) is imported inside the commands: `llm-platform` starts
# without it.

RefArg = Annotated[str, typer.Argument(help="The modelcar: REGISTRY/REPOSITORY@sha256:... (or :TAG).")]
SpecOption = Annotated[
    Path | None, typer.Option("--spec", help="The modelcar spec the image was built from.")
]
InsecureOption = Annotated[
    list[str] | None,
    typer.Option(
        "--insecure-registry",
        help="Speak plain HTTP to this registry host (repeatable). localhost and 127.0.0.1 always use HTTP.",
    ),
]
UsernameOption = Annotated[
    str | None, typer.Option("--username", help=f"Registry user (default: ${USERNAME_ENV}, then auth files).")
]
TrustConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--sigstore-trust-config",
        help="Keyless: a Sigstore client trust config (trusted root and signing config, JSON) of a private "
        "instance; default: Sigstore's public-good instance, its trust root refreshed over TUF.",
    ),
]
PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help=f"Read the registry password from stdin (or set ${PASSWORD_ENV})."),
]


def registry_client(
    image: ImageReference,
    insecure: list[str] | None,
    username: str | None,
    password: str | None,
    timeout: float | None,
) -> RegistryClient:
    """A client of `image`'s registry with the user's credentials (the options, the environment, auth files)."""
    from llm_platform.network import NetworkBounds
    from llm_platform.registry.auth import resolve_credentials
    from llm_platform.registry.client import RegistryClient, scheme_for

    return RegistryClient(
        image.api_host,
        insecure=scheme_for(image, insecure or []) == "http",
        credentials=resolve_credentials(image.api_host, username=username, password=password),
        bounds=NetworkBounds.from_timeout(timeout),
    )


def _client(
    text: str, insecure: list[str] | None, username: str | None, password_stdin: bool, timeout: float | None
) -> tuple[ImageReference, RegistryClient]:
    from llm_platform.registry.reference import parse_reference

    ref = parse_reference(text, what="REF")
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InputError("--password-stdin: no password on stdin")
    return ref, registry_client(ref, insecure, username, password, timeout)


@modelcar_app.command("sign")
def sign(
    ref: RefArg,
    spec: Annotated[Path, typer.Option("--spec", help="The modelcar spec the image was built from.")],
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help=f"PEM ECDSA P-256 private key (PKCS#8 or SEC1; default: ${SIGNING_KEY_ENV}, the PEM text). "
            f"An encrypted key takes its password from ${SIGNING_KEY_PASSWORD_ENV}.",
        ),
    ] = None,
    keyless: Annotated[
        bool,
        typer.Option(
            "--keyless",
            help="Sign keyless: an ephemeral key, a Fulcio certificate for the OIDC identity "
            "($SIGSTORE_ID_TOKEN, else the CI's ambient token) and a Rekor entry per signature.",
        ),
    ] = False,
    sigstore_trust_config: TrustConfigOption = None,
    insecure_registry: InsecureOption = None,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Sign the modelcar REF and attach its attestations; print the result as JSON.

    Pushes, as OCI 1.1 referrers of the image (the referrers tag sha256-<hex> where the registry has no
    referrers API): a cosign-compatible signature of the manifest digest (tag sha256-<hex>.sig), an OpenSSF
    Model Signing bundle over the files' sha256 (from the layer annotations), a SLSA v1 provenance statement,
    and a ModelPack manifest over the image's own layer blobs. No weight byte is read or uploaded. With
    --keyless the signature is a sigstore bundle referrer (cosign v3's form) instead of the .sig tag.
    """
    from llm_platform.modelcar.spec import load_spec
    from llm_platform.signing.sign import sign_image

    signing_key = load_signer(key, keyless, sigstore_trust_config, timeout)
    loaded = load_spec(spec)
    image, client = _client(ref, insecure_registry, username, password_stdin, timeout)
    with client:
        result = sign_image(client, image, signing_key, loaded)
    typer.echo(result.model_dump_json(indent=2))


def load_signer(
    key: Path | None, keyless: bool, trust_config: Path | None, timeout: float | None
) -> SigningKey | KeylessSigner:
    """The key (`--key`, else $LLM_PLATFORM_SIGNING_KEY), or with `keyless` a signer holding a Fulcio
    certificate: either way ready before anything is pushed."""
    if keyless:
        if key is not None:
            raise InputError("--keyless and a signing key: give one of them")
        from llm_platform.network import NetworkBounds
        from llm_platform.signing.keyless import KeylessSigner

        return KeylessSigner.from_environment(trust_config, NetworkBounds.from_timeout(timeout))
    if trust_config is not None:
        raise InputError("--sigstore-trust-config applies to --keyless only")
    from llm_platform.signing.keys import load_signing_key

    return load_signing_key(key)


@modelcar_app.command("verify")
def verify(
    ref: RefArg,
    key: Annotated[
        Path | None, typer.Option("--key", help="PEM public key (cosign.pub) the image must be signed with.")
    ] = None,
    certificate_identity: Annotated[
        str | None,
        typer.Option(
            "--certificate-identity",
            help="Keyless: the identity the Fulcio certificate must name (a workflow URL, an email).",
        ),
    ] = None,
    certificate_oidc_issuer: Annotated[
        str | None,
        typer.Option(
            "--certificate-oidc-issuer",
            help="Keyless: the OIDC issuer that vouched for it (https://token.actions.githubusercontent.com).",
        ),
    ] = None,
    sigstore_trust_config: TrustConfigOption = None,
    spec: SpecOption = None,
    insecure_registry: InsecureOption = None,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    timeout: TimeoutOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead.")] = False,
) -> None:
    """Verify the signature and attestations of the modelcar REF; one line per check on stdout.

    Checks: the cosign signature of the manifest digest; with --spec, that the image was built from it; the
    OMS bundle against the layer annotations; the provenance against the image (and the spec's hash); the
    ModelPack manifest against the image's layers; the referrers listing. Exit 1 when any check fails.
    """
    from llm_platform.modelcar.spec import load_spec
    from llm_platform.signing.keyless import KeylessIdentity
    from llm_platform.signing.keys import VerifyingKey, load_verifying_key
    from llm_platform.signing.verify import verify_image

    keyless = certificate_identity is not None or certificate_oidc_issuer is not None
    if keyless == (key is not None):
        raise InputError("give --key, or --certificate-identity with --certificate-oidc-issuer")
    loaded = load_spec(spec) if spec else None
    public_key: VerifyingKey | KeylessIdentity
    if key is not None:
        if sigstore_trust_config is not None:
            raise InputError("--sigstore-trust-config applies to keyless verification only")
        public_key = load_verifying_key(key)
    else:
        from llm_platform.network import NetworkBounds

        if not certificate_identity or not certificate_oidc_issuer:
            raise InputError(
                "keyless verification needs both --certificate-identity and --certificate-oidc-issuer"
            )
        public_key = KeylessIdentity.load(
            certificate_identity,
            certificate_oidc_issuer,
            sigstore_trust_config,
            NetworkBounds.from_timeout(timeout),
        )
    image, client = _client(ref, insecure_registry, username, password_stdin, timeout)
    with client:
        report = verify_image(client, image, public_key, loaded)
    typer.echo(report.model_dump_json(indent=2) if as_json else "\n".join(c.line() for c in report.checks))
    if not report.ok:
        raise typer.Exit(1)
