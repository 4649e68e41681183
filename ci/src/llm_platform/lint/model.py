"""The linter's boundary types: findings, the report and the coverage counters."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    error = "error"
    warning = "warning"


class Finding(BaseModel):
    """One problem at one place. `path` is relative to the working directory when possible."""

    model_config = ConfigDict(frozen=True)

    path: str
    line: int = Field(ge=1)
    col: int = Field(ge=1)
    severity: Severity
    rule_id: str
    message: str
    object: str | None = Field(default=None, description="kind/namespace/name of the object, when known")

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.col, self.rule_id, self.message)

    def text(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity.value} {self.rule_id} {self.message}"


class Coverage(BaseModel):
    """What was checked and what was not, so nothing is skipped silently."""

    files: int = 0
    objects: int = 0
    kustomizations_rendered: int = 0
    schema_core: int = 0
    schema_crd: int = 0
    cel_rules_evaluated: int = 0
    cel_rules_skipped: list[str] = Field(default_factory=list, description="rule text and why it was not run")
    not_rendered: list[str] = Field(
        default_factory=list, description="Helm charts and other sources not rendered"
    )
    charts_rendered: list[str] = Field(
        default_factory=list, description="Helm chart sources rendered (lint --render-charts)"
    )
    silenced: int = 0
    accepted_unpinned_images: list[str] = Field(
        default_factory=list, description="tag-pinned images the lint config accepts (accept_unpinned_images)"
    )
    unused_accepted_images: list[str] = Field(
        default_factory=list, description="accept_unpinned_images entries no linted object uses any more"
    )


class LintReport(BaseModel):
    findings: list[Finding]
    coverage: Coverage
    kubernetes_version: str
    could_not_run: str | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.error]

    @property
    def exit_code(self) -> int:
        if self.could_not_run is not None:
            return 2
        return 1 if self.errors else 0
