"""`cluster root`: apply the environment's root Argo CD Application (gitops/bootstrap/root-<env>.yaml)
with the fork's repository URL and revision, then (with --wait) follow every Application until all are
Synced and Healthy.

`root_application` computes the object from the file; `apply_root` applies it only when the live root's
spec (or one of our labels, annotations or finalizers) differs, so a second run reports `changed: false`
and writes nothing; `wait` polls `status.overview` through `kube.Kube` with an injectable clock and
sleep. Nothing here talks to a cluster but through `Kube`."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llm_platform.cluster.kube import ClusterError, Kube
from llm_platform.cluster.status import (
    APPLICATION_API,
    APPLICATION_KIND,
    APPLICATION_NAMESPACE,
    ROOT_NAME,
    Overview,
    failures,
    overview,
)
from llm_platform.documents import CONFIG_LIMITS, cut, load_yaml_file
from llm_platform.errors import InputError, PlatformError, url_without_credentials

BOOTSTRAP_DIR = Path("gitops/bootstrap")
TRANSIENT_REASONS = frozenset({"Unreachable", "Timeout"})  # retried until the deadline
_ENV = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")
_MAX_DIFFERENCES = 20


class RootResult(BaseModel):
    step: str = "root"
    application: str  # namespace/name
    repo_url: str
    revision: str
    created: bool  # there was no root before
    changed: bool  # applied: new, or its spec (or our metadata) differed; False on a re-run
    differences: list[str] = []  # the fields that differed (`spec.source.targetRevision`, ...)


class WaitTimeout(PlatformError):  # noqa: N818 (the name the CLI catches)
    """Not every Application was Synced and Healthy before the deadline. `overview` is the last one seen,
    `failures` what is wrong (`status.failures`), `last_error` the last transient error, if any."""

    def __init__(
        self, message: str, overview: Overview, failures: list[str], last_error: ClusterError | None = None
    ) -> None:
        super().__init__(message)
        self.overview = overview
        self.failures = failures
        self.last_error = last_error


def environments(repo_root: Path) -> list[str]:
    """The environments that have a root file (`root-<env>.yaml`)."""
    found = (repo_root / BOOTSTRAP_DIR).glob("root-*.yaml")
    return sorted(p.name[len("root-") : -len(".yaml")] for p in found if p.is_file())


def root_file(env: str) -> Path:
    """gitops/bootstrap/root-<env>.yaml, relative to the checkout."""
    if not _ENV.match(env):
        raise InputError(f"--env: {cut(env, 60)!r} is not an environment name (gke, kind, ...)")
    return BOOTSTRAP_DIR / f"root-{env}.yaml"


def root_application(repo_root: Path, env: str, repo_url: str, revision: str) -> dict[str, Any]:
    """The root Application of `env` from its file, with `spec.source.repoURL` and `targetRevision` set.

    The file must hold exactly one argoproj.io/v1alpha1 Application with a single `spec.source`; any other
    content is an InputError naming the file."""
    rel = root_file(env)
    source = str(rel)
    if not repo_url.strip():
        raise InputError("--repo-url: empty: the git URL Argo CD reads the fork from")
    if url_without_credentials(repo_url) != repo_url:
        raise InputError(
            "--repo-url: the URL carries credentials: they would be stored in the Application; "
            "give them to Argo CD as a repository credential (`llm-platform cluster repo-credential`)"
        )
    if not revision.strip():
        raise InputError("--revision: empty: the branch, tag or commit Argo CD follows")
    path = repo_root / rel
    if not path.is_file() and not path.is_symlink():
        known = ", ".join(environments(repo_root)) or "none"
        raise InputError(f"{source}: no such file: no root Application for {env!r} (environments: {known})")
    doc = load_yaml_file(path, CONFIG_LIMITS, source=source)
    obj = doc.data if doc is not None else None
    if not isinstance(obj, dict):
        raise InputError(f"{source}: expected one Argo CD Application, found {_what(obj)}")
    if obj.get("apiVersion") != APPLICATION_API or obj.get("kind") != APPLICATION_KIND:
        raise InputError(
            f"{source}: expected one {APPLICATION_API} {APPLICATION_KIND}, found "
            f"{cut(str(obj.get('apiVersion')), 60)} {cut(str(obj.get('kind')), 60)}"
        )
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InputError(f"{source}: the Application has no metadata.name")
    spec = obj.get("spec")
    app_source = spec.get("source") if isinstance(spec, dict) else None
    if not isinstance(app_source, dict):
        raise InputError(
            f"{source}: the Application has no spec.source (a single source) to point at the fork"
        )
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("namespace", APPLICATION_NAMESPACE)
    obj["spec"]["source"]["repoURL"] = repo_url
    obj["spec"]["source"]["targetRevision"] = revision
    return obj


def apply_root(kube: Kube, obj: dict[str, Any]) -> RootResult:
    """Apply the root Application when the live one differs from `obj` (its spec, or a label, annotation
    or finalizer of ours); unchanged, nothing is written."""
    meta = obj["metadata"]
    name, namespace = meta["name"], meta.get("namespace") or APPLICATION_NAMESPACE
    live = kube.get(APPLICATION_API, APPLICATION_KIND, name, namespace)
    differences = root_differences(live, obj)
    if differences:
        kube.apply([obj])
    source = obj["spec"]["source"]
    return RootResult(
        application=f"{namespace}/{name}",
        repo_url=source["repoURL"],
        revision=source["targetRevision"],
        created=live is None,
        changed=bool(differences),
        differences=differences,
    )


def root_differences(live: dict[str, Any] | None, obj: dict[str, Any]) -> list[str]:
    """What an apply of `obj` would change on `live`: `spec` compared whole (the Application CRD sets no
    defaults), and our labels, annotations and finalizers (others' may be there too). At most 20."""
    if live is None:
        return ["(new)"]
    out: list[str] = []
    _diff(live.get("spec"), obj.get("spec"), "spec", out)
    live_meta, meta = live.get("metadata") or {}, obj.get("metadata") or {}
    for field in ("labels", "annotations"):
        theirs = live_meta.get(field) or {}
        for key, value in (meta.get(field) or {}).items():
            if theirs.get(key) != value:
                out.append(f"metadata.{field}.{key}")
    if not set(meta.get("finalizers") or []) <= set(live_meta.get("finalizers") or []):
        out.append("metadata.finalizers")
    if len(out) > _MAX_DIFFERENCES:
        out = [*out[: _MAX_DIFFERENCES - 1], f"and {len(out) - _MAX_DIFFERENCES + 1} more"]
    return out


def _diff(live: Any, want: Any, path: str, out: list[str]) -> None:
    if isinstance(live, dict) and isinstance(want, dict):
        for key in [*want, *(k for k in live if k not in want)]:
            _diff(live.get(key), want.get(key), f"{path}.{key}", out)
    elif live != want:
        out.append(path)


def wait(
    kube: Kube,
    timeout_s: float,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[Overview], None] | None = None,
    *,
    namespace: str | None = APPLICATION_NAMESPACE,
    root: str | None = ROOT_NAME,
) -> Overview:
    """Poll `status.overview` every `poll_s` until it is done twice in a row with the same Applications
    (the root among them), and return it; `on_progress` sees every Overview.

    ClusterError `Unreachable`/`Timeout` is retried until the deadline; any other (`Unauthorized`,
    `Forbidden`, ...) ends the wait at once. At the deadline: WaitTimeout with the last Overview and its
    failures."""
    if poll_s <= 0:
        raise InputError(f"poll interval must be positive, not {poll_s}")
    deadline = clock() + max(timeout_s, 0.0)
    last: Overview | None = None
    settled: frozenset[tuple[str, str]] | None = None  # the Applications of the last done Overview
    last_error: ClusterError | None = None
    while True:
        try:
            cur = overview(kube, namespace, root)
        except ClusterError as exc:
            if exc.reason not in TRANSIENT_REASONS:
                raise
            last_error = exc
        else:
            last, last_error = cur, None
            if on_progress is not None:
                on_progress(cur)
            if cur.all_done and settled == cur.keys:
                return cur
            settled = cur.keys if cur.all_done else None
        now = clock()
        if now >= deadline:
            raise _timeout(kube, timeout_s, last or Overview(namespace=namespace, root=root), last_error)
        sleep(min(poll_s, deadline - now))


def _timeout(kube: Kube, timeout_s: float, last: Overview, last_error: ClusterError | None) -> WaitTimeout:
    pending = last.pending
    if not pending:
        what = last.note or "every Application is Synced and Healthy, but not yet twice in a row"
    else:
        shown = ", ".join(f"{r.name} ({r.state})" for r in pending[:8])
        more = f" and {len(pending) - 8} more" if len(pending) > 8 else ""
        what = f"{len(pending)} of {len(last.rows)} Applications not Synced and Healthy: {shown}{more}"
        if last.note:
            what += f"; {last.note}"
    if last_error is not None:
        what += f"; last poll failed: {cut(str(last_error), 300)}"
    try:
        lines = failures(kube, last)
    except ClusterError as exc:
        lines = [f"(the failing Applications could not be read: {cut(str(exc), 300)})"]
    return WaitTimeout(f"timed out after {format_duration(timeout_s)}: {what}", last, lines, last_error)


def parse_duration(text: str) -> float:
    """`30m`, `1h30m`, `90s`, `90` (seconds) as seconds; InputError otherwise."""
    m = _DURATION.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise InputError(f"--timeout: {cut(text, 40)!r} is not a duration (30m, 1h30m, 90s)")
    hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def format_duration(seconds: float) -> str:
    """`30m`, `1h5m`, `45s`."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def _what(value: Any) -> str:
    if value is None:
        return "no document"
    return f"a {type(value).__name__}" if not isinstance(value, dict) else "a mapping"
