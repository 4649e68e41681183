"""The root's outputs as a typed contract: later steps consume `PlatformOutputs`, never raw JSON."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from llm_platform.errors import InputError

ServiceAccountEmail = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$")
]
# An OCI repository reference without scheme: host[:port]/path (e.g. europe-west4-docker.pkg.dev/p/modelcars).
RegistryUrl = Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


def _pem_certificate_b64(value: str) -> str:
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("must be a base64-encoded PEM certificate") from exc
    if "-----BEGIN CERTIFICATE-----" not in decoded:
        raise ValueError("must be a base64-encoded PEM certificate (no BEGIN CERTIFICATE block)")
    return value


class ServiceAccounts(BaseModel):
    """Google service accounts the workloads and the pipeline act as (Workload Identity / impersonation)."""

    model_config = ConfigDict(extra="allow")

    argocd: ServiceAccountEmail
    external_secrets: ServiceAccountEmail
    pusher: ServiceAccountEmail = Field(description="Artifact Registry writer used to push modelcars")
    nodes: ServiceAccountEmail


class PlatformOutputs(BaseModel):
    """What an `infra/envs/<env>` root hands to the steps after it (output names = field names)."""

    project_id: NonEmpty
    region: NonEmpty
    cluster_name: NonEmpty
    cluster_location: NonEmpty
    cluster_endpoint: NonEmpty = Field(description="Control-plane IP or host name (no scheme)")
    cluster_ca_certificate: Annotated[str, AfterValidator(_pem_certificate_b64)] = Field(
        description="Base64 PEM of the cluster CA, as GKE reports it"
    )
    registry_url: RegistryUrl = Field(
        description="Where modelcars are pushed: <region>-docker.pkg.dev/<project>/<repo>"
    )
    workload_identity_pool: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+\.svc\.id\.goog$")]
    service_accounts: ServiceAccounts


OutputsModel = TypeVar("OutputsModel", bound=BaseModel)


def parse_outputs(raw: dict[str, Any], model: type[OutputsModel], source: str) -> OutputsModel:
    """Validate `output -json` against `model`; every missing or mistyped output is named in one error."""
    values = {name: entry.get("value") for name, entry in raw.items() if isinstance(entry, dict)}
    sensitive = {name for name, entry in raw.items() if isinstance(entry, dict) and entry.get("sensitive")}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            name = ".".join(loc) or "(all)"
            if error["type"] == "missing":
                problems.append(f"output {name!r} is missing")
                continue
            shown = "" if loc and loc[0] in sensitive else f" (got {_short(error.get('input'))})"
            problems.append(f"output {name!r}: {error['msg']}{shown}")
        hint = "" if values else " (the root has no outputs: has it been applied?)"
        raise InputError(
            f"{source}: outputs do not match {model.__name__}{hint}:\n  " + "\n  ".join(problems)
        ) from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
