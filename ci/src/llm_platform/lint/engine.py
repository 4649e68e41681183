"""`run_lint`: load, render, validate and cross-check a GitOps tree; one report, nothing printed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_platform.cache_root import cache_root
from llm_platform.errors import InputError
from llm_platform.lint import argocd, policy, xref
from llm_platform.lint.cel import CelOutcome
from llm_platform.lint.config import LintConfig
from llm_platform.lint.model import Coverage, Finding, LintReport
from llm_platform.lint.render import KUSTOMIZATION_NAMES, Kustomization, Renderer, discover
from llm_platform.lint.schemas import CoreSchemas, CrdStore, is_builtin_group, resolve_kubernetes_version
from llm_platform.lint.sources import SourceDoc, SourceFile, load_file
from llm_platform.lint.structural import SchemaError
from llm_platform.lint.tree import K8sObject, Tree, display_path

DEFAULT_KUBERNETES_VERSION = "1.35"  # the version the reference tree targets (image volumes on by default)
_KUSTOMIZE_KINDS = {"Kustomization", "Component"}
_KUSTOMIZE_GROUPS = ("kustomize.config.k8s.io",)

_CORE: dict[str, CoreSchemas] = {}


def default_cache_dir() -> Path:
    return Path(cache_root()) / "crd-schemas"


def _core(version: str) -> CoreSchemas:
    if version not in _CORE:
        _CORE[version] = CoreSchemas(version)
    return _CORE[version]


def run_lint(
    paths: Sequence[Path],
    *,
    crd_dirs: Sequence[Path] = (),
    kubernetes_version: str | None = None,
    config: LintConfig | None = None,
    cwd: Path | None = None,
    cache_dir: Path | None = None,
) -> LintReport:
    """Lint `paths` (directories or files). Raises InputError/ToolError when it cannot run at all."""
    config = config or LintConfig()
    cwd = (cwd or Path.cwd()).resolve()
    version = resolve_kubernetes_version(
        kubernetes_version or config.kubernetes_version or DEFAULT_KUBERNETES_VERSION
    )
    roots = [(p if p.is_absolute() else cwd / p) for p in paths]
    for p in roots:
        if not p.exists():
            raise InputError(f"lint: path {p} does not exist")
    repo_root = _repo_root(roots[0], config, cwd)
    coverage = Coverage()
    renderer = Renderer(config.kustomize_build_options)
    try:
        tree = _load(roots, cwd, repo_root, config, renderer, coverage)
        crds = CrdStore(
            [Path(d) for d in crd_dirs], cache_dir if cache_dir is not None else default_cache_dir()
        )
        _collect(tree, renderer, coverage)
        # Kustomizations that Applications point at directly but that are only included elsewhere.
        renderer.start(
            [d for d in argocd.kustomize_targets(tree) if d in tree.kustomizations and d not in tree.rendered]
        )
        _collect(tree, renderer, coverage)
    finally:
        renderer.close()
    coverage.objects = len(tree.objects)
    files = tree.files

    for obj in tree.objects:
        if obj.kind == "CustomResourceDefinition" and obj.group == "apiextensions.k8s.io":
            crds.add(obj.data, obj.display)
    _validate_schemas(tree, crds, _core(version), coverage)
    graph = argocd.check(tree, coverage)
    _duplicates(tree, graph)
    policy.check(tree)
    xref.check(tree, graph)

    findings: list[Finding] = list(tree.findings)
    for sf in files.values():
        findings.extend(sf.findings)
    kept: dict[tuple[str, int, int, str, str], Finding] = {}
    for f in findings:
        if config.path_ignored(f.path, f.rule_id):
            tree.silenced += 1
            continue
        kept.setdefault(f.sort_key(), f)
    coverage.silenced = tree.silenced
    coverage.cel_rules_skipped = sorted(set(coverage.cel_rules_skipped))
    coverage.not_rendered = sorted(set(coverage.not_rendered))
    return LintReport(
        findings=sorted(kept.values(), key=Finding.sort_key), coverage=coverage, kubernetes_version=version
    )


def _load(
    roots: list[Path], cwd: Path, repo_root: Path, config: LintConfig, renderer: Renderer, coverage: Coverage
) -> Tree:
    """Load kustomizations first and start rendering them, then load every other file meanwhile."""
    paths = _yaml_files(roots)
    files: dict[Path, SourceFile] = {}
    kdata: dict[Path, dict[str, Any]] = {}
    for path in paths:
        if path.name in KUSTOMIZATION_NAMES:
            files[path] = sf = load_file(path, display_path(path, cwd))
            if sf.docs and isinstance(sf.docs[0].data, dict):
                kdata[path] = sf.docs[0].data
    kusts = discover(kdata)
    included = set().union(*(k.child_dirs for k in kusts.values())) if kusts else set()
    renderer.start([d for d in kusts if d not in included])
    for path in paths:
        if path not in files:
            files[path] = load_file(path, display_path(path, cwd))
    coverage.files = len(files)

    covered: set[Path] = set(kdata)
    resource_files: set[Path] = set()
    for k in kusts.values():
        resource_files |= k.resource_files
        covered |= k.resource_files | k.patch_files
    tree = Tree(
        repo_root=repo_root,
        files=files,
        kustomizations=kusts,
        objects=[],
        value_docs=[],
        config=config,
        cwd=cwd,
    )
    for path, sf in files.items():
        for doc in sf.docs:
            data = doc.data
            if not isinstance(data, dict):
                continue
            if not _looks_like_object(data):
                if path not in covered:
                    tree.value_docs.append(doc)
                continue
            if path in resource_files:
                tree.source_index.setdefault((str(data.get("kind")), _name(data)), []).append(doc)
            if path in covered:
                continue
            if _identity_ok(tree, doc) and not _is_kustomize(data):
                tree.objects.append(
                    K8sObject(
                        data=data,
                        path=path,
                        display=doc.display,
                        doc=doc,
                        fallback=doc.locate(),
                        unit=f"dir:{path.parent}",
                    )
                )
    return tree


def _repo_root(first: Path, config: LintConfig, cwd: Path) -> Path:
    if config.repo_root:
        return (cwd / config.repo_root).resolve()
    start = first if first.is_dir() else first.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip()).resolve()
    except OSError:
        pass
    return start.resolve().parent if first.is_dir() else start.resolve()


def _yaml_files(roots: list[Path]) -> list[Path]:
    out: set[Path] = set()
    for root in roots:
        if root.is_file():
            out.add(root.resolve())
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.endswith((".yaml", ".yml")) or name == "Kustomization":
                    out.add((Path(dirpath) / name).resolve())
    return sorted(out)


def _name(data: dict[str, Any]) -> str:
    meta = data.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def _looks_like_object(data: dict[str, Any]) -> bool:
    has_av, has_kind = "apiVersion" in data, "kind" in data
    return (has_av and has_kind) or ((has_av or has_kind) and "metadata" in data)


def _is_kustomize(data: dict[str, Any]) -> bool:
    return str(data.get("kind")) in _KUSTOMIZE_KINDS and str(data.get("apiVersion", "")).startswith(
        _KUSTOMIZE_GROUPS
    )


def _identity_ok(tree: Tree, doc: SourceDoc) -> bool:
    data = doc.data
    missing = [f for f in ("apiVersion", "kind") if not isinstance(data.get(f), str) or not data.get(f)]
    if (
        not _is_kustomize(data)
        and not missing
        and not _name(data)
        and not (isinstance(data.get("metadata"), dict) and data["metadata"].get("generateName"))
    ):
        missing.append("metadata.name")
    if missing:
        line, col = doc.locate()
        tree.report_at(
            "k8s-object-identity", doc.display, line, col, f"object is missing {', '.join(missing)}"
        )
        return False
    return True


def _collect(tree: Tree, renderer: Renderer, coverage: Coverage) -> None:
    by_file: dict[Path, list[SourceDoc]] = {}
    for docs in tree.source_index.values():
        for d in docs:
            by_file.setdefault(d.path, []).append(d)
    for kdir, result in sorted(renderer.results().items()):
        tree.rendered.add(kdir)
        k = tree.kustomizations[kdir]
        kdisplay = tree.display(k.file)
        if result.error is not None:
            kdoc = tree.files[k.file].docs[0] if tree.files.get(k.file) and tree.files[k.file].docs else None
            line, col = kdoc.locate() if kdoc else (1, 1)
            tree.report_at("render-kustomize", kdisplay, line, col, f"kustomize build failed: {result.error}")
            continue
        coverage.kustomizations_rendered += 1
        for data in result.objects:
            if not _looks_like_object(data):
                continue
            doc = _source_for(data, k, tree.source_index, by_file)
            if doc is not None:
                tree.objects.append(
                    K8sObject(
                        data=data,
                        path=doc.path,
                        display=doc.display,
                        doc=doc,
                        fallback=doc.locate(),
                        unit=f"kustomize:{kdir}",
                        kustomization=kdir,
                    )
                )
            else:
                tree.objects.append(
                    K8sObject(
                        data=data,
                        path=k.file,
                        display=kdisplay,
                        doc=None,
                        fallback=(1, 1),
                        unit=f"kustomize:{kdir}",
                        kustomization=kdir,
                    )
                )


def _source_for(
    data: dict[str, Any],
    k: Kustomization,
    index: dict[tuple[str, str], list[SourceDoc]],
    by_file: dict[Path, list[SourceDoc]],
) -> SourceDoc | None:
    kind, name = str(data.get("kind")), _name(data)
    cands = [d for d in index.get((kind, name), []) if d.path in k.resource_files]
    if cands:
        return cands[0]
    # namePrefix/nameSuffix: the longest source name of that kind contained in the rendered name
    best: SourceDoc | None = None
    for path in k.resource_files:
        for d in by_file.get(path, []):
            cname = _name(d.data)
            if (
                str(d.data.get("kind")) == kind
                and cname
                and cname in name
                and (best is None or len(cname) > len(_name(best.data)))
            ):
                best = d
    return best


def _duplicates(tree: Tree, graph: argocd.AppGraph) -> None:
    """Two definitions of one object in one render, or in one directory that an Application deploys
    (directories no Application deploys, like per-cluster bootstrap roots, hold alternatives)."""
    seen: dict[tuple[str, str, str, str, str | None, str], K8sObject] = {}
    for obj in tree.objects:
        if obj.kustomization is None and graph.apps and id(obj) not in graph.deployed_by:
            continue
        key = (obj.unit, obj.group, obj.kind, obj.name, obj.namespace, "")
        first = seen.get(key)
        if first is None:
            seen[key] = obj
        elif first.doc is not obj.doc or first.doc is None:
            tree.report(
                "k8s-duplicate-object",
                obj,
                ("metadata", "name"),
                f"{obj.ident} is defined twice (first at {first.display}:{first.at()[0]})",
            )


def _validate_schemas(tree: Tree, crds: CrdStore, core: CoreSchemas, coverage: Coverage) -> None:
    cel_memo: dict[tuple[str, str], CelOutcome] = {}
    # Overlays render the same object for several environments: validate each distinct body once.
    seen: dict[str, list[SchemaError]] = {}
    for obj in tree.objects:
        key = json.dumps(obj.data, sort_keys=True, separators=(",", ":"), default=str)
        errors = seen.get(key)
        if errors is None:
            errors = _validate_one(tree, obj, crds, core, coverage, cel_memo)
            if errors is None:
                continue
            seen[key] = errors
        elif is_builtin_group(obj.group):
            coverage.schema_core += 1
        else:
            coverage.schema_crd += 1
        for err in errors:
            tree.report(err.rule_id, obj, err.path, err.message)


def _validate_one(
    tree: Tree,
    obj: K8sObject,
    crds: CrdStore,
    core: CoreSchemas,
    coverage: Coverage,
    cel_memo: dict[tuple[str, str], CelOutcome],
) -> list[SchemaError] | None:
    """Schema errors of one object; None when it could not be validated (already reported)."""
    group, version = obj.group, obj.api_version.rpartition("/")[2]
    if is_builtin_group(group):
        errors = core.validate(obj.data)
        if errors is None:
            tree.report(
                "schema-version-not-served",
                obj,
                ("apiVersion",),
                f"{obj.api_version} {obj.kind} does not exist in Kubernetes {core.version}",
            )
            return None
        coverage.schema_core += 1
        return errors
    crd = crds.lookup(group, obj.kind)
    if crd is None:
        if not tree.config.schema_allowed_missing(group, obj.kind):
            tree.report(
                "schema-missing",
                obj,
                ("kind",),
                f"no CRD schema for {group}/{obj.kind}: add its CRD with --crds or list it in "
                "allow_missing_schema",
            )
        return None
    validator = crd.served.get(version)
    if validator is None:
        tree.report(
            "schema-version-not-served",
            obj,
            ("apiVersion",),
            f"CRD {obj.kind}.{group} ({crd.source}) serves {sorted(crd.served)}, not {version}",
        )
        return None
    result = validator.validate(obj.data, cel_memo)
    coverage.schema_crd += 1
    coverage.cel_rules_evaluated += result.cel_evaluated
    coverage.cel_rules_skipped.extend(f"{group}/{obj.kind}: {s}" for s in result.cel_skipped)
    return result.errors
