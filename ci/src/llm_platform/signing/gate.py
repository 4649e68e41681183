"""The gate before a digest reaches git: `bump --verify-key` (or the key the repository names) refuses an
image that does not verify, before anything is edited, committed or pushed.

The key comes from `--verify-key FILE`, else from the repository's `modelcars/signing.yaml`
(`verify_key: PATH`, relative to the repository root; or, for images signed keyless, `keyless:` with the
certificate `identity` and OIDC `issuer` they must carry): a fork that commits that file makes every bump,
including the pipeline's, verify. Registry credentials are the publish step's (`$LLM_PLATFORM_REGISTRY_*`,
docker auth files); loopback registries speak plain HTTP, as everywhere else.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_platform.documents import CONFIG_LIMITS, load_yaml_file
from llm_platform.errors import InputError, PlatformError
from llm_platform.logs import get_logger
from llm_platform.modelcar.spec import ModelcarSpec

log = get_logger("signing.gate")

SIGNING_CONFIG = Path("modelcars/signing.yaml")


class UnverifiedImageError(PlatformError):
    """The image does not verify with the key: nothing may point at it."""


class KeylessExpectation(BaseModel):
    """Who must have signed keyless: the Fulcio certificate's identity and the OIDC issuer behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity: str = Field(
        min_length=1
    )  # e.g. https://github.com/ORG/REPO/.github/workflows/deploy.yml@refs/heads/main
    issuer: str = Field(min_length=1)  # e.g. https://token.actions.githubusercontent.com
    trust_config: str | None = None  # a private Sigstore instance's client trust config, relative to the root


class SigningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify_key: str | None = None  # the public key, a path relative to the repository root
    keyless: KeylessExpectation | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SigningConfig:
        if (self.verify_key is None) == (self.keyless is None):
            raise ValueError("give exactly one of verify_key and keyless")
        return self


def _inside(repo_root: Path, relative: str, field: str) -> Path:
    path = (repo_root / relative).resolve()
    if not path.is_relative_to(repo_root.resolve()):
        raise InputError(f"{SIGNING_CONFIG}: {field} {relative!r} is outside the repository")
    if not path.is_file():
        raise InputError(f"{SIGNING_CONFIG}: {field} {relative}: no such file")
    return path


def configured_key(repo_root: Path) -> Path | KeylessExpectation | None:
    """The public key `modelcars/signing.yaml` names (or the keyless identity it expects, its trust config
    path made absolute), or None when the repository has no such file."""
    path = repo_root / SIGNING_CONFIG
    if not path.is_file():
        return None
    doc = load_yaml_file(path, CONFIG_LIMITS, source=str(SIGNING_CONFIG))
    try:
        config = SigningConfig.model_validate(doc.data if doc is not None else None)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{SIGNING_CONFIG}: {where}: {first['msg']}") from None
    if config.keyless is not None:
        trust = config.keyless.trust_config
        if trust is None:
            return config.keyless
        return config.keyless.model_copy(
            update={"trust_config": str(_inside(repo_root, trust, "keyless.trust_config"))}
        )
    assert config.verify_key is not None
    return _inside(repo_root, config.verify_key, "verify_key")


def require_verified(ref: str, key_path: Path | KeylessExpectation, spec: ModelcarSpec | None) -> None:
    """Verify `ref` (signature, attestations, and the spec it claims) with the public key at `key_path` (or
    against the keyless identity); UnverifiedImageError naming every failed check, else nothing."""
    from llm_platform.network import NetworkBounds
    from llm_platform.registry.auth import resolve_credentials
    from llm_platform.registry.client import RegistryClient, scheme_for
    from llm_platform.registry.reference import parse_reference
    from llm_platform.signing.keyless import KeylessIdentity
    from llm_platform.signing.keys import VerifyingKey, load_verifying_key
    from llm_platform.signing.verify import verify_image

    key: VerifyingKey | KeylessIdentity
    if isinstance(key_path, KeylessExpectation):
        trust = Path(key_path.trust_config) if key_path.trust_config else None
        key = KeylessIdentity.load(key_path.identity, key_path.issuer, trust)
        name = f"identity {key_path.identity} (issuer {key_path.issuer})"
    else:
        key = load_verifying_key(key_path)
        name = f"{key_path.name} (key {key.key_id[:12]})"
    image = parse_reference(ref, what="--ref")
    client = RegistryClient(
        image.api_host,
        insecure=scheme_for(image, []) == "http",
        credentials=resolve_credentials(image.api_host),
        bounds=NetworkBounds.from_timeout(None),
    )
    with client:
        report = verify_image(client, image, key, spec)
    failed = [check for check in report.checks if not check.ok]
    if failed:
        raise UnverifiedImageError(
            f"--ref {ref}: does not verify with {name}, nothing was written: "
            + "; ".join(f"{check.name}: {check.message}" for check in failed)
        )
    log.info("bump: %s verifies with %s", report.reference, name)
