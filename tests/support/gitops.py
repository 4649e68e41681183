"""Offline checks of the GitOps tree's structure: strict YAML loading, `kubectl kustomize` rendering
and the app-of-apps walk. Schema, CRD and policy validation is `llm-platform lint`'s job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from tests.support.tools import require_tool, run

# The repository every environment's Applications read from (a fork changes it in one sweep).
GITOPS_REPO_URL = "https://github.com/llm-platform-example/llm-platform.git"
ENVIRONMENTS = ("gke", "kind")
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
PROVIDES = "llm-platform.io/provides-crds"
REQUIRES = "llm-platform.io/requires-crds"
CLUSTER_PROVIDES = "llm-platform.io/cluster-provides-crds"
# What Argo CD's strconv.Atoi accepts as a sync wave.
WAVE_PATTERN = re.compile(r"^[+-]?[0-9]+$")
# An exact release: no ranges, no branches, no HEAD.
EXACT_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$")
DIGEST_REF = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a YAML file; duplicate keys are an error (PyYAML keeps the last one)."""
    loader = YAML(typ="rt")
    loader.allow_duplicate_keys = False
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in loader.load_all(stream) if doc is not None]


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from a kustomization directory."""
    kubectl = require_tool("kubectl")
    out = run([kubectl, "kustomize", str(directory)]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc is not None]


def kustomization_file(directory: Path) -> Path | None:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            return directory / name
    return None


def is_component(directory: Path) -> bool:
    file = kustomization_file(directory)
    return file is not None and yaml.safe_load(file.read_text()).get("kind") == "Component"


def local_kustomize_dirs(directory: Path) -> set[Path]:
    """The directory and every local directory its kustomization pulls in (resources, components)."""
    seen: set[Path] = set()
    pending = [directory.resolve()]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        file = kustomization_file(current)
        if file is None:
            continue
        kustomization = yaml.safe_load(file.read_text()) or {}
        for entry in [*kustomization.get("resources", []), *kustomization.get("components", [])]:
            target = (current / entry).resolve()
            if target.is_dir():
                pending.append(target)
    return seen


def object_id(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{obj.get('kind')}/{namespace + '/' if namespace else ''}{meta.get('name')}"


def api_group(obj: dict[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


@dataclass
class ChildApp:
    """One Application reached from an environment's root."""

    name: str
    wave: str | None
    manifest: dict[str, Any]
    local_dirs: set[Path] = field(default_factory=set)
    rendered: list[dict[str, Any]] = field(default_factory=list)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.manifest.get("metadata", {}).get("annotations") or {})

    def groups(self, annotation: str) -> set[str]:
        value = self.annotations.get(annotation, "")
        return {g.strip() for g in value.split(",") if g.strip()}

    @property
    def sources(self) -> list[dict[str, Any]]:
        spec = self.manifest["spec"]
        return list(spec.get("sources") or [spec["source"]])


def application_sources(app: dict[str, Any]) -> list[dict[str, Any]]:
    spec = app["spec"]
    return list(spec.get("sources") or [spec["source"]])


def walk_environment(repo_root: Path, env: str) -> tuple[dict[str, Any], list[ChildApp]]:
    """The root Application of `env` and every Application reached from it, depth first; each
    child carries the local directories its sources read and what its kustomize sources render."""
    root = load_yaml_documents(repo_root / "gitops" / "bootstrap" / f"root-{env}.yaml")[0]
    root_plain = json.loads(json.dumps(root))
    apps: list[ChildApp] = []
    pending = [ChildApp(name="root", wave=None, manifest=root_plain)]
    while pending:
        app = pending.pop(0)
        apps.append(app)
        for source in app.sources:
            if source.get("repoURL") != GITOPS_REPO_URL:
                continue
            if "path" in source:
                directory = repo_root / source["path"]
                if not directory.is_dir():
                    raise AssertionError(
                        f"Application {app.name}: source path {source['path']} does not exist"
                    )
                app.local_dirs |= local_kustomize_dirs(directory)
                app.rendered += kustomize_build(directory)
        for value_file in _value_files(app.manifest):
            app.local_dirs.add((repo_root / value_file).parent.resolve())
        for obj in app.rendered:
            if obj.get("kind") == "Application" and api_group(obj) == "argoproj.io":
                meta = obj.get("metadata", {})
                pending.append(
                    ChildApp(
                        name=meta.get("name"),
                        wave=(meta.get("annotations") or {}).get(SYNC_WAVE),
                        manifest=obj,
                    )
                )
    return root_plain, apps


def _value_files(app: dict[str, Any]) -> Iterator[str]:
    for source in application_sources(app):
        for value_file in (source.get("helm") or {}).get("valueFiles", []):
            if value_file.startswith("$values/"):
                yield value_file.removeprefix("$values/")


def value_files(app: dict[str, Any]) -> list[str]:
    """The `$values/...` files an Application reads, relative to the repository root."""
    return list(_value_files(app))


def container_images(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, reference) for every container image and image volume in a workload object."""
    spec = obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") if "template" in spec else None
    if pod is None and obj.get("kind") == "Pod":
        pod = spec
    if not pod:
        return
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(key) or []:
            yield f"{key}[{container.get('name')}]", container.get("image", "")
    for volume in pod.get("volumes") or []:
        if "image" in volume:
            yield f"volumes[{volume.get('name')}]", volume["image"].get("reference", "")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested object as {dotted.path: leaf}, lists indexed, for field-level diffs."""
    if isinstance(value, dict):
        items: dict[str, Any] = {}
        for key, sub in value.items():
            items.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return items or {prefix: {}}
    if isinstance(value, list):
        items = {}
        for index, sub in enumerate(value):
            items.update(flatten(sub, f"{prefix}[{index}]"))
        return items or {prefix: []}
    return {prefix: value}
