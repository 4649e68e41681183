"""Which resources `apply` must not destroy or replace without an explicit `--allow-destroy`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_platform.documents import CONFIG_LIMITS, cut, load_yaml_file, locate
from llm_platform.errors import InputError
from llm_platform.tofu.plan_summary import PlanSummary, ResourceChange

# Per root directory; lists addresses (and extra types) on top of the built-in protected types.
POLICY_FILE = "protected-resources.yaml"

# Losing any of these loses data or the platform itself: the cluster, the images, the state, the keys.
DEFAULT_PROTECTED_TYPES = (
    "google_container_cluster",
    "google_artifact_registry_repository",
    "google_storage_bucket",
    "google_kms_key_ring",
    "google_kms_crypto_key",
    "google_secret_manager_secret",
    "google_sql_database_instance",
    "google_project",
)


class ProtectionPolicy(BaseModel):
    """Protected resource types and addresses (`*` matches any characters, e.g. `module.gke.*`)."""

    model_config = ConfigDict(extra="forbid")

    types: list[str] = Field(default_factory=list, description="Resource types, added to the defaults")
    addresses: list[str] = Field(default_factory=list, description="Resource addresses or `*` patterns")

    def all_types(self) -> set[str]:
        return set(DEFAULT_PROTECTED_TYPES) | set(self.types)

    def protects(self, change: ResourceChange) -> bool:
        return change.type in self.all_types() or any(
            address_matches(p, change.address) for p in self.addresses
        )


def address_matches(pattern: str, address: str) -> bool:
    """Exact match, `*` wildcard, or the resource address without an instance key (`x.y` covers `x.y[0]`)."""
    if "*" in pattern:
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        return re.fullmatch(regex, address) is not None
    return address == pattern or re.sub(r"\[[^\]]*\]$", "", address) == pattern


def load_policy(root: Path) -> ProtectionPolicy:
    path = root / POLICY_FILE
    if not os.path.lexists(path):
        return ProtectionPolicy()
    doc = load_yaml_file(path, CONFIG_LIMITS)  # a DocumentError (an InputError) names file and line
    try:
        return ProtectionPolicy.model_validate((doc.data if doc is not None else None) or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        where = f"{path}:{locate(doc.node, loc)[0]}" if doc is not None else str(path)
        raise InputError(f"{where}: field {field}: {cut(first['msg'])}") from None


def refused_changes(
    summary: PlanSummary, policy: ProtectionPolicy, allow_destroy: Iterable[str]
) -> list[ResourceChange]:
    """Destroys/replaces of protected resources that `allow_destroy` does not name."""
    allowed = list(allow_destroy)
    return [
        change
        for change in summary.resources
        if change.destroys
        and policy.protects(change)
        and not any(address_matches(a, change.address) for a in allowed)
    ]
