"""The gate before a digest reaches git: `bump --verify-key` (or the key the repository names) refuses an
image that does not verify, before anything is edited, committed or pushed.

The key comes from `--verify-key FILE`, else from the repository's `modelcars/signing.yaml`
(`verify_key: PATH`, relative to the repository root): a fork that commits that file makes every bump,
including the pipeline's, verify. Registry credentials are the publish step's (`$LLM_PLATFORM_REGISTRY_*`,
docker auth files); loopback registries speak plain HTTP, as everywhere else.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from llm_platform.documents import CONFIG_LIMITS, load_yaml_file
from llm_platform.errors import InputError, PlatformError
from llm_platform.logs import get_logger
from llm_platform.modelcar.spec import ModelcarSpec

log = get_logger("signing.gate")

SIGNING_CONFIG = Path("modelcars/signing.yaml")


class UnverifiedImageError(PlatformError):
    """The image does not verify with the key: nothing may point at it."""


class SigningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verify_key: str  # the public key, a path relative to the repository root


def configured_key(repo_root: Path) -> Path | None:
    """The public key `modelcars/signing.yaml` names, or None when the repository has no such file."""
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
    key = (repo_root / config.verify_key).resolve()
    if not key.is_relative_to(repo_root.resolve()):
        raise InputError(f"{SIGNING_CONFIG}: verify_key {config.verify_key!r} is outside the repository")
    if not key.is_file():
        raise InputError(f"{SIGNING_CONFIG}: verify_key {config.verify_key}: no such file")
    return key


def require_verified(ref: str, key_path: Path, spec: ModelcarSpec | None) -> None:
    """Verify `ref` (signature, attestations, and the spec it claims) with the public key at `key_path`;
    UnverifiedImageError naming every failed check, else nothing."""
    from llm_platform.network import NetworkBounds
    from llm_platform.registry.auth import resolve_credentials
    from llm_platform.registry.client import RegistryClient, scheme_for
    from llm_platform.registry.reference import parse_reference
    from llm_platform.signing.keys import load_verifying_key
    from llm_platform.signing.verify import verify_image

    key = load_verifying_key(key_path)
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
            f"--ref {ref}: does not verify with {key_path.name} (key {report.key_id[:12]}), nothing was written: "
            + "; ".join(f"{check.name}: {check.message}" for check in failed)
        )
    log.info("bump: %s verifies with %s (key %s)", report.reference, key_path.name, report.key_id[:12])
