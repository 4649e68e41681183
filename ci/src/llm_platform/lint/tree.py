"""The linted tree as objects: each Kubernetes object with the source position it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_platform.lint.config import LintConfig
from llm_platform.lint.model import Finding
from llm_platform.lint.render import Kustomization, real_path
from llm_platform.lint.rules import silences
from llm_platform.lint.sources import JsonPath, SourceDoc, SourceFile, finding


@dataclass(frozen=True)
class HelmOrigin:
    """Where a rendered object came from: the chart, the Application and its values files' lines."""

    chart: str
    app: str
    values: list[tuple[str, list[str]]] = field(default_factory=list)  # (display, lines)

    def note(self, value: Any) -> str:
        """`chart X (Application A)`, plus the last values file line that sets `value`, when found."""
        where = ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            needles = [str(value)]
            if isinstance(value, str) and ":" in value.rsplit("/", 1)[-1]:
                needles.append(value.rsplit(":", 1)[1])  # an image's tag, set on its own
            for needle in needles:
                for display, lines in reversed(self.values):
                    hits = [i for i, line in enumerate(lines, 1) if needle in line]
                    if hits:
                        where = f", set in {display}:{hits[-1]}"
                        break
                if where:
                    break
        return f"rendered from chart {self.chart} by Application {self.app}{where}"


@dataclass(eq=False)
class K8sObject:
    data: dict[str, Any]
    path: Path  # resolved source file (for a generated object: its kustomization file)
    display: str
    doc: SourceDoc | None  # source document used for positions (None: generated)
    fallback: tuple[int, int]
    unit: str  # scope for duplicate detection: one kustomize render or one directory
    kustomization: Path | None = None
    helm: HelmOrigin | None = None  # rendered from a Helm chart source of an Application

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
        return silences(self.annotations, rule_id)


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
    # --render-charts: objects per (id(Application), source index), and why a chart source was not rendered
    helm_renders: dict[tuple[int, int], list[K8sObject]] = field(default_factory=dict)
    helm_not_rendered: dict[tuple[int, int], str] = field(default_factory=dict)
    accepted_unpinned: set[str] = field(default_factory=set)  # images accept_unpinned_images let pass

    def display(self, path: Path) -> str:
        return display_path(path, self.cwd)

    def report(self, rule_id: str, obj: K8sObject, json_path: JsonPath, message: str) -> None:
        if obj.silenced(rule_id):
            self.silenced += 1
            return
        line, col = obj.at(json_path)
        if obj.helm is not None:
            message = f"{message} ({obj.helm.note(_value_at(obj.data, json_path))})"
        self.findings.append(finding(rule_id, obj.display, line, col, message, obj.ident))

    def report_at(self, rule_id: str, display: str, line: int, col: int, message: str) -> None:
        self.findings.append(finding(rule_id, display, line, col, message))

    def of_kind(self, *kinds: str) -> list[K8sObject]:
        return [o for o in self.objects if o.kind in kinds]


def _value_at(data: Any, json_path: JsonPath) -> Any:
    for part in json_path:
        in_list = isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data)
        if in_list or (isinstance(data, dict) and part in data):
            data = data[part]
        else:
            return None
    return data


def display_path(path: Path, cwd: Path) -> str:
    """`path` (symlinks resolved as far as they go: a loop does not raise) relative to `cwd` if inside."""
    real = real_path(path)
    try:
        return real.relative_to(real_path(cwd)).as_posix()
    except ValueError:
        return real.as_posix()
