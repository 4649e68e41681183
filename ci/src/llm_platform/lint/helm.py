"""Opt-in (`lint --render-charts`): render each Helm chart source of each Application as Argo CD does.

`helm template <release> <chart.tgz> --namespace <destination> --kube-version <v>.0 --include-crds`,
with the source's `valueFiles` in order (`$ref/...` read from this repository), then its inline
`values`/`valuesObject` as one more file, then its `parameters` (`--set`): Argo CD's precedence. The
chart package comes verified from the chart lock (`charts_lock.ensure_chart`). Rendered objects join
the tree; findings on them point at the Application's chart source and name the chart. Renders are
cached on disk, keyed by sha256 of (chart sha256, values bytes, helm version, kube version, release,
namespace, parameters, API versions). Charts are rendered wave by wave: `--api-versions` names the
CRDs of the tree and of the charts of earlier waves, as the cluster will serve them then."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_platform.errors import PlatformError
from llm_platform.lint.argocd import application_sources, is_application, normalise_repo_url
from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV, ChartLock, ensure_chart, load_lock
from llm_platform.lint.sources import JsonPath
from llm_platform.lint.tree import HelmOrigin, K8sObject, Tree
from llm_platform.pinned_files import file_sha256

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
RENDER_ANNOTATION = "lint.llm-platform.io/render-charts"  # "true": render this Application's charts always
HELM_TEMPLATE_TIMEOUT = 300.0
_RENDER_CACHE_FORMAT = 2  # bump when what is cached (the parsed objects, or the error) changes


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads a plain `=` as the string it is to Kubernetes (not YAML 1.1's value tag)."""


def _plain_scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None


_Loader.add_constructor("tag:yaml.org,2002:value", _plain_scalar)


@dataclass
class HelmOptions:
    """How to render: the chart lock, the package cache and mirror, and the render cache."""

    lock: Path | None = None  # default: <repo root>/gitops/charts.lock.yaml
    chart_cache: Path | None = None  # default: charts_lock's cache
    mirror: Path | None = None
    render_cache: Path | None = None  # default: <cache root>/helm-renders
    helm: str | None = None  # default: helm on PATH


@dataclass
class _Job:
    app: K8sObject
    index: int
    path: JsonPath
    chart: str
    version: str
    release: str
    namespace: str
    value_files: list[tuple[Path, str]]  # (file, display)
    inline: bytes | None
    sets: list[str]
    include_crds: bool
    wave: int = 0
    api_versions: list[str] = field(default_factory=list)
    tgz: Path | None = None
    key: str = ""
    result: dict[str, Any] = field(default_factory=dict)


def _helm_version(helm: str) -> str:
    out = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def render_charts(
    tree: Tree, ours: set[str], kube_version: str, options: HelmOptions, *, every_app: bool = True
) -> None:
    """Render every chart source of every Application in `tree` (of those annotated
    `lint.llm-platform.io/render-charts: "true"` unless `every_app`); add the objects to `tree.objects`,
    the renders to `tree.helm_renders` and what could not be rendered to `tree.helm_not_rendered`. The
    mirror defaults to $LLM_PLATFORM_CHARTS_MIRROR."""
    jobs = _jobs(tree, ours, every_app)
    if not jobs:
        return
    mirror = options.mirror
    if mirror is None and os.environ.get(CHARTS_MIRROR_ENV):
        mirror = Path(os.environ[CHARTS_MIRROR_ENV])
    lock_path = options.lock or tree.repo_root / "gitops" / "charts.lock.yaml"
    lock: ChartLock | None = None
    lock_error = ""
    try:
        lock = load_lock(lock_path)
    except PlatformError as exc:
        lock_error = f"no usable chart lock ({exc})"
    helm = options.helm or shutil.which("helm")
    if helm is None:
        lock_error = lock_error or "helm is not on PATH"
    runnable: list[_Job] = []
    for job in jobs:
        if lock is None or helm is None:
            _skip(tree, job, lock_error)
            continue
        entry = lock.find(job.chart, job.version)
        if entry is None:
            _skip(tree, job, f"chart {job.chart} {job.version} is not in the chart lock")
            continue
        if entry.unavailable:
            _skip(tree, job, f"the chart lock marks it unavailable: {' '.join(entry.unavailable.split())}")
            continue
        try:
            job.tgz = ensure_chart(lock, job.chart, job.version, options.chart_cache, mirror=mirror)
        except PlatformError as exc:
            _skip(tree, job, f"chart package not obtainable: {' '.join(str(exc).split())}")
            continue
        runnable.append(job)
    if not runnable or helm is None:
        return
    cache_dir = options.render_cache
    if cache_dir is None:
        from llm_platform.cache_root import cache_root

        cache_dir = Path(cache_root()) / "helm-renders"
    helm_version = _helm_version(helm)
    # The cluster's API versions at each wave: the tree's own CRDs, then those the charts of earlier
    # waves install (rendered wave by wave, in order).
    api_versions = _crd_api_versions(tree.objects)
    for wave in sorted({job.wave for job in runnable}):
        batch = [job for job in runnable if job.wave == wave]
        for job in batch:
            job.api_versions = sorted(api_versions)
        _render_batch(batch, helm, helm_version, kube_version, cache_dir)
        for job in batch:
            _add(tree, job)
            api_versions |= _crd_api_versions(tree.helm_renders.get((id(job.app), job.index), []))


def _render_batch(
    batch: list[_Job], helm: str, helm_version: str, kube_version: str, cache_dir: Path
) -> None:
    todo: list[_Job] = []
    for job in batch:
        job.key = _cache_key(job, helm_version, kube_version)
        cached = cache_dir / f"{job.key}.json"
        try:
            job.result = json.loads(cached.read_text())
        except (OSError, ValueError):
            todo.append(job)
    todo = list({job.key: job for job in todo}.values())  # one render per distinct key
    if todo:
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            for job, result in zip(
                todo, pool.map(lambda j: _template(helm, j, kube_version), todo), strict=True
            ):
                job.result = result
                _store(cache_dir / f"{job.key}.json", result)
    results = {job.key: job.result for job in batch if job.result}
    for job in batch:
        job.result = results.get(job.key, job.result)


def _crd_api_versions(objects: list[K8sObject]) -> set[str]:
    """`group/version` and `group/version/Kind` of every served version of the CRDs among `objects`."""
    out: set[str] = set()
    for obj in objects:
        if obj.kind != "CustomResourceDefinition" or obj.group != "apiextensions.k8s.io":
            continue
        group, kind = obj.spec.get("group"), (obj.spec.get("names") or {}).get("kind")
        for v in obj.spec.get("versions") or []:
            if isinstance(v, dict) and v.get("name") and v.get("served", True) and group and kind:
                out |= {f"{group}/{v['name']}", f"{group}/{v['name']}/{kind}"}
    return out


def _wave(app: K8sObject) -> int:
    raw = str(app.annotations.get(WAVE_ANNOTATION, "0")).strip()
    try:
        return int(raw)
    except ValueError:
        return 0  # as Argo CD does (argocd-sync-wave-not-integer reports it)


def _jobs(tree: Tree, ours: set[str], every_app: bool) -> list[_Job]:
    jobs: list[_Job] = []
    for app in tree.objects:
        if not is_application(app):
            continue
        if not every_app and str(app.annotations.get(RENDER_ANNOTATION, "")).lower() != "true":
            continue
        sources = application_sources(app)
        refs = {str(s.get("ref")): s for s, _ in sources if s.get("ref")}
        dest = app.spec.get("destination") if isinstance(app.spec.get("destination"), dict) else {}
        namespace = str((dest or {}).get("namespace") or "default")
        for i, (src, path) in enumerate(sources):
            if src.get("chart") is None:
                continue
            helm = src.get("helm") if isinstance(src.get("helm"), dict) else {}
            helm = helm or {}
            job = _Job(
                app=app,
                index=i,
                path=path,
                chart=str(src["chart"]),
                version=str(src.get("targetRevision", "")),
                release=str(helm.get("releaseName") or app.name),
                namespace=namespace,
                value_files=[],
                inline=None,
                sets=[],
                include_crds=not helm.get("skipCrds"),
                wave=_wave(app),
            )
            problem = _values(tree, job, helm, refs, ours)
            if problem:
                _skip(tree, job, problem)
                continue
            jobs.append(job)
    return jobs


def _values(
    tree: Tree, job: _Job, helm: dict[str, Any], refs: dict[str, dict[str, Any]], ours: set[str]
) -> str | None:
    """Fill the job's values (Argo CD's order); a reason when they cannot be read here."""
    ignore_missing = bool(helm.get("ignoreMissingValueFiles"))
    for vf in helm.get("valueFiles") or []:
        vf = str(vf)
        if not vf.startswith("$"):
            return f"value file {vf!r} is inside the chart or another repository (not read here)"
        ref, _, rel = vf[1:].partition("/")
        ref_src = refs.get(ref)
        if ref_src is None or normalise_repo_url(str(ref_src.get("repoURL", ""))) not in ours:
            return f"value file {vf!r} is not in this repository"
        file = tree.repo_root / rel
        if not file.is_file():
            if ignore_missing:
                continue
            return f"value file {vf!r} does not exist"
        job.value_files.append((file, tree.display(file)))
    obj = helm.get("valuesObject")
    if isinstance(obj, dict):
        job.inline = yaml.safe_dump(obj, sort_keys=True).encode()
    elif isinstance(helm.get("values"), str) and helm["values"].strip():
        job.inline = str(helm["values"]).encode()
    for p in helm.get("parameters") or []:
        if isinstance(p, dict) and p.get("name"):
            flag = "--set-string" if p.get("forceString") else "--set"
            job.sets.extend([flag, f"{p['name']}={p.get('value', '')}"])
    return None


def _skip(tree: Tree, job: _Job, reason: str) -> None:
    tree.helm_not_rendered[(id(job.app), job.index)] = reason


def _cache_key(job: _Job, helm_version: str, kube_version: str) -> str:
    assert job.tgz is not None
    parts = {
        "format": _RENDER_CACHE_FORMAT,
        "chart_sha256": file_sha256(job.tgz),
        "values": [hashlib.sha256(f.read_bytes()).hexdigest() for f, _ in job.value_files],
        "inline": hashlib.sha256(job.inline).hexdigest() if job.inline is not None else None,
        "sets": job.sets,
        "include_crds": job.include_crds,
        "api_versions": job.api_versions,
        "helm": helm_version,
        "kube": kube_version,
        "release": job.release,
        "namespace": job.namespace,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _template(helm: str, job: _Job, kube_version: str) -> dict[str, Any]:
    assert job.tgz is not None
    with tempfile.TemporaryDirectory(prefix="llm-platform-helm-template-") as tmp:
        argv = [
            helm,
            "template",
            job.release,
            str(job.tgz),
            "--namespace",
            job.namespace,
            "--kube-version",
            f"{kube_version}.0" if kube_version.count(".") == 1 else kube_version,
        ]
        if job.include_crds:
            argv.append("--include-crds")
        for f, _ in job.value_files:
            argv += ["-f", str(f)]
        if job.inline is not None:
            inline = Path(tmp) / "inline-values.yaml"
            inline.write_bytes(job.inline)
            argv += ["-f", str(inline)]
        for api in job.api_versions:
            argv += ["--api-versions", api]
        argv += job.sets
        env = {**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp}
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, check=False, timeout=HELM_TEMPLATE_TIMEOUT, env=env
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"error": f"helm template could not run: {exc}"}
    if out.returncode != 0:
        message = " ".join(out.stderr.replace(tmp, "<inline values>").strip().split())
        return {"error": message or f"helm template exited {out.returncode}"}
    try:
        docs = [d for d in yaml.load_all(out.stdout, Loader=_Loader) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        return {"error": f"helm template output is not YAML: {' '.join(str(exc).split())}"}
    return {"objects": docs}


def _store(path: Path, result: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, default=str))
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def _add(tree: Tree, job: _Job) -> None:
    app = job.app
    at = app.at((*job.path, "chart"))
    label = f"{job.chart} {job.version}"
    error = job.result.get("error")
    if error is not None:
        if app.silenced("helm-render-error"):
            tree.silenced += 1
        else:
            tree.report_at(
                "helm-render-error",
                app.display,
                at[0],
                at[1],
                f"helm template of chart {label} (release {job.release}, namespace {job.namespace}) "
                f"failed: {error[:2000]}",
            )
        tree.helm_not_rendered[(id(app), job.index)] = "helm template failed (reported as helm-render-error)"
        return
    origin = HelmOrigin(
        chart=label,
        app=app.name,
        values=[(display, _lines(f)) for f, display in job.value_files],
    )
    objs: list[K8sObject] = []
    for data in job.result.get("objects", []):
        if not (("apiVersion" in data and "kind" in data) or "metadata" in data):
            continue
        objs.append(
            K8sObject(
                data=data,
                path=app.path,
                display=app.display,
                doc=None,
                fallback=at,
                unit=f"helm:{id(app)}:{job.index}",
                helm=origin,
            )
        )
    tree.objects.extend(objs)
    tree.helm_renders[(id(app), job.index)] = objs


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []
