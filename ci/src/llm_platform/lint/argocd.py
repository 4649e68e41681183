"""Argo CD rules: Application structure, the app-of-apps graph, sync waves, CRD ordering, chart pins."""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_platform.lint.model import Coverage
from llm_platform.lint.render import real_path
from llm_platform.lint.schemas import is_builtin_group
from llm_platform.lint.sources import JsonPath
from llm_platform.lint.tree import K8sObject, Tree

WAVE = "argocd.argoproj.io/sync-wave"
PROVIDES_ANNOTATION = "lint.llm-platform.io/provides-crds"
HEALTH_KEY = "resource.customizations.health.argoproj.io_Application"
_ATOI = re.compile(r"[+-]?[0-9]+")
_EXACT_VERSION = re.compile(r"v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?")
SYNC_OPTIONS = {
    "Validate",
    "CreateNamespace",
    "PrunePropagationPolicy",
    "PruneLast",
    "ApplyOutOfSyncOnly",
    "RespectIgnoreDifferences",
    "ServerSideApply",
    "Replace",
    "FailOnSharedResource",
    "SkipDryRunOnMissingResource",
    "Prune",
    "Delete",
    "Force",
    "ClientSideApplyMigration",
    "SkipSchemaValidation",
}
# Charts whose CRDs ship inside them, by chart name: the CRD groups they install.
CHART_CRDS: dict[str, list[str]] = {
    "argo-cd": ["argoproj.io"],
    "keda": ["keda.sh"],
    "kserve-crd": ["serving.kserve.io"],
    "kserve": ["serving.kserve.io"],
    "kueue": ["kueue.x-k8s.io"],
    "external-secrets": ["external-secrets.io"],
    "kube-prometheus-stack": ["monitoring.coreos.com"],
    "prometheus-operator-crds": ["monitoring.coreos.com"],
    "agentgateway-crds": ["agentgateway.dev"],
    "cert-manager": ["cert-manager.io"],
    "lws": ["leaderworkerset.x-k8s.io"],
    "leaderworkerset": ["leaderworkerset.x-k8s.io"],
}
# Charts that create custom resources of these groups (so they need the CRDs first).
CHART_USES: dict[str, list[str]] = {
    "inferencepool": ["inference.networking.k8s.io"],
}
# Charts with CRDs larger than the 262144-byte last-applied annotation: client-side apply fails.
SSA_CHARTS = {
    "kube-prometheus-stack",
    "prometheus-operator-crds",
    "kueue",
    "keda",
    "external-secrets",
    "kserve-crd",
    "agentgateway-crds",
    "argo-cd",
    "lws",
    "leaderworkerset",
}
_ANNOTATION_LIMIT = 262144


@dataclass(eq=False)
class AppInfo:
    obj: K8sObject
    sources: list[tuple[dict[str, Any], JsonPath]]
    wave: int
    deploys: list[K8sObject] = field(default_factory=list)
    children: list[AppInfo] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)
    charts: list[str] = field(default_factory=list)

    @property
    def dest_namespace(self) -> str | None:
        ns = (self.obj.spec.get("destination") or {}).get("namespace")
        return str(ns) if ns else None

    @property
    def sync_options(self) -> list[str]:
        opts = (self.obj.spec.get("syncPolicy") or {}).get("syncOptions") or []
        return [str(o) for o in opts]

    def has_option(self, option: str) -> bool:
        return option in self.sync_options


@dataclass
class AppGraph:
    apps: list[AppInfo] = field(default_factory=list)
    deployed_by: dict[int, AppInfo] = field(default_factory=dict)
    helm_namespaces: set[str] = field(default_factory=set)  # namespaces where unrendered charts add objects

    def namespace_of(self, obj: K8sObject) -> str | None:
        if obj.namespace:
            return obj.namespace
        app = self.deployed_by.get(id(obj))
        return app.dest_namespace if app else None


def application_sources(app: K8sObject) -> list[tuple[dict[str, Any], JsonPath]]:
    spec = app.spec
    if isinstance(spec.get("sources"), list):
        return [(s, ("spec", "sources", i)) for i, s in enumerate(spec["sources"]) if isinstance(s, dict)]
    if isinstance(spec.get("source"), dict):
        return [(spec["source"], ("spec", "source"))]
    return []


def path_index(app: AppInfo, path: JsonPath) -> int:
    """The index of the source at `path` among the Application's sources."""
    return next((i for i, (_, p) in enumerate(app.sources) if p == path), -1)


def our_repos(tree: Tree) -> set[str]:
    return _our_repos(tree)


def is_application(obj: K8sObject) -> bool:
    return obj.kind == "Application" and obj.group == "argoproj.io"


def _our_repos(tree: Tree) -> set[str]:
    """The repoURLs that mean this checkout: the lint config's `repo_urls`, else the one whose `path:`
    sources exist here most often, else the one most `path:`/`ref:` sources name."""
    if tree.config.repo_urls:
        return {normalise_repo_url(u) for u in tree.config.repo_urls}
    present = Counter(
        normalise_repo_url(str(s.get("repoURL", "")))
        for o in tree.objects
        if is_application(o)
        for s, _ in application_sources(o)
        if isinstance(s.get("path"), str) and s["path"].strip("/") and (tree.repo_root / s["path"]).exists()
    )
    if present:
        return {present.most_common(1)[0][0]}
    counts = Counter(
        normalise_repo_url(str(s.get("repoURL", "")))
        for o in tree.objects
        if is_application(o)
        for s, _ in application_sources(o)
        if s.get("path") is not None or s.get("ref")
    )
    return {counts.most_common(1)[0][0]} if counts else set()


def normalise_repo_url(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def kustomize_targets(tree: Tree) -> list[Path]:
    ours = _our_repos(tree)
    out = []
    for o in tree.objects:
        if is_application(o):
            for s, _ in application_sources(o):
                if s.get("path") is not None and normalise_repo_url(str(s.get("repoURL", ""))) in ours:
                    out.append(real_path(tree.repo_root / str(s["path"])))
    return out


def _wave(tree: Tree, obj: K8sObject) -> int:
    raw = obj.annotations.get(WAVE)
    if raw is None:
        return 0
    text = str(raw)
    if isinstance(raw, bool) or not _ATOI.fullmatch(text):
        tree.report(
            "argocd-sync-wave-not-integer",
            obj,
            ("metadata", "annotations", WAVE),
            f"sync-wave {text!r} is not an integer: Argo CD silently treats it as wave 0",
        )
        return 0
    return int(text)


def check(tree: Tree, coverage: Coverage) -> AppGraph:
    graph = AppGraph()
    waves = {id(o): _wave(tree, o) for o in tree.objects}
    ours = _our_repos(tree)
    projects = {o.name: o for o in tree.objects if o.kind == "AppProject" and o.group == "argoproj.io"}
    apps = [AppInfo(o, application_sources(o), waves[id(o)]) for o in tree.objects if is_application(o)]
    graph.apps = apps
    index = _build_index(tree)
    for app in apps:
        _structure(tree, app)
        _project(tree, app, projects)
        for src, path in app.sources:
            _source(tree, app, src, path, ours, graph, coverage, index)
    app_of = {id(a.obj): a for a in apps}
    for app in apps:
        for obj in app.deploys:
            graph.deployed_by.setdefault(id(obj), app)
            child = app_of.get(id(obj))
            if child is not None:
                app.children.append(child)
    if apps:
        _orphans(tree, graph)
        _reached_twice(tree, graph)
        _health(tree, graph)
        _crd_order(tree, graph)
        _replicas_selfheal(tree, graph)
    for app in apps:
        _ssa(tree, app)
    check_sync_options(tree)
    return graph


def _structure(tree: Tree, app: AppInfo) -> None:
    spec, obj = app.obj.spec, app.obj
    if "source" in spec and "sources" in spec:
        tree.report(
            "argocd-app-source-invalid",
            obj,
            ("spec", "sources"),
            "both spec.source and spec.sources are set: Argo CD ignores spec.source",
        )
    if not app.sources:
        tree.report(
            "argocd-app-source-invalid", obj, ("spec",), "Application has no spec.source or spec.sources"
        )
    for src, path in app.sources:
        kinds = [k for k in ("path", "chart") if src.get(k) is not None]
        if not src.get("repoURL"):
            tree.report("argocd-app-source-invalid", obj, path, "source has no repoURL")
        if len(kinds) == 2:
            tree.report("argocd-app-source-invalid", obj, (*path, "chart"), "source sets both path and chart")
        if src.get("ref") and src.get("chart"):
            tree.report(
                "argocd-app-source-invalid", obj, (*path, "ref"), "a ref source cannot also set chart"
            )
        if not kinds and not src.get("ref"):
            tree.report("argocd-app-source-invalid", obj, path, "source needs a path, a chart or a ref")
        if src.get("chart") and str(src.get("repoURL", "")).startswith("oci://"):
            tree.report(
                "argocd-app-source-invalid",
                obj,
                (*path, "repoURL"),
                "OCI Helm repoURL is written without oci:// in Argo CD",
            )
    dest = spec.get("destination")
    if not isinstance(dest, dict):
        tree.report("argocd-app-destination-invalid", obj, ("spec",), "Application has no spec.destination")
        return
    if ("server" in dest) == ("name" in dest):
        tree.report(
            "argocd-app-destination-invalid",
            obj,
            ("spec", "destination"),
            "destination needs exactly one of server and name",
        )
    if not dest.get("namespace"):
        tree.report(
            "argocd-app-destination-invalid", obj, ("spec", "destination"), "destination has no namespace"
        )


def _project(tree: Tree, app: AppInfo, projects: dict[str, K8sObject]) -> None:
    name = str(app.obj.spec.get("project", ""))
    if name in ("", "default"):
        if not name:
            tree.report("argocd-app-project-missing", app.obj, ("spec",), "Application has no spec.project")
        return
    proj = projects.get(name)
    if proj is None:
        tree.report(
            "argocd-app-project-missing",
            app.obj,
            ("spec", "project"),
            f"AppProject {name!r} is not defined in the tree",
        )
        return
    pspec = proj.spec
    repos = [str(r) for r in pspec.get("sourceRepos") or []]
    for src, path in app.sources:
        url = str(src.get("repoURL", ""))
        if not _glob_allowed(url, repos):
            tree.report(
                "argocd-project-scope",
                app.obj,
                (*path, "repoURL"),
                f"repoURL {url!r} is not in AppProject {name!r} sourceRepos",
            )
    dest = app.obj.spec.get("destination") or {}
    allowed = False
    for d in pspec.get("destinations") or []:
        if not isinstance(d, dict):
            continue
        target_ok = (
            fnmatch.fnmatch(str(dest.get("server", "")), str(d.get("server", "*")))
            if "server" in dest
            else fnmatch.fnmatch(str(dest.get("name", "")), str(d.get("name", "*")))
        )
        if target_ok and fnmatch.fnmatch(str(dest.get("namespace", "")), str(d.get("namespace", "*"))):
            allowed = True
    if not allowed:
        tree.report(
            "argocd-project-scope",
            app.obj,
            ("spec", "destination"),
            f"destination {dest.get('namespace')!r} is not allowed by AppProject {name!r}",
        )


def _glob_allowed(value: str, patterns: list[str]) -> bool:
    if any(p.startswith("!") and fnmatch.fnmatch(value, p[1:]) for p in patterns):
        return False
    return any(not p.startswith("!") and fnmatch.fnmatch(value, p) for p in patterns)


def _source(
    tree: Tree,
    app: AppInfo,
    src: dict[str, Any],
    path: JsonPath,
    ours: set[str],
    graph: AppGraph,
    coverage: Coverage,
    index: _ObjectIndex,
) -> None:
    url = str(src.get("repoURL", ""))
    chart = src.get("chart")
    if chart is not None:
        app.charts.append(str(chart))
        rev = str(src.get("targetRevision", ""))
        if not _EXACT_VERSION.fullmatch(rev):
            tree.report(
                "argocd-chart-not-pinned",
                app.obj,
                (*path, "targetRevision") if rev else path,
                f"chart {chart} targetRevision {rev or '(none)'!r} is not an exact version",
            )
        key = (id(app.obj), path_index(app, path))
        rendered = tree.helm_renders.get(key)
        if rendered is not None:
            app.deploys.extend(rendered)
            coverage.charts_rendered.append(f"{app.obj.ident}: Helm chart {url}/{chart}@{rev}")
        else:
            reason = tree.helm_not_rendered.get(key, "Helm charts are not rendered")
            coverage.not_rendered.append(f"{app.obj.ident}: Helm chart {url}/{chart}@{rev} ({reason})")
            if app.dest_namespace:
                graph.helm_namespaces.add(app.dest_namespace)
    _values(tree, app, src, path, ours)
    if src.get("path") is None or normalise_repo_url(url) not in ours:
        return
    target = real_path(tree.repo_root / str(src["path"]))
    if not target.is_dir():
        tree.report(
            "argocd-app-path-missing",
            app.obj,
            (*path, "path"),
            f"path {src['path']!r} does not exist in the repository ({tree.display(target)})",
        )
        return
    k = tree.kustomizations.get(target)
    if k is not None:
        app.deploys.extend(index.rendered.get(target, []))
        app.files |= {k.file} | k.resource_files | k.patch_files
        for d in k.child_dirs:
            child = tree.kustomizations.get(d)
            if child is not None:
                app.files.add(child.file)
        return
    recurse = bool((src.get("directory") or {}).get("recurse"))
    dirs = [d for d in index.files_in if d == target or (recurse and target in d.parents)]
    for d in dirs:
        app.deploys.extend(index.raw_in.get(d, []))
        app.files |= set(index.files_in[d])


@dataclass
class _ObjectIndex:
    rendered: dict[Path, list[K8sObject]] = field(default_factory=dict)  # by kustomization dir
    raw_in: dict[Path, list[K8sObject]] = field(default_factory=dict)  # un-kustomized objects by directory
    files_in: dict[Path, list[Path]] = field(default_factory=dict)  # files by directory


def _build_index(tree: Tree) -> _ObjectIndex:
    """Objects grouped by where they come from, built once (keeps the app graph linear in the tree)."""
    index = _ObjectIndex()
    for o in tree.objects:
        if o.kustomization is not None:
            index.rendered.setdefault(o.kustomization, []).append(o)
        else:
            index.raw_in.setdefault(o.path.parent, []).append(o)
    for p in tree.files:
        index.files_in.setdefault(p.parent, []).append(p)
    return index


def _values(tree: Tree, app: AppInfo, src: dict[str, Any], path: JsonPath, ours: set[str]) -> None:
    helm = src.get("helm")
    if not isinstance(helm, dict):
        return
    refs = {str(s.get("ref")): s for s, _ in app.sources if s.get("ref")}
    for i, vf in enumerate(helm.get("valueFiles") or []):
        vf = str(vf)
        where = (*path, "helm", "valueFiles", i)
        if vf.startswith("$"):
            ref, _, rel = vf[1:].partition("/")
            ref_src = refs.get(ref)
            if ref_src is None:
                tree.report(
                    "argocd-values-missing", app.obj, where, f"value file {vf!r}: no source has ref: {ref}"
                )
                continue
            if (
                normalise_repo_url(str(ref_src.get("repoURL", ""))) in ours
                and not (tree.repo_root / rel).is_file()
            ):
                tree.report(
                    "argocd-values-missing",
                    app.obj,
                    where,
                    f"value file {vf!r} does not exist in the repository",
                )
        elif (
            src.get("path") is not None
            and normalise_repo_url(str(src.get("repoURL", ""))) in ours
            and not (tree.repo_root / str(src["path"]) / vf).is_file()
        ):
            tree.report("argocd-values-missing", app.obj, where, f"value file {vf!r} does not exist")


def _orphans(tree: Tree, graph: AppGraph) -> None:
    reached: set[Path] = set().union(*(a.files for a in graph.apps))
    reported: set[Path] = set()
    for obj in tree.objects:
        if is_application(obj) and id(obj) not in graph.deployed_by:
            continue  # a root Application: applied by hand or by the bootstrap
        if obj.helm is not None or obj.path in reached or obj.path in reported:
            continue
        if obj.kustomization is not None:
            k = tree.kustomizations.get(obj.kustomization)
            if k is not None and k.file in reached:
                continue
        reported.add(obj.path)
        tree.report("argocd-app-orphan", obj, (), f"no Application deploys {obj.display} ({obj.ident})")


def _reached_twice(tree: Tree, graph: AppGraph) -> None:
    roots = [a for a in graph.apps if id(a.obj) not in graph.deployed_by]
    for root in roots:
        seen_apps: set[tuple[str, str]] = set()
        seen_paths: dict[tuple[str, str], AppInfo] = {}
        stack = [root]
        visited: set[int] = set()
        while stack:
            app = stack.pop()
            if id(app) in visited:
                continue
            visited.add(id(app))
            key = (app.obj.namespace or "", app.obj.name)
            if key in seen_apps:
                tree.report(
                    "argocd-app-reached-twice",
                    app.obj,
                    ("metadata", "name"),
                    f"Application {app.obj.name!r} is reached twice from root {root.obj.name!r}",
                )
            seen_apps.add(key)
            for src, path in app.sources:
                if src.get("path") is None and src.get("chart") is None:
                    continue
                pkey = (
                    normalise_repo_url(str(src.get("repoURL", ""))),
                    str(src.get("path") or src.get("chart")),
                )
                other = seen_paths.get(pkey)
                if other is not None and other is not app:
                    tree.report(
                        "argocd-app-reached-twice",
                        app.obj,
                        (*path, "path" if src.get("path") else "chart"),
                        f"{pkey[1]!r} is deployed by both {other.obj.name!r} and {app.obj.name!r}",
                    )
                seen_paths.setdefault(pkey, app)
            stack.extend(reversed(app.children))


def _health(tree: Tree, graph: AppGraph) -> None:
    waved = [a for a in graph.apps if id(a.obj) in graph.deployed_by and WAVE in a.obj.annotations]
    if not waved:
        return
    for cm in tree.of_kind("ConfigMap"):
        if cm.name == "argocd-cm":
            data = cm.data.get("data") or {}
            if HEALTH_KEY in data or "argoproj.io/Application" in str(
                data.get("resource.customizations", "")
            ):
                return
    # The argo-cd Helm chart writes argocd-cm from values (configs.cm): look in values files and inline values.
    inline = [
        s.get("helm", {}).get("valuesObject") or s.get("helm", {}).get("values")
        for a in graph.apps
        for s, _ in a.sources
        if isinstance(s.get("helm"), dict)
    ]
    if any(_has_key(doc.data, HEALTH_KEY) for doc in tree.value_docs) or any(
        _has_key(v, HEALTH_KEY) or (isinstance(v, str) and HEALTH_KEY in v) for v in inline
    ):
        return
    first = min(waved, key=lambda a: (a.obj.display, a.obj.at()[0]))
    tree.report(
        "argocd-app-health-missing",
        first.obj,
        ("metadata", "annotations", WAVE),
        f"child Applications use sync waves but no argocd-cm in the tree sets {HEALTH_KEY}: "
        "waves will not wait for child health",
    )


def _has_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_has_key(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_has_key(v, key) for v in node)
    return False


def _provided_groups(tree: Tree, app: AppInfo) -> set[str]:
    groups = {str(o.spec.get("group") or "") for o in app.deploys if o.kind == "CustomResourceDefinition"}
    for chart in app.charts:
        groups |= set(CHART_CRDS.get(chart, [])) | set(tree.config.provides_crds.get(chart, []))
    raw = app.obj.annotations.get(PROVIDES_ANNOTATION)
    if isinstance(raw, str):
        groups |= {g.strip() for g in raw.split(",") if g.strip()}
    return groups - {""}


def _crd_order(tree: Tree, graph: AppGraph) -> None:
    providers: dict[str, list[AppInfo]] = {}
    for app in graph.apps:
        for g in _provided_groups(tree, app):
            providers.setdefault(g, []).append(app)
    for app in graph.apps:
        used: set[str] = {
            o.group
            for o in app.deploys
            if not is_builtin_group(o.group) and o.kind != "CustomResourceDefinition"
        }
        for chart in app.charts:
            used |= set(CHART_USES.get(chart, []))
        if app.has_option("SkipDryRunOnMissingResource=true"):
            continue
        for g in sorted(used):
            for prov in providers.get(g, []):
                # The same Application (rendered once per overlay that includes it) is no other provider.
                same = (prov.obj.namespace, prov.obj.name) == (app.obj.namespace, app.obj.name)
                if prov is app or same or prov.wave < app.wave:
                    continue
                tree.report(
                    "argocd-crd-order",
                    app.obj,
                    ("metadata", "annotations", WAVE)
                    if WAVE in app.obj.annotations
                    else ("metadata", "name"),
                    f"uses {g} custom resources but syncs in wave {app.wave}, not after "
                    f"{prov.obj.name!r} (wave {prov.wave}) which installs their CRDs",
                )


def _ssa(tree: Tree, app: AppInfo) -> None:
    if app.has_option("ServerSideApply=true") or app.has_option("Replace=true"):
        return
    big = [c for c in app.charts if c in SSA_CHARTS]
    big += [
        o.name
        for o in app.deploys
        if o.kind == "CustomResourceDefinition"
        and len(json.dumps(o.data, separators=(",", ":"))) > _ANNOTATION_LIMIT
    ]
    if big:
        tree.report(
            "argocd-server-side-apply-missing",
            app.obj,
            ("spec", "syncPolicy", "syncOptions") if app.sync_options else ("spec",),
            f"{', '.join(sorted(set(big)))} ships CRDs too large for client-side apply: "
            "add syncOptions ServerSideApply=true",
        )


def check_sync_options(tree: Tree) -> None:
    for obj in tree.objects:
        if not is_application(obj):
            continue
        opts = (obj.spec.get("syncPolicy") or {}).get("syncOptions") or []
        for i, opt in enumerate(opts):
            key, sep, _ = str(opt).partition("=")
            if not sep or key not in SYNC_OPTIONS:
                tree.report(
                    "argocd-sync-option-unknown",
                    obj,
                    ("spec", "syncPolicy", "syncOptions", i),
                    f"unknown sync option {opt!r} (Argo CD ignores it; options are Key=value, case sensitive)",
                )


def _replicas_selfheal(tree: Tree, graph: AppGraph) -> None:
    targets = {
        (graph.namespace_of(so), str((so.spec.get("scaleTargetRef") or {}).get("name", "")))
        for so in tree.of_kind("ScaledObject")
    }
    for obj in tree.of_kind("Deployment", "StatefulSet"):
        if "replicas" not in obj.spec:
            continue
        ns = graph.namespace_of(obj)
        if (ns, obj.name) not in targets and (None, obj.name) not in targets:
            continue
        app = graph.deployed_by.get(id(obj))
        if app is None:
            continue
        automated = (app.obj.spec.get("syncPolicy") or {}).get("automated") or {}
        if not isinstance(automated, dict) or not automated.get("selfHeal"):
            continue
        ignored = any(
            "/spec/replicas" in (d.get("jsonPointers") or []) and d.get("kind") in (obj.kind, None)
            for d in app.obj.spec.get("ignoreDifferences") or []
            if isinstance(d, dict)
        )
        if ignored and app.has_option("RespectIgnoreDifferences=true"):
            continue
        tree.report(
            "argocd-replicas-selfheal",
            obj,
            ("spec", "replicas"),
            f"{obj.ident} is scaled by a ScaledObject but pins spec.replicas while {app.obj.name!r} "
            "self-heals: drop replicas or ignoreDifferences /spec/replicas with RespectIgnoreDifferences=true",
        )
