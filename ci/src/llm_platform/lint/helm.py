"""`lint` (unless --no-render-charts): render each Helm chart source of each Application as Argo CD does.

`helm template <release> <chart.tgz> --namespace <destination> --kube-version <v>.0 --include-crds`,
with the source's `valueFiles` in order (`$ref/...` read from this repository, or fetched from another
repository at its source's targetRevision: `git_sources`), then its inline
`values`/`valuesObject` as one more file, then its `parameters` (`--set`): Argo CD's precedence. The
chart package comes verified from the chart lock (`charts_lock.ensure_chart`). Rendered objects join
the tree; findings on them point at the Application's chart source and name the chart. Renders are
cached on disk, keyed by sha256 of (chart sha256, values bytes, helm version, kube version, release,
namespace, parameters, API versions). Charts are rendered wave by wave: `--api-versions` names the GA
built-in APIs of the Kubernetes version and the CRDs of the tree and of the charts of earlier waves, as
the cluster will serve them then.

A render that is not cached is run twice (the second a little over a second later, so `now` differs) and
the two outputs compared: objects that differ are `helm-render-nondeterministic`, and that verdict is
cached with the render. Our values keys that the chart does not define are `helm-values-unknown`
(`helm_values`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_platform.documents import MANIFEST_LIMITS, RENDER_LIMITS, iter_yaml, load_yaml
from llm_platform.errors import DocumentError, InputError, PlatformError, url_without_credentials
from llm_platform.lint import helm_values
from llm_platform.lint.argocd import application_sources, is_application, normalise_repo_url
from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV, ChartLock, ensure_chart, load_lock
from llm_platform.lint.config import LintConfig
from llm_platform.lint.git_sources import GitFileMissingError, GitSourceError, GitSources
from llm_platform.lint.render import real_path
from llm_platform.lint.schemas import CoreSchemas, resolve_kubernetes_version
from llm_platform.lint.sources import JsonPath, load_file
from llm_platform.lint.tree import HelmOrigin, K8sObject, Tree, display_path
from llm_platform.pinned_files import file_sha256

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
RENDER_ANNOTATION = "lint.llm-platform.io/render-charts"  # "true": render this Application's charts always
HELM_TEMPLATE_TIMEOUT = 300.0
_RENDER_CACHE_FORMAT = 4  # bump when what is cached (the parsed objects, the error, the verdict) changes
# The second of the two renders of a render-cache miss starts this long after the first: `now` formatted to
# the second differs then. The two run side by side otherwise.
SECOND_RENDER_DELAY = 1.05
_NONDETERMINISTIC_SHOWN = 3  # objects named in a helm-render-nondeterministic message (paths: as many)
_NONDETERMINISTIC_KEPT = 20  # objects (and paths per object) kept in the verdict


@dataclass
class HelmOptions:
    """How to render: the chart lock, the package cache and mirror, and the render cache."""

    lock: Path | None = None  # default: <repo root>/gitops/charts.lock.yaml
    chart_cache: Path | None = None  # default: charts_lock's cache
    mirror: Path | None = None
    render_cache: Path | None = None  # default: <cache root>/helm-renders
    helm: str | None = None  # default: helm on PATH
    git_cache: Path | None = None  # other repositories' value files; default: <cache root>/git-sources


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
    helm: dict[str, Any] = field(default_factory=dict)  # the source's `helm` (inline values' positions)
    wave: int = 0
    api_versions: list[str] = field(default_factory=list)
    tgz: Path | None = None
    sha256: str = ""  # of the chart package
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
    cache_dir = options.render_cache
    if cache_dir is None:
        from llm_platform.cache_root import cache_root

        cache_dir = Path(cache_root()) / "helm-renders"
    git = GitSources(options.git_cache or cache_dir.parent / "git-sources")
    jobs = _jobs(tree, ours, every_app, git)
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
        job.sha256 = file_sha256(job.tgz)
        runnable.append(job)
    if not runnable or helm is None:
        return
    checked: set[tuple[str, str]] = set()  # (values file, chart sha256) pairs checked
    for job in runnable:
        _check_values(tree, job, cache_dir, checked)
    helm_version = _helm_version(helm)
    # The cluster's API versions at each wave: the GA built-in APIs of the Kubernetes version, the tree's
    # own CRDs, then those the charts of earlier waves install (rendered wave by wave, in order).
    api_versions = (
        _crd_api_versions(tree.objects) | CoreSchemas(resolve_kubernetes_version(kube_version)).api_versions()
    )
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


def _jobs(tree: Tree, ours: set[str], every_app: bool, git: GitSources) -> list[_Job]:
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
                helm=helm,
                wave=_wave(app),
            )
            problem = _values(tree, job, helm, refs, ours, git)
            if problem:
                _skip(tree, job, problem)
                continue
            jobs.append(job)
    return jobs


def _values(
    tree: Tree,
    job: _Job,
    helm: dict[str, Any],
    refs: dict[str, dict[str, Any]],
    ours: set[str],
    git: GitSources,
) -> str | None:
    """Fill the job's values (Argo CD's order); a reason when they cannot be read here."""
    ignore_missing = bool(helm.get("ignoreMissingValueFiles"))
    for vf in helm.get("valueFiles") or []:
        vf = str(vf)
        if not vf.startswith("$"):
            return f"value file {vf!r} is inside the chart or another repository (not read here)"
        ref, _, rel = vf[1:].partition("/")
        ref_src = refs.get(ref)
        if ref_src is None:
            return f"value file {vf!r}: no source of the Application has `ref: {ref}`"
        url = str(ref_src.get("repoURL", ""))
        if normalise_repo_url(url) not in ours:
            # Another repository: its file at that source's targetRevision, fetched like Argo CD does.
            try:
                fetched, commit = git.file(url, str(ref_src.get("targetRevision") or "HEAD"), rel)
            except GitFileMissingError as exc:
                if ignore_missing:
                    continue
                return f"value file {vf!r} of {url_without_credentials(url)}: {exc}"
            except GitSourceError as exc:
                return f"value file {vf!r} of {url_without_credentials(url)}: {exc}"
            job.value_files.append((fetched, f"{url_without_credentials(url)}@{commit[:12]}:{rel}"))
            continue
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
        "chart_sha256": job.sha256 or file_sha256(job.tgz),
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
    """Render the job twice, side by side (the second `SECOND_RENDER_DELAY` later); the first render's
    objects or error, plus the objects in which the two differ (`nondeterministic`)."""
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
        outs = _run_twice(argv, env, Path(tmp))
        if isinstance(outs, str):
            return {"error": outs}
        (code, stdout, stderr), second = outs
    if code != 0:
        message = " ".join(stderr.replace(tmp, "<inline values>").strip().split())
        return {"error": message or f"helm template exited {code}"}
    try:
        docs = _parse(stdout)
    except DocumentError as exc:
        return {"error": f"helm template output is not usable YAML: {' '.join(str(exc).split())}"}
    result: dict[str, Any] = {"objects": docs, "nondeterministic": []}
    if second is not None and second[0] == 0 and second[1] != stdout:
        result["nondeterministic"] = _nondeterminism(stdout, second[1])
    return result


def _parse(stdout: str) -> list[dict[str, Any]]:
    """The rendered documents, through the one bounded loader (`documents.iter_yaml`, render limits)."""
    return [
        d.data
        for d in iter_yaml(stdout, source="helm template output", limits=RENDER_LIMITS)
        if isinstance(d.data, dict)
    ]


_DOCUMENT_START = re.compile(r"(?m)^---[ \t]*$")


def _nondeterminism(first: str, second: str) -> list[dict[str, Any]]:
    """The objects in which two different outputs differ. Only the documents whose text differs are
    parsed (a big chart's output is slow to parse), when both have as many documents."""
    a, b = _DOCUMENT_START.split(first), _DOCUMENT_START.split(second)
    if len(a) == len(b):
        pairs = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        first, second = "\n---\n".join(x for x, _ in pairs), "\n---\n".join(y for _, y in pairs)
    try:
        return _differences(_parse(first), _parse(second))
    except DocumentError:
        return [{"object": "(the output: not YAML once)", "paths": [], "once": True}]


_Out = tuple[int, str, str]


def _run_twice(argv: list[str], env: dict[str, str], tmp: Path) -> tuple[_Out, _Out | None] | str:
    """Run `argv` twice, the second starting SECOND_RENDER_DELAY after the first, output to files (no
    pipe to drain); (returncode, stdout, stderr) of each (the second None if it could not run), or why
    the first could not run."""
    deadline = time.monotonic() + HELM_TEMPLATE_TIMEOUT
    procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    started = time.monotonic()
    try:
        for i in range(2):
            if i:
                time.sleep(max(0.0, SECOND_RENDER_DELAY - (time.monotonic() - started)))
            out, err = tmp / f"stdout-{i}", tmp / f"stderr-{i}"
            with out.open("wb") as fo, err.open("wb") as fe:
                try:
                    procs.append((subprocess.Popen(argv, stdout=fo, stderr=fe, env=env), out, err))
                except OSError as exc:
                    if not procs:
                        return f"helm template could not run: {exc}"
                    break
            if not i:
                started = time.monotonic()
        results: list[_Out] = []
        for proc, out, err in procs:
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if not results:
                    return f"helm template could not run: timed out after {HELM_TEMPLATE_TIMEOUT:.0f} seconds"
                break
            results.append((code, out.read_text(errors="replace"), err.read_text(errors="replace")))
        return results[0], (results[1] if len(results) > 1 else None)
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _differences(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects of two renders that differ: their identity, the JSON paths that differ (a few)."""

    def by_ident(docs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        out: dict[tuple[str, int], dict[str, Any]] = {}
        seen: dict[str, int] = {}
        for d in docs:
            ident = _ident(d)
            n = seen[ident] = seen.get(ident, -1) + 1
            out[(ident, n)] = d
        return out

    first, second = by_ident(a), by_ident(b)
    out: list[dict[str, Any]] = []
    for key in [*first, *(k for k in second if k not in first)]:
        once = key not in first or key not in second
        paths: list[list[str | int]] = []
        if not once:
            _diff(first[key], second[key], [], paths)
        if paths or once:
            item: dict[str, Any] = {"object": key[0], "paths": paths[:_NONDETERMINISTIC_KEPT], "once": once}
            item["group"], item["kind"], item["name"], item["namespace"] = _gknn(
                first.get(key) or second[key]
            )
            out.append(item)
        if len(out) >= _NONDETERMINISTIC_KEPT:
            break
    return out


def _ident(d: dict[str, Any]) -> str:
    meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
    kind, name, ns = d.get("kind", "?"), (meta or {}).get("name", "?"), (meta or {}).get("namespace")
    return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"


def _gknn(d: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
    group = str(d.get("apiVersion", "")).rpartition("/")[0]
    return (
        group,
        str(d.get("kind", "")),
        str((meta or {}).get("name", "")),
        str((meta or {}).get("namespace") or ""),
    )


def _diff(x: Any, y: Any, path: list[str | int], out: list[list[str | int]]) -> None:
    if len(out) >= _NONDETERMINISTIC_KEPT or x == y:
        return
    if isinstance(x, dict) and isinstance(y, dict):
        for k in [*x, *(k for k in y if k not in x)]:
            _diff(x.get(k), y.get(k), [*path, str(k)], out)
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
            _diff(xi, yi, [*path, i], out)
    else:
        out.append(path)


def _show_path(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or "(the object)"


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
    _report_nondeterministic(tree, job, at, label)
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


def _report_nondeterministic(tree: Tree, job: _Job, at: tuple[int, int], label: str) -> None:
    differing = [d for d in job.result.get("nondeterministic") or [] if not _ignored(job.app, d)]
    if not differing:
        return
    if job.app.silenced("helm-render-nondeterministic"):
        tree.silenced += 1
        return
    shown = []
    for d in differing[:_NONDETERMINISTIC_SHOWN]:
        if d.get("once"):
            shown.append(f"{d['object']} (rendered by one of them only)")
        else:
            paths = [_show_path(p) for p in d.get("paths") or []]
            more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
            shown.append(f"{d['object']} at {', '.join(paths[:3])}{more}")
    more = f"; and {len(differing) - len(shown)} more object(s)" if len(differing) > len(shown) else ""
    tree.report_at(
        "helm-render-nondeterministic",
        job.app.display,
        at[0],
        at[1],
        f"two renders of chart {label} (release {job.release}) with the same inputs differ: "
        f"{'; '.join(shown)}{more}. Argo CD renders on every refresh, so the Application never stays "
        "in sync and auto-sync rotates the generated value (a random password, a generated certificate, "
        "a timestamp): set the value explicitly or point the chart at an existing Secret; if the chart "
        "regenerates it on purpose, add ignoreDifferences for these paths (with the sync option "
        "RespectIgnoreDifferences=true)",
    )


def _ignored(app: K8sObject, diff: dict[str, Any]) -> bool:
    """Whether the Application's `ignoreDifferences` covers every path in which the object differs (an
    entry for the object with jqPathExpressions or managedFieldsManagers is taken to cover it all), with
    the sync option RespectIgnoreDifferences=true: without it every sync still applies the new value."""
    if diff.get("once"):
        return False
    policy = app.spec.get("syncPolicy") if isinstance(app.spec.get("syncPolicy"), dict) else {}
    options = {str(o).replace(" ", "") for o in (policy or {}).get("syncOptions") or []}
    if "RespectIgnoreDifferences=true" not in options:
        return False
    entries = [
        e
        for e in app.spec.get("ignoreDifferences") or []
        if isinstance(e, dict)
        and str(e.get("kind", "")) == diff.get("kind")
        and str(e.get("group", "")) == diff.get("group")
        and (not e.get("name") or str(e["name"]) == diff.get("name"))
        and (not e.get("namespace") or str(e["namespace"]) == diff.get("namespace"))
    ]
    if any(e.get("jqPathExpressions") or e.get("managedFieldsManagers") for e in entries):
        return True
    pointers = [
        [p.replace("~1", "/").replace("~0", "~") for p in str(ptr).split("/")[1:]]
        for e in entries
        for ptr in e.get("jsonPointers") or []
    ]
    paths = [[str(x) for x in p] for p in diff.get("paths") or []]
    return bool(paths) and all(any(p[: len(ptr)] == ptr for ptr in pointers) for p in paths)


def _check_values(tree: Tree, job: _Job, cache_dir: Path, checked: set[tuple[str, str]]) -> None:
    """helm-values-unknown: the keys of the job's values files and inline values the chart ignores."""
    assert job.tgz is not None
    rule_id = "helm-values-unknown"
    info: dict[str, Any] | None = None
    label = f"{job.chart} {job.version}"

    def report(display: str, unknown: helm_values.Unknown, line: int, col: int) -> None:
        if job.app.silenced(rule_id):
            tree.silenced += 1
            return
        hint = f"; did you mean {unknown.suggestion!r}?" if unknown.suggestion else ""
        tree.report_at(
            rule_id,
            display,
            line,
            col,
            f"values key {'.'.join(unknown.path)!r} is not a value of chart {label} ({unknown.where}): "
            f"the chart ignores it{hint}",
        )

    sources: list[tuple[str, Any, Any]] = []  # (display, values, how to place a key)
    for file, display in job.value_files:
        if (str(file), job.sha256) in checked:
            continue  # another Application with the same file and chart: the same findings
        checked.add((str(file), job.sha256))
        sf = tree.files.get(real_path(file.parent) / file.name) or load_file(file, display)
        doc = next((d for d in sf.docs if isinstance(d.data, dict)), None)
        if doc is not None:
            sources.append((sf.display, doc.node, None))
    obj, text = job.helm.get("valuesObject"), job.helm.get("values")
    base = (*job.path, "helm")
    if isinstance(obj, dict):
        node = _node_at(job.app, (*base, "valuesObject"))
        sources.append((job.app.display, node if node is not None else obj, (*base, "valuesObject")))
    elif isinstance(text, str) and text.strip():
        try:
            inline_doc = load_yaml(text, source=job.app.display, limits=MANIFEST_LIMITS, unique_keys=False)
            inner = inline_doc.node if inline_doc is not None else None
        except DocumentError:
            inner = None  # helm-render-error says so
        if inner is not None:
            sources.append((job.app.display, inner, (*base, "values")))
    for display, values, inline_at in sources:
        if info is None:
            info = helm_values.chart_values(job.tgz, job.sha256, cache_dir)
        for unknown in helm_values.unknown_keys(info, values):
            if inline_at is None:
                line, col = _mark(unknown.node)
            elif inline_at[-1] == "valuesObject":
                line, col = (
                    _mark(unknown.node)
                    if unknown.node is not None
                    else job.app.at((*inline_at, *unknown.path))
                )
            else:
                line, col = _in_block(job.app, inline_at, unknown.node)
            report(display, unknown, line, col)


def _mark(node: Any) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _node_at(app: K8sObject, path: JsonPath) -> Any:
    """The composed node at `path` in the Application's document (None if generated or absent)."""
    if app.doc is None:
        return None
    node: Any = app.doc.node
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            node = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return None
    return node


def _in_block(app: K8sObject, at: JsonPath, inner: Any) -> tuple[int, int]:
    """Where a key of an inline `values: |` string is in the Application's file: the string's own line
    inside a literal block scalar, else the `values:` line."""
    node = _node_at(app, at)
    if isinstance(node, yaml.ScalarNode) and node.style == "|" and inner is not None:
        line = node.start_mark.line + 1 + inner.start_mark.line + 1
        return line, app.at(at)[1] + 2 + inner.start_mark.column
    return app.at(at)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def render_application(
    repo_root: Path, application: Path, kube_version: str, options: HelmOptions | None = None
) -> list[dict[str, Any]]:
    """The objects of the Helm sources of the Application in `application`, rendered exactly as `lint`
    renders them (same chart lock, caches, values precedence and API versions): what an install that
    must match the Application (the Argo CD bootstrap) applies. Its `$values` refer to this checkout.
    Raises InputError when the file is not one Application or a chart source cannot be rendered."""
    display = display_path(application, repo_root)
    sf = load_file(application, display)
    apps = [
        K8sObject(
            data=d.data, path=application, display=display, doc=d, fallback=d.locate(), unit="bootstrap"
        )
        for d in sf.docs
        if isinstance(d.data, dict)
    ]
    if len(apps) != 1 or not is_application(apps[0]):
        raise InputError(f"{display}: expected one Argo CD Application")
    if sf.findings:
        raise InputError(f"{display}:{sf.findings[0].line}: {sf.findings[0].message}")
    app = apps[0]
    ours = {
        normalise_repo_url(str(s.get("repoURL", ""))) for s, _ in application_sources(app) if s.get("ref")
    }
    tree = Tree(
        repo_root=repo_root,
        files={application: sf},
        kustomizations={},
        objects=[app],
        value_docs=[],
        config=LintConfig(),
        cwd=repo_root,
    )
    render_charts(tree, ours, kube_version, options or HelmOptions())
    for (_, index), reason in tree.helm_not_rendered.items():
        raise InputError(f"{display}: source {index} of Application {app.name} cannot be rendered: {reason}")
    errors = [f for f in tree.findings if f.rule_id == "helm-render-error"]
    if errors:
        raise InputError(f"{display}:{errors[0].line}: {errors[0].message}")
    return [obj.data for objs in tree.helm_renders.values() for obj in objs]
