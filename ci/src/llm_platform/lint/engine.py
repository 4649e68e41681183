"""`run_lint`: load, render, validate and cross-check a GitOps tree; one report, nothing printed."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_platform.cache_root import cache_root
from llm_platform.documents import file_type
from llm_platform.errors import InputError
from llm_platform.lint import argocd, helm, placeholders, policy, rendered, xref
from llm_platform.lint.cel import CelOutcome
from llm_platform.lint.config import LintConfig
from llm_platform.lint.model import Coverage, Finding, LintReport
from llm_platform.lint.render import (
    KUSTOMIZATION_NAMES,
    Kustomization,
    Renderer,
    cycles,
    discover,
    real_path,
)
from llm_platform.lint.schemas import CoreSchemas, CrdStore, is_builtin_group, resolve_kubernetes_version
from llm_platform.lint.sources import SourceDoc, SourceFile, finding, load_file
from llm_platform.lint.structural import SchemaError
from llm_platform.lint.tree import K8sObject, Tree, display_path
from llm_platform.oci import atomic_write

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
    render_charts: bool = False,
    helm_options: helm.HelmOptions | None = None,
) -> LintReport:
    """Lint `paths` (directories or files). Raises InputError/ToolError when it cannot run at all.
    `render_charts`: render each Helm chart source of each Application (`helm_options`: lock, caches,
    mirror) and lint the rendered objects too; otherwise only those of Applications annotated
    `lint.llm-platform.io/render-charts: "true"`, and the coverage lists the charts not rendered."""
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
            [
                d
                for d in argocd.kustomize_targets(tree)
                if d in tree.kustomizations and d not in tree.rendered
            ],
            tree.kustomizations,
        )
        _collect(tree, renderer, coverage)
    finally:
        renderer.close()
    # Opt-in: every Application with --render-charts, else those annotated lint.llm-platform.io/render-charts.
    helm.render_charts(
        tree, argocd.our_repos(tree), version, helm_options or helm.HelmOptions(), every_app=render_charts
    )
    coverage.objects = len(tree.objects)
    files = tree.files

    for obj in tree.objects:
        if obj.kind == "CustomResourceDefinition" and obj.group == "apiextensions.k8s.io":
            crds.add(obj.data, obj.display)
    validations = _ValidationCache(
        (cache_dir if cache_dir is not None else default_cache_dir()) / "validations.json"
    )
    _validate_schemas(tree, crds, _core(version), coverage, validations)
    validations.save()
    graph = argocd.check(tree, coverage)
    _duplicates(tree, graph)
    policy.check(tree)
    rendered.check(tree, graph)
    placeholders.check(tree)
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
    coverage.charts_rendered = sorted(set(coverage.charts_rendered))
    coverage.accepted_unpinned_images = sorted(tree.accepted_unpinned)
    coverage.unused_accepted_images = sorted(
        {e.image for e in config.accept_unpinned_images} - tree.accepted_unpinned
    )
    return LintReport(
        findings=sorted(kept.values(), key=Finding.sort_key), coverage=coverage, kubernetes_version=version
    )


def _load(
    roots: list[Path], cwd: Path, repo_root: Path, config: LintConfig, renderer: Renderer, coverage: Coverage
) -> Tree:
    """Load kustomizations first and start rendering them, then load every other file meanwhile."""
    paths, refused = _yaml_files(roots, [repo_root, *roots], cwd)
    files: dict[Path, SourceFile] = {}
    kdata: dict[Path, dict[str, Any]] = {}
    for path in paths:
        if path.name in KUSTOMIZATION_NAMES:
            files[path] = sf = load_file(path, display_path(path, cwd))
            if sf.docs and isinstance(sf.docs[0].data, dict):
                kdata[path] = sf.docs[0].data
    kusts = discover(kdata)
    included = set().union(*(k.child_dirs for k in kusts.values())) if kusts else set()
    regular = set(paths)  # what the walk found to be regular files: not looked at again
    renderer.start([d for d in kusts if d not in included], kusts, regular)
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
        findings=refused,
    )
    _report_cycles(tree, kusts)
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


def _is_manifest_name(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or name == "Kustomization"


def _yaml_files(roots: list[Path], inside: list[Path], cwd: Path) -> tuple[list[Path], list[Finding]]:
    """The manifest files under `roots` (resolved), and findings for what is never read: entries named
    like manifests that are not regular files (a FIFO would block the read for ever), symlink loops,
    and symlinks that point outside `inside` (the repository and the roots). Hidden directories and
    symlinked directories are not entered."""
    out: set[Path] = set()
    findings: list[Finding] = []
    bounds = [real_path(p) for p in inside]

    def refuse(rule_id: str, path: Path, message: str) -> None:
        # Named as the entry itself (its directory resolved), never as where a symlink points.
        entry_path = real_path(path.parent) / path.name
        try:
            display = entry_path.relative_to(real_path(cwd)).as_posix()
        except ValueError:
            display = entry_path.as_posix()
        findings.append(finding(rule_id, display, 1, 1, message))

    def entry(path: Path, is_link: bool, mode: int) -> None:
        """One directory entry that is not a directory (`mode`: its lstat mode)."""
        if is_link:
            target = real_path(path)
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                mode = 0  # dangling: a manifest name is read (and reported as missing) below
            except OSError:
                refuse(
                    "yaml-symlink-loop", path, f"symlink loop ({os.readlink(path)}): never resolves, not read"
                )
                return
            if not any(target.is_relative_to(b) for b in bounds):
                refuse(
                    "yaml-symlink-escape",
                    path,
                    f"symlink to {target.as_posix()}, outside the repository: not read",
                )
                return
            if stat.S_ISDIR(mode):
                return  # symlinked directories are not entered
            if not _is_manifest_name(path.name):
                return
            if mode and not stat.S_ISREG(mode):
                refuse(
                    "yaml-not-regular-file",
                    path,
                    f"symlink to {file_type(mode)}, not a regular file: not read",
                )
                return
            out.add(target)
        elif _is_manifest_name(path.name):
            if not stat.S_ISREG(mode):
                refuse("yaml-not-regular-file", path, f"{file_type(mode)}, not a regular file: not read")
                return
            out.add(real_path(path))

    for root in roots:
        try:
            st = os.lstat(root)
        except OSError:
            continue
        if not os.path.isdir(root):
            entry(root, stat.S_ISLNK(st.st_mode), st.st_mode)
            continue
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name, reverse=True)
            except OSError:
                continue
            for e in entries:
                if e.name.startswith(".") and not e.is_file(follow_symlinks=False):
                    continue  # .git and friends
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(e.path))
                else:
                    entry(Path(e.path), stat.S_ISLNK(st.st_mode), st.st_mode)
    return sorted(out), findings


def _report_cycles(tree: Tree, kusts: dict[Path, Kustomization]) -> None:
    """A kustomization cycle: reported once, at the reference that closes it, naming every directory."""
    for cycle in cycles(kusts):
        names = [tree.display(d) for d in cycle]
        first, nxt = kusts[cycle[0]], cycle[1] if len(cycle) > 1 else cycle[0]
        field, index = first.includes[nxt]
        sf = tree.files.get(first.file)
        line, col = sf.docs[0].locate((field, index)) if sf and sf.docs else (1, 1)
        if len(cycle) == 1:
            message = f"kustomization cycle: {names[0]} includes itself"
        else:
            chain = ", which includes ".join(names[1:])
            message = f"kustomization cycle: {names[0]} includes {chain}, which includes {names[0]} again"
        tree.report_at("render-kustomize-cycle", tree.display(first.file), line, col, message)


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
            message = result.error if result.refused else f"kustomize build failed: {result.error}"
            tree.report_at("render-kustomize", kdisplay, line, col, message)
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


def _validate_schemas(
    tree: Tree, crds: CrdStore, core: CoreSchemas, coverage: Coverage, cache: _ValidationCache
) -> None:
    cel_memo: dict[tuple[str, str], CelOutcome] = {}
    # Overlays render the same object for several environments: validate each distinct body once.
    seen: dict[str, list[SchemaError]] = {}
    for obj in tree.objects:
        key = json.dumps(obj.data, sort_keys=True, separators=(",", ":"), default=str)
        errors = seen.get(key)
        if errors is None:
            errors = _validate_cached(tree, obj, key, crds, core, coverage, cel_memo, cache)
            if errors is None:
                continue
            seen[key] = errors
        elif is_builtin_group(obj.group):
            coverage.schema_core += 1
        else:
            coverage.schema_crd += 1
        for err in errors:
            tree.report(err.rule_id, obj, err.path, err.message)


_VALIDATION_CACHE_FORMAT = 1
_VALIDATION_CACHE_ENTRIES = 50_000  # oldest dropped beyond this: a bound on the file, not a correctness limit
_VALIDATOR_MODULES = ("structural.py", "schemas.py", "cel.py", "engine.py")


class _ValidationCache:
    """Schema and CEL results of object bodies across lint runs (the objects rendered from an unchanged
    chart are the same every time, and validating them is most of a warm lint). Keyed by the body, the
    schema it was checked against and the validator's own code, so a change to any of them misses."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.dirty = False
        code = hashlib.sha256()
        for name in _VALIDATOR_MODULES:
            code.update((Path(__file__).parent / name).read_bytes())
        self.code = code.hexdigest()[:16]
        self._schema_ids: dict[int, str] = {}
        if path is None:
            return
        try:
            raw = path.read_bytes()
            data = json.loads(raw) if len(raw) < 256 * 1024 * 1024 else None
        except (OSError, ValueError):
            data = None  # a cache that cannot be read costs time only
        if not isinstance(data, dict) or data.get("format") != _VALIDATION_CACHE_FORMAT:
            return
        if data.get("code") == self.code and isinstance(data.get("entries"), dict):
            self.entries = data["entries"]

    def schema_id(self, schema: Any) -> str:
        sid = self._schema_ids.get(id(schema))
        if sid is None:
            blob = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str).encode()
            sid = self._schema_ids[id(schema)] = hashlib.sha256(blob).hexdigest()[:32]
        return sid

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        entries = self.entries
        if len(entries) > _VALIDATION_CACHE_ENTRIES:
            entries = dict(list(entries.items())[-_VALIDATION_CACHE_ENTRIES:])
        doc = {"format": _VALIDATION_CACHE_FORMAT, "code": self.code, "entries": entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(doc, separators=(",", ":")).encode())
        except OSError:
            pass


def _validate_cached(
    tree: Tree,
    obj: K8sObject,
    body: str,
    crds: CrdStore,
    core: CoreSchemas,
    coverage: Coverage,
    cel_memo: dict[tuple[str, str], CelOutcome],
    cache: _ValidationCache,
) -> list[SchemaError] | None:
    """`_validate_one`, answered from the cache when this body was validated against this schema before."""
    group, version = obj.group, obj.api_version.rpartition("/")[2]
    schema_key: str | None = None
    if is_builtin_group(group):
        schema_key = f"core:{core.version}"
    else:
        crd = crds.lookup(group, obj.kind)
        validator = crd.served.get(version) if crd is not None else None
        if validator is not None:
            schema_key = f"crd:{cache.schema_id(validator.schema)}"
    if schema_key is None:
        return _validate_one(tree, obj, crds, core, coverage, cel_memo)
    key = hashlib.sha256(f"{schema_key}\0{body}".encode()).hexdigest()
    hit = cache.entries.get(key)
    if isinstance(hit, dict):
        if hit.get("missing_version"):
            return _validate_one(tree, obj, crds, core, coverage, cel_memo)
        if is_builtin_group(group):
            coverage.schema_core += 1
        else:
            coverage.schema_crd += 1
            coverage.cel_rules_evaluated += int(hit.get("cel_evaluated", 0))
            coverage.cel_rules_skipped.extend(f"{group}/{obj.kind}: {s}" for s in hit.get("cel_skipped", []))
        return [SchemaError(e[0], tuple(e[1]), e[2]) for e in hit.get("errors", [])]
    before = (coverage.cel_rules_evaluated, len(coverage.cel_rules_skipped))
    errors = _validate_one(tree, obj, crds, core, coverage, cel_memo)
    if errors is None:
        cache.entries[key] = {"missing_version": True}
    else:
        prefix = f"{group}/{obj.kind}: "
        cache.entries[key] = {
            "errors": [[e.rule_id, list(e.path), e.message] for e in errors],
            "cel_evaluated": coverage.cel_rules_evaluated - before[0],
            "cel_skipped": [s.removeprefix(prefix) for s in coverage.cel_rules_skipped[before[1] :]],
        }
    cache.dirty = True
    return errors


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
