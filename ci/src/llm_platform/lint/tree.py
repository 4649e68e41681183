"""The linted tree as objects: each Kubernetes object with the source position it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_platform.lint.config import LintConfig
from llm_platform.lint.model import Finding
from llm_platform.lint.render import Kustomization, real_path
from llm_platform.lint.rules import IGNORE_ANNOTATION
from llm_platform.lint.sources import JsonPath, SourceDoc, SourceFile, finding


@dataclass(eq=False)
class K8sObject:
    data: dict[str, Any]
    path: Path  # resolved source file (for a generated object: its kustomization file)
    display: str
    doc: SourceDoc | None  # source document used for positions (None: generated)
    fallback: tuple[int, int]
    unit: str  # scope for duplicate detection: one kustomize render or one directory
    kustomization: Path | None = None

    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        m = self.data.get("metadata")
        return m if isinstance(m, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return str(ns) if ns else None

    @property
    def labels(self) -> dict[str, str]:
        v = self.metadata.get("labels")
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}

    @property
    def annotations(self) -> dict[str, Any]:
        v = self.metadata.get("annotations")
        return v if isinstance(v, dict) else {}

    @property
    def spec(self) -> dict[str, Any]:
        s = self.data.get("spec")
        return s if isinstance(s, dict) else {}

    @property
    def ident(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def at(self, json_path: JsonPath = ()) -> tuple[int, int]:
        if self.doc is None:
            return self.fallback
        return self.doc.locate(json_path)

    def silenced(self, rule_id: str) -> bool:
        raw = self.annotations.get(IGNORE_ANNOTATION)
        if not isinstance(raw, str):
            return False
        return rule_id in {r.strip() for r in raw.split(",")} or "*" in raw


@dataclass
class Tree:
    repo_root: Path
    files: dict[Path, SourceFile]
    kustomizations: dict[Path, Kustomization]
    objects: list[K8sObject]
    value_docs: list[SourceDoc]
    config: LintConfig
    cwd: Path
    findings: list[Finding] = field(default_factory=list)
    silenced: int = 0
    source_index: dict[tuple[str, str], list[SourceDoc]] = field(
        default_factory=dict
    )  # resource docs by kind/name
    rendered: set[Path] = field(default_factory=set)  # kustomization dirs rendered so far

    def display(self, path: Path) -> str:
        return display_path(path, self.cwd)

    def report(self, rule_id: str, obj: K8sObject, json_path: JsonPath, message: str) -> None:
        if obj.silenced(rule_id):
            self.silenced += 1
            return
        line, col = obj.at(json_path)
        self.findings.append(finding(rule_id, obj.display, line, col, message, obj.ident))

    def report_at(self, rule_id: str, display: str, line: int, col: int, message: str) -> None:
        self.findings.append(finding(rule_id, display, line, col, message))

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        return [o for o in self.objects if o.kind in kinds]


def display_path(path: Path, cwd: Path) -> str:
    """`path` (symlinks resolved as far as they go: a loop does not raise) relative to `cwd` if inside."""
    real = real_path(path)
    try:
        return real.relative_to(real_path(cwd)).as_posix()
    except ValueError:
        return real.as_posix()
