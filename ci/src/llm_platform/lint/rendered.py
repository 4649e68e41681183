"""Rules on the objects as the cluster receives them (hand-written or rendered from a chart): duplicate
container env names, admission webhooks that can deadlock the platform, and Argo CD sync hooks that
need an object their own Application creates later in the sync."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llm_platform.lint.argocd import WAVE, AppGraph, application_sources, is_application
from llm_platform.lint.sources import JsonPath
from llm_platform.lint.tree import K8sObject, Tree
from llm_platform.lint.workloads import PodSpecRef, pod_specs

ENV_DUPLICATE = "k8s-env-duplicate"
WEBHOOK_BLOCKS = "k8s-webhook-blocks-platform"
HOOK_NEEDS_LATER = "argocd-hook-needs-later"

# Namespaces of the platform's own components, wherever the tree installs them (or not): with the
# namespaces the tree itself deploys to (platform_namespaces), what a fail-closed webhook must not cover.
PLATFORM_NAMESPACES = (
    "argocd",
    "cert-manager",
    "monitoring",
    "kube-system",
    "external-secrets",
    "keda",
    "kueue-system",
    "kserve",
)
NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
_WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
_WEBHOOK_GROUP = "admissionregistration.k8s.io"
_RUNTIME_KINDS = ("ServingRuntime", "ClusterServingRuntime")

ARGO_HOOK = "argocd.argoproj.io/hook"
HELM_HOOK = "helm.sh/hook"
HELM_WEIGHT = "helm.sh/hook-weight"
_PHASES = ("PreSync", "Sync", "PostSync")  # the phases of a sync, in order
# How Argo CD maps Helm hooks onto its own (other Helm hooks never run during a sync).
_HELM_PHASES = {
    "pre-install": "PreSync",
    "pre-upgrade": "PreSync",
    "post-install": "PostSync",
    "post-upgrade": "PostSync",
}
_INT = re.compile(r"[+-]?[0-9]+")


def check(tree: Tree, graph: AppGraph) -> None:
    env_duplicates(tree)
    webhooks(tree, graph)
    hooks(tree, graph)


# --- k8s-env-duplicate --------------------------------------------------------------------------


def all_containers(obj: K8sObject) -> Iterator[tuple[dict[str, Any], JsonPath]]:
    """Every container of `obj`: those of each pod template (init and ephemeral ones included) and
    the containers of a (Cluster)ServingRuntime."""
    if obj.kind in _RUNTIME_KINDS and obj.group.startswith("serving.kserve.io"):
        for key in ("initContainers", "containers"):
            for i, c in enumerate(_list(obj.spec.get(key))):
                if isinstance(c, dict):
                    yield c, ("spec", key, i)
    for ref in pod_specs(obj):
        yield from ref.containers
        for i, c in enumerate(_list(ref.spec.get("ephemeralContainers"))):
            if isinstance(c, dict):
                yield c, (*ref.path, "ephemeralContainers", i)


def env_duplicates(tree: Tree) -> None:
    for obj in tree.objects:
        for container, path in all_containers(obj):
            env = _list(container.get("env"))
            at: dict[str, list[int]] = {}
            for i, e in enumerate(env):
                if isinstance(e, dict) and isinstance(e.get("name"), str):
                    at.setdefault(e["name"], []).append(i)
            for name, indices in at.items():
                if len(indices) < 2:
                    continue
                first, last = indices[0], indices[-1]
                if any("value" in env[i] for i in indices):
                    losers = ", ".join(f"env[{i}] {_env_value(env[i])}" for i in indices[:-1])
                    outcome = f"env[{last}] {_env_value(env[last])} wins over {losers}"
                else:
                    outcome = f"env[{last}] wins"
                for i in indices[1:]:
                    tree.report(
                        ENV_DUPLICATE,
                        obj,
                        (*path, "env", i, "name"),
                        f"container {str(container.get('name', '?'))!r} defines env {name} again "
                        f"(first at env[{first}]): Kubernetes keeps the last definition, so {outcome}; "
                        "server-side apply rejects the object (env is a list keyed by name)",
                    )


def _env_value(e: dict[str, Any]) -> str:
    if "value" in e:
        text = str(e["value"])
        return f"value {text[:60] + '...' if len(text) > 60 else text!r}"
    vf = e.get("valueFrom")
    if isinstance(vf, dict) and vf:
        key = next(iter(vf))
        ref = vf[key] if isinstance(vf[key], dict) else {}
        what = "/".join(str(ref[k]) for k in ("name", "key", "fieldPath", "resource") if k in ref)
        return f"valueFrom {key}{' ' + what if what else ''}"
    return "(empty value)"


# --- k8s-webhook-blocks-platform ----------------------------------------------------------------


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every matchExpressions
    requirement must hold; an absent or empty selector matches everything. An invalid requirement
    (unknown operator, In/NotIn without values) matches nothing: the API server rejects it."""
    if selector is None:
        return True
    if not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return False
    for k, v in match_labels.items():
        if labels.get(str(k)) != str(v):
            return False
    for expr in _list(selector.get("matchExpressions")):
        if not isinstance(expr, dict):
            return False
        key, op = str(expr.get("key", "")), expr.get("operator")
        values = [str(v) for v in _list(expr.get("values"))]
        if op == "In":
            ok = bool(values) and key in labels and labels[key] in values
        elif op == "NotIn":
            ok = bool(values) and (key not in labels or labels[key] not in values)
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            return False
        if not ok:
            return False
    return True


def platform_namespaces(tree: Tree, graph: AppGraph) -> dict[str, list[dict[str, str]]]:
    """The platform's namespaces, each with the label sets it may carry: PLATFORM_NAMESPACES, the
    destination of every Application that installs a chart (the platform's components: not the tenant
    and serving namespaces whose workloads such webhooks exist for) and every webhook backend's namespace.
    Labels come from the tree's Namespace objects of that name and the Applications'
    syncPolicy.managedNamespaceMetadata; kubernetes.io/metadata.name is always there."""
    names: set[str] = set(PLATFORM_NAMESPACES)
    declared: dict[str, list[dict[str, str]]] = {}
    managed: dict[str, list[dict[str, str]]] = {}
    for obj in tree.objects:
        if obj.kind == "Namespace" and obj.group == "" and obj.name:
            declared.setdefault(obj.name, []).append(obj.labels)
        elif is_application(obj):
            dest = obj.spec.get("destination")
            ns = dest.get("namespace") if isinstance(dest, dict) else None
            if ns and any(src.get("chart") for src, _ in application_sources(obj)):
                names.add(str(ns))
                meta = _dict(_dict(obj.spec.get("syncPolicy")).get("managedNamespaceMetadata"))
                labels = _dict(meta.get("labels"))
                if labels:
                    managed.setdefault(str(ns), []).append({str(k): str(v) for k, v in labels.items()})
        elif obj.kind in _WEBHOOK_KINDS and obj.group == _WEBHOOK_GROUP:
            for hook in _list(obj.data.get("webhooks")):
                ns = _dict(_dict(_dict(hook).get("clientConfig")).get("service")).get("namespace")
                if ns:
                    names.add(str(ns))
    out: dict[str, list[dict[str, str]]] = {}
    for name in sorted(names):
        variants = declared.get(name) or [{}]
        extra = managed.get(name, [])
        sets = [dict(v) for v in variants] + [{**v, **m} for v in variants for m in extra]
        for labels in sets:
            labels[NAME_LABEL] = name
        out[name] = sets
    return out


@dataclass
class _Blocking:
    index: int
    name: str
    explicit: bool  # failurePolicy written out (else the v1 default, Fail)
    covered: list[str]
    selector: str  # the namespaceSelector: "set", "empty" or "absent" (these two: every namespace)
    backend: str | None  # namespace of the webhook's Service


def webhooks(tree: Tree, graph: AppGraph) -> None:
    """Fail-closed webhooks covering platform namespaces: one finding per webhook configuration and
    coverage (webhooks of one configuration that cover the same namespaces the same way are reported
    together, at the first of them, naming the others)."""
    namespaces: dict[str, list[dict[str, str]]] | None = None
    for obj in tree.objects:
        if obj.kind not in _WEBHOOK_KINDS or obj.group != _WEBHOOK_GROUP:
            continue
        if namespaces is None:
            namespaces = platform_namespaces(tree, graph)
        groups: dict[tuple[Any, ...], list[_Blocking]] = {}
        for i, hook in enumerate(_list(obj.data.get("webhooks"))):
            b = _blocks(obj, i, hook, namespaces)
            if b is not None:
                groups.setdefault((tuple(b.covered), b.explicit, b.selector), []).append(b)
        for blocking in groups.values():
            tree.report(
                WEBHOOK_BLOCKS,
                obj,
                ("webhooks", blocking[0].index, "failurePolicy" if blocking[0].explicit else "name"),
                _webhook_message(obj, blocking),
            )


def _webhook_message(obj: K8sObject, blocking: list[_Blocking]) -> str:
    first = blocking[0]
    order = {"kube-system": 1, "argocd": 2, "cert-manager": 2}
    covered = sorted(first.covered, key=lambda ns: (0 if ns == first.backend else order.get(ns, 3), ns))
    shown = ", ".join(covered[:5]) + (f" and {len(covered) - 5} more" if len(covered) > 5 else "")
    others = ""
    if len(blocking) > 1:
        names = ", ".join(repr(b.name) for b in blocking[1:4])
        more = f" and {len(blocking) - 4} more" if len(blocking) > 4 else ""
        others = f" (and {len(blocking) - 1} more like it: {names}{more})"
    policy = "failurePolicy: Fail" if first.explicit else "no failurePolicy (v1 defaults to Fail)"
    selector = {
        "set": "its namespaceSelector covers",
        "empty": "an empty namespaceSelector, so it covers",
        "absent": "no namespaceSelector, so it covers",
    }[first.selector]
    return (
        f"{obj.kind} {obj.name}: webhook {first.name!r}{others} has {policy} and {selector} the "
        f"platform's namespaces {shown}: while its backend is down (not started yet, crashed, certificate "
        "not issued) every matching create/update there is rejected, its own backend's, cert-manager's and "
        "Argo CD's included, and the cluster cannot repair itself; set failurePolicy: Ignore or a "
        f"namespaceSelector that excludes them (e.g. {NAME_LABEL} NotIn [...])"
    )


def _blocks(
    obj: K8sObject, index: int, hook: Any, namespaces: dict[str, list[dict[str, str]]]
) -> _Blocking | None:
    if not isinstance(hook, dict):
        return None
    policy = hook.get("failurePolicy")
    default = "Ignore" if obj.api_version.endswith("/v1beta1") else "Fail"
    if (policy if policy is not None else default) != "Fail":
        return None
    if _dict(hook.get("objectSelector")):
        return None  # only labelled objects: not the platform's own workloads
    if not _intercepts_workloads(hook):
        return None  # only its own kinds (an operator validating its CRDs): fail-closed is the point
    selector = hook.get("namespaceSelector")
    covered = [
        ns
        for ns, label_sets in namespaces.items()
        if any(selector_matches(selector, ls) for ls in label_sets)
    ]
    if not covered:
        return None
    backend = _dict(_dict(hook.get("clientConfig")).get("service")).get("namespace")
    return _Blocking(
        index,
        str(hook.get("name", f"webhooks[{index}]")),
        policy is not None,
        covered,
        "set" if _dict(selector) else "empty" if "namespaceSelector" in hook else "absent",
        str(backend) if backend else None,
    )


# What the platform's own components need to (re)start: a fail-closed webhook on these can deadlock it.
_WORKLOAD_RESOURCES = {
    "": {"pods", "services", "configmaps", "secrets", "serviceaccounts", "namespaces", "endpoints"},
    "apps": {"deployments", "replicasets", "statefulsets", "daemonsets"},
    "batch": {"jobs", "cronjobs"},
    "coordination.k8s.io": {"leases"},
    "rbac.authorization.k8s.io": {"roles", "rolebindings", "clusterroles", "clusterrolebindings"},
}


def _intercepts_workloads(hook: dict[str, Any]) -> bool:
    """Whether any rule of `hook` matches a kind in _WORKLOAD_RESOURCES (`*` and subresources count)."""
    for rule in _list(hook.get("rules")):
        rule = _dict(rule)
        groups = [str(g) for g in _list(rule.get("apiGroups"))]
        resources = [str(r).split("/", 1)[0] for r in _list(rule.get("resources"))]
        for group in groups:
            known = (
                set().union(*_WORKLOAD_RESOURCES.values()) if group == "*" else _WORKLOAD_RESOURCES.get(group)
            )
            if known and any(r == "*" or r in known for r in resources):
                return True
    return False


# --- argocd-hook-needs-later ----------------------------------------------------------------------


def sync_position(obj: K8sObject) -> tuple[int, int] | None:
    """(phase, wave) at which Argo CD first applies `obj` during a sync (phase: index in PreSync, Sync,
    PostSync); None for what a sync never applies (Skip, SyncFail, PostDelete, Helm test hooks...).
    Argo CD's own hook annotation wins over Helm's; the wave is the sync-wave annotation, else the Helm
    hook weight, else 0."""
    a = obj.annotations
    if ARGO_HOOK in a:
        types = {t.strip() for t in str(a[ARGO_HOOK]).split(",")}
    elif HELM_HOOK in a and str(a[HELM_HOOK]).strip() != "crd-install":
        types = {_HELM_PHASES.get(t.strip(), "") for t in str(a[HELM_HOOK]).split(",")}
    else:
        return 1, _wave(obj)
    phases = [i for i, p in enumerate(_PHASES) if p in types]
    return (min(phases), _wave(obj)) if phases else None


def is_hook(obj: K8sObject) -> bool:
    return ARGO_HOOK in obj.annotations or (
        HELM_HOOK in obj.annotations and str(obj.annotations[HELM_HOOK]).strip() != "crd-install"
    )


def _wave(obj: K8sObject) -> int:
    for key in (WAVE, HELM_WEIGHT):
        raw = obj.annotations.get(key)
        if raw is not None and not isinstance(raw, bool) and _INT.fullmatch(str(raw)):
            return int(str(raw))
    return 0


@dataclass
class _Provider:
    obj: K8sObject
    position: tuple[int, int]
    via: str  # "" for the object itself, else what produces it ("ExternalSecret x")


@dataclass
class _Ref:
    kind: str  # Secret, ConfigMap or Service
    name: str
    namespace: str | None  # None: the pod's own
    path: JsonPath
    how: str


def _app_key(obj: K8sObject, graph: AppGraph) -> tuple[str, Any]:
    app = graph.deployed_by.get(id(obj))
    return ("app", id(app.obj)) if app is not None else ("unit", obj.unit)


def _provided(obj: K8sObject) -> Iterator[tuple[str, str, str]]:
    """(kind, name, via) of what `obj` is or creates: Secrets, ConfigMaps and Services."""
    if obj.group == "" and obj.kind in ("Secret", "ConfigMap", "Service"):
        yield obj.kind, obj.name, ""
    elif obj.kind == "ExternalSecret" and obj.group.startswith("external-secrets.io"):
        target = _dict(obj.spec.get("target")).get("name") or obj.name
        yield "Secret", str(target), f"ExternalSecret {obj.name}"
    elif obj.kind == "Certificate" and obj.group == "cert-manager.io" and obj.spec.get("secretName"):
        yield "Secret", str(obj.spec["secretName"]), f"Certificate {obj.name}"


def hooks(tree: Tree, graph: AppGraph) -> None:
    providers: dict[tuple[tuple[str, Any], str, str, str], list[_Provider]] = {}
    hook_refs: list[tuple[K8sObject, tuple[int, int], PodSpecRef]] = []
    for obj in tree.objects:
        pos = sync_position(obj)
        if pos is None:
            continue
        ns = graph.namespace_of(obj) or ""
        key = _app_key(obj, graph)
        for kind, name, via in _provided(obj):
            providers.setdefault((key, kind, ns, name), []).append(_Provider(obj, pos, via))
        if is_hook(obj):
            hook_refs.extend((obj, pos, ref) for ref in pod_specs(obj))
    for obj, pos, ref in hook_refs:
        key, own_ns = _app_key(obj, graph), graph.namespace_of(obj) or ""
        seen: set[tuple[str, str, str]] = set()
        for r in _references(ref):
            ns = r.namespace or own_ns
            if (r.kind, ns, r.name) in seen:
                continue
            found = providers.get((key, r.kind, ns, r.name))
            if not found or any(p.obj is obj for p in found):
                continue
            earliest = min(found, key=lambda p: p.position)
            if earliest.position <= pos:
                continue
            seen.add((r.kind, ns, r.name))
            tree.report(HOOK_NEEDS_LATER, obj, r.path, _hook_message(obj, pos, r, ns, own_ns, earliest))


def _hook_message(
    obj: K8sObject, pos: tuple[int, int], r: _Ref, ns: str, own_ns: str, target: _Provider
) -> str:
    phase, wave = _PHASES[pos[0]], pos[1]
    t_phase, t_wave = _PHASES[target.position[0]], target.position[1]
    what = "a plain object" if not is_hook(target.obj) else f"a {t_phase} hook"
    via = f" (created by {target.via})" if target.via else ""
    where = f"{ns}/" if ns != own_ns else ""
    if r.kind == "Service":
        effect = "cannot reach it and fails"
    elif "volume" in r.how:
        effect = "cannot mount it and never starts"
    else:
        effect = "never starts (CreateContainerConfigError)"
    fix = (
        " or run the hook later"
        if r.kind == "Service"
        else ", run the hook later, or mark the reference optional: true"
    )
    if pos[0] == 0 and target.position[0] > 0:
        why = "PreSync hooks run before any other object of the Application is applied"
    else:
        why = f"the hook runs in {phase} wave {wave}, before {t_phase} wave {t_wave}"
    return (
        f"{phase} hook {obj.kind}/{obj.name} (wave {wave}) needs {r.kind} {where}{r.name} ({r.how}), which "
        f"its Application creates later in the sync: {what}{via}, {t_phase} phase, wave {t_wave} ({why}); "
        f"on the first sync the hook pod {effect}, so the sync never completes; apply the {r.kind} earlier "
        f"(a hook of an earlier phase or wave){fix}"
    )


def _references(ref: PodSpecRef) -> Iterator[_Ref]:
    """The Secrets, ConfigMaps and Services a pod template needs (optional references left out)."""
    for c, path in ref.containers:
        for i, e in enumerate(_list(c.get("env"))):
            if not isinstance(e, dict):
                continue
            vf = _dict(e.get("valueFrom"))
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                sel = _dict(vf.get(key))
                if sel.get("name") and sel.get("optional") is not True:
                    yield _Ref(
                        kind,
                        str(sel["name"]),
                        None,
                        (*path, "env", i, "valueFrom", key, "name"),
                        f"env {e.get('name')} {key}",
                    )
            if isinstance(e.get("value"), str):
                for host in _hosts(e["value"]):
                    if svc := _service(host, (*path, "env", i, "value"), f"env {e.get('name')}"):
                        yield svc
        for i, e in enumerate(_list(c.get("envFrom"))):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                sel = _dict(_dict(e).get(key))
                if sel.get("name") and sel.get("optional") is not True:
                    yield _Ref(
                        kind, str(sel["name"]), None, (*path, "envFrom", i, key, "name"), f"envFrom {key}"
                    )
        for field in ("command", "args"):
            for i, arg in enumerate(_list(c.get(field))):
                if isinstance(arg, str):
                    for host in _hosts(arg):
                        if svc := _service(host, (*path, field, i), f"{field}[{i}]"):
                            yield svc
    for i, vol in enumerate(_list(ref.spec.get("volumes"))):
        vol = _dict(vol)
        base = (*ref.path, "volumes", i)
        name = vol.get("name", i)
        sec, cm = _dict(vol.get("secret")), _dict(vol.get("configMap"))
        if sec.get("secretName") and sec.get("optional") is not True:
            yield _Ref(
                "Secret", str(sec["secretName"]), None, (*base, "secret", "secretName"), f"volume {name}"
            )
        if cm.get("name") and cm.get("optional") is not True:
            yield _Ref("ConfigMap", str(cm["name"]), None, (*base, "configMap", "name"), f"volume {name}")
        for j, src in enumerate(_list(_dict(vol.get("projected")).get("sources"))):
            for key, kind in (("secret", "Secret"), ("configMap", "ConfigMap")):
                sel = _dict(_dict(src).get(key))
                if sel.get("name") and sel.get("optional") is not True:
                    yield _Ref(
                        kind,
                        str(sel["name"]),
                        None,
                        (*base, "projected", "sources", j, key, "name"),
                        f"projected volume {name}",
                    )


_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_URL_HOST = re.compile(rf"[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^/@\s]*@)?({_HOST.pattern})(?![-a-z0-9.])")
_HOST_PORT = re.compile(rf"(?<![-a-zA-Z0-9./:@])({_HOST.pattern}):[0-9]+\b")


def _hosts(text: str) -> Iterator[str]:
    """Host names `text` uses as addresses: URL hosts, host:port, the whole text (or the value of a
    --flag=value) when it is a host name. A name inside a list (--hosts=a,b) is not an address."""
    for m in _URL_HOST.finditer(text):
        yield m.group(1)
    for m in _HOST_PORT.finditer(text):
        yield m.group(1)
    value = text.strip()
    if value.startswith("-") and "=" in value:
        value = value.split("=", 1)[1]
    if _HOST.fullmatch(value):
        yield value


def _service(host: str, path: JsonPath, how: str) -> _Ref | None:
    """A Service reference from a DNS name: <svc>, <svc>.<ns>, <svc>.<ns>.svc[.cluster.local]."""
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] != "svc":
        return None  # a name outside the cluster
    return _Ref("Service", parts[0], parts[1] if len(parts) > 1 else None, path, f"{how} names {host}")


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}
