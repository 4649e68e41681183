"""`cluster bootstrap`: install Argo CD from exactly the chart and values of the tree's self-managed
`argocd` Application (gitops/apps/base/argocd.yaml), rendered by the renderer `lint` uses, so that the
Application later adopts every object with no diff; then wait until its workloads are available.

What is applied is computed here (`bootstrap_objects`), ordered so each object's dependencies come first
(CRDs, the namespace, identities and RBAC, configuration, services, workloads), each with the tracking
annotation Argo CD itself would write, so the self-managed Application recognises them as its own. The
apply is server-side with our field manager (`kube.FIELD_MANAGER`): a second run changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llm_platform.cluster.kube import Kube
from llm_platform.errors import PlatformError
from llm_platform.logs import get_logger

log = get_logger("cluster")

ARGOCD_APPLICATION = Path("gitops/apps/base/argocd.yaml")
ARGOCD_NAMESPACE = "argocd"
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"  # Argo CD's default (annotation) resource tracking

# Kinds without a namespace (the ones the Argo CD chart renders, and the usual others).
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "StorageClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "IngressClass",
}
# Apply order: what others need first. Unlisted kinds go after these, before workloads' dependents.
_ORDER = [
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
]


class BootstrapResult(BaseModel):
    step: str = "bootstrap"
    chart: str
    objects: int
    changed: list[str]  # Kind/namespace/name whose spec the apply changed (empty on a re-run)
    available: list[str]  # workloads found available


class NotAvailableError(PlatformError):
    """Workloads not available before the deadline; the message lists them with their conditions."""


def bootstrap_plan(repo_root: Path, charts_mirror: Path | None = None) -> list[dict[str, Any]]:
    """Everything bootstrap applies, in order: the `argocd` Application's Helm source rendered by lint's
    renderer (its verified chart, our values, the same API versions), as `bootstrap_objects` shapes it."""
    from llm_platform.lint.engine import DEFAULT_KUBERNETES_VERSION
    from llm_platform.lint.helm import HelmOptions, render_application

    rendered = render_application(
        repo_root,
        repo_root / ARGOCD_APPLICATION,
        DEFAULT_KUBERNETES_VERSION,
        HelmOptions(mirror=charts_mirror),
    )
    return bootstrap_objects(repo_root, rendered)


def bootstrap_objects(repo_root: Path, rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What bootstrap applies: the Application's rendered objects, with the argocd Namespace, a
    namespace on every namespaced object, the tracking annotation, in dependency order. The Namespace
    carries no tracking id: the Application does not create it, and a tracked object it does not render
    would be pruned."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGOCD_NAMESPACE}}
    ]
    for obj in rendered:
        if not isinstance(obj, dict) or not obj.get("kind"):
            continue
        obj = {**obj, "metadata": dict(obj.get("metadata") or {})}
        if obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"].setdefault("namespace", ARGOCD_NAMESPACE)
        annotations = dict(obj["metadata"].get("annotations") or {})
        annotations[TRACKING_ANNOTATION] = tracking_id("argocd", obj)
        obj["metadata"]["annotations"] = annotations
        objects.append(obj)
    rank = {kind: i for i, kind in enumerate(_ORDER)}
    return sorted(
        objects,
        key=lambda o: (
            rank.get(o["kind"], len(_ORDER) - 4),
            o["metadata"].get("namespace") or "",
            o["metadata"]["name"],
        ),
    )


def tracking_id(app: str, obj: dict[str, Any]) -> str:
    """Argo CD's annotation tracking id: `<app>:<group>/<Kind>:<namespace>/<name>` (namespace empty for
    cluster-scoped objects)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    meta = obj.get("metadata") or {}
    return f"{app}:{group}/{obj['kind']}:{meta.get('namespace') or ''}/{meta.get('name')}"


def ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj.get('kind')}/{f'{namespace}/' if namespace else ''}{meta.get('name')}"


def changed_objects(kube: Kube, objects: list[dict[str, Any]]) -> list[str]:
    """Which of `objects` the cluster does not hold as we would apply them (absent, or a field we set
    differs): what an apply would change. Secrets are compared by key presence only (values unread)."""
    out = []
    for obj in objects:
        meta = obj["metadata"]
        live = kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        want = {k: v for k, v in obj.items() if k not in ("status", "data", "stringData")}
        if live is None or not _contains(live, want):
            out.append(ref(obj))
        elif obj["kind"] == "Secret":
            keys = set(obj.get("data") or {}) | set(obj.get("stringData") or {})
            if not keys <= set(live.get("data") or {}):
                out.append(ref(obj))
        elif "data" in obj and not _contains(live.get("data"), obj["data"]):
            out.append(ref(obj))
    return out


def _contains(live: Any, want: Any) -> bool:
    """Every field of `want` is in `live` with that value (the server adds defaults and status)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(k in live and _contains(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(live, list) and len(live) == len(want) and all(map(_contains, live, want))
    return live == want or (isinstance(want, int | float) and str(live) == str(want))


def unavailable(live: list[dict[str, Any]]) -> list[str]:
    """The Deployments and StatefulSets among `live` that are not available yet, each with why."""
    out = []
    for obj in live:
        kind, spec, status = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
        want = int(spec.get("replicas", 1))
        generation_seen = int(status.get("observedGeneration", 0)) >= int(
            (obj.get("metadata") or {}).get("generation", 0)
        )
        if kind == "Deployment":
            conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
            ok = conds.get("Available", {}).get("status") == "True"
            ready = (
                int(status.get("availableReplicas", 0)) >= want
                and int(status.get("updatedReplicas", 0)) >= want
            )
            if not (generation_seen and ok and ready):
                msg = (
                    conds.get("Progressing", {}).get("message")
                    or conds.get("Available", {}).get("message")
                    or ""
                )
                out.append(f"{ref(obj)}: {status.get('availableReplicas', 0)}/{want} available {msg}".strip())
        elif kind == "StatefulSet":
            ready = int(status.get("readyReplicas", 0)) >= want
            current = status.get("currentRevision") == status.get("updateRevision")
            if not (generation_seen and ready and current):
                out.append(f"{ref(obj)}: {status.get('readyReplicas', 0)}/{want} ready")
    return out


def wait_available(
    kube: Kube,
    objects: list[dict[str, Any]],
    timeout_s: float,
    *,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Poll the workloads among `objects` until all are available; their refs, or NotAvailableError."""
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    deadline = clock() + timeout_s
    while True:
        live = [
            kube.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
            for o in workloads
        ]
        missing = [ref(o) for o, lv in zip(workloads, live, strict=True) if lv is None]
        pending = missing + unavailable([lv for lv in live if lv is not None])
        if not pending:
            return [ref(o) for o in workloads]
        if clock() >= deadline:
            raise NotAvailableError(
                f"bootstrap: not available after {timeout_s:.0f} s: "
                + "; ".join(pending[:10])
                + (f" and {len(pending) - 10} more" if len(pending) > 10 else "")
            )
        sleep(poll_s)


def run_bootstrap(kube: Kube, objects: list[dict[str, Any]], timeout_s: float) -> BootstrapResult:
    """Apply `objects` (only when some differ from what the cluster holds) and wait until available."""
    changed = changed_objects(kube, objects)
    if changed:
        log.info("bootstrap: applying %d object(s), %d of them new or changed", len(objects), len(changed))
        kube.apply(objects)
    else:
        log.info("bootstrap: all %d object(s) already applied as rendered", len(objects))
    available = wait_available(kube, objects, timeout_s)
    return BootstrapResult(chart="argo-cd", objects=len(objects), changed=changed, available=available)
