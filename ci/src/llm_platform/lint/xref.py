"""Cross-reference rules: objects that name other objects must find them in the tree.

A reference into a namespace where an unrendered Helm chart also deploys is not reported as missing:
the chart may create the target (the report lists those charts under coverage.not_rendered)."""

from __future__ import annotations

import re
from typing import Any

from llm_platform.documents import MANIFEST_LIMITS, DocumentError, load_yaml
from llm_platform.lint.argocd import AppGraph
from llm_platform.lint.sources import SourceDoc, finding
from llm_platform.lint.tree import K8sObject, Tree
from llm_platform.lint.workloads import (
    GPU,
    QUEUE_LABEL,
    PodSpecRef,
    container_args,
    container_ports,
    pod_specs,
    uses_gpu,
)

_POOL_GROUPS = ("inference.networking.k8s.io", "inference.networking.x-k8s.io")


class _Index:
    def __init__(self, tree: Tree, graph: AppGraph) -> None:
        self.tree, self.graph = tree, graph
        self.by_kind: dict[str, list[K8sObject]] = {}
        self.by_name: dict[tuple[str, str], list[K8sObject]] = {}
        for o in tree.objects:
            self.by_kind.setdefault(o.kind, []).append(o)
            self.by_name.setdefault((o.kind, o.name), []).append(o)
        # Services the KServe controller creates for each InferenceService (Standard mode).
        self.generated_services: set[tuple[str | None, str]] = set()
        for isvc in self.by_kind.get("InferenceService", []):
            for suffix in ("", "-predictor"):
                self.generated_services.add((self.ns(isvc), isvc.name + suffix))
        self.pods: list[PodSpecRef] = [r for o in tree.objects for r in pod_specs(o)]
        self.lines: dict[str, list[str]] = {}

    def ns(self, obj: K8sObject) -> str | None:
        return self.graph.namespace_of(obj)

    def find(self, kind: str, name: str, ns: str | None) -> bool | None:
        """True found, False missing, None unknown (an unrendered chart deploys into that namespace)."""
        for o in self.by_name.get((kind, name), []):
            if ns is None or self.ns(o) in (ns, None):
                return True
        if kind == "Service" and any(
            n == name and (ns is None or gns in (ns, None)) for gns, n in self.generated_services
        ):
            return True
        if ns is not None and ns in self.graph.helm_namespaces:
            return None
        if ns is None and self.graph.helm_namespaces:
            return None
        return False

    def maybe_external(self, ns: str | None) -> bool:
        return (ns in self.graph.helm_namespaces) if ns is not None else bool(self.graph.helm_namespaces)


def check(tree: Tree, graph: AppGraph) -> None:
    idx = _Index(tree, graph)
    _httproutes(idx)
    _pools(idx)
    _scaledobjects(idx)
    _externalsecrets(idx)
    _servicemonitors(idx)
    _queues(idx)
    _litellm(idx)


def _httproutes(idx: _Index) -> None:
    for route in idx.by_kind.get("HTTPRoute", []):
        ns = idx.ns(route)
        for i, parent in enumerate(route.spec.get("parentRefs") or []):
            if not isinstance(parent, dict) or parent.get("kind", "Gateway") != "Gateway":
                continue
            pns = parent.get("namespace", ns)
            if idx.find("Gateway", str(parent.get("name")), pns) is False:
                idx.tree.report(
                    "xref-httproute-parent",
                    route,
                    ("spec", "parentRefs", i, "name"),
                    f"parent Gateway {parent.get('name')!r} (namespace {pns}) is not in the tree",
                )
        for r, rule in enumerate(route.spec.get("rules") or []):
            for b, ref in enumerate((rule or {}).get("backendRefs") or []):
                if not isinstance(ref, dict):
                    continue
                kind, group = ref.get("kind", "Service"), ref.get("group", "")
                if (kind == "InferencePool" and group in _POOL_GROUPS) or (
                    kind == "Service" and group in ("", "core")
                ):
                    bns = ref.get("namespace", ns)
                    if idx.find(kind, str(ref.get("name")), bns) is False:
                        idx.tree.report(
                            "xref-httproute-backend",
                            route,
                            ("spec", "rules", r, "backendRefs", b, "name"),
                            f"backendRef {kind} {ref.get('name')!r} (namespace {bns}) is not in the tree",
                        )
                    elif kind == "Service" and isinstance(ref.get("port"), int):
                        svcs = [
                            o
                            for o in idx.by_kind.get("Service", [])
                            if o.name == ref.get("name") and idx.ns(o) in (bns, None)
                        ]
                        ports: set[Any] = {
                            p.get("port")
                            for o in svcs
                            for p in (o.spec.get("ports") or [])
                            if isinstance(p, dict)
                        }
                        if svcs and ref["port"] not in ports:
                            idx.tree.report(
                                "xref-httproute-backend",
                                route,
                                ("spec", "rules", r, "backendRefs", b, "port"),
                                f"Service {ref.get('name')!r} has no port {ref['port']} ({sorted(ports)})",
                            )


def _selector(pool: K8sObject) -> dict[str, str]:
    sel = pool.spec.get("selector") or {}
    labels = sel.get("matchLabels") if isinstance(sel.get("matchLabels"), dict) else sel
    return {str(k): str(v) for k, v in (labels or {}).items() if not isinstance(v, (dict, list))}


def _pools(idx: _Index) -> None:
    for pool in idx.by_kind.get("InferencePool", []):
        ns = idx.ns(pool)
        sel = _selector(pool)
        sel_path = (
            ("spec", "selector", "matchLabels")
            if "matchLabels" in (pool.spec.get("selector") or {})
            else ("spec", "selector")
        )
        matched = [
            p
            for p in idx.pods
            if sel
            and all(p.labels.get(k) == v for k, v in sel.items())
            and (ns is None or idx.ns(p.obj) in (ns, None))
        ]
        if not matched:
            if not idx.maybe_external(ns):
                idx.tree.report(
                    "xref-pool-selector",
                    pool,
                    sel_path,
                    f"selector {sel} matches no model-server pods in namespace {ns}",
                )
        else:
            declared: set[int] = set()
            unknown = False
            for p in matched:
                ports = container_ports(p)
                if ports is None:
                    unknown = True
                else:
                    declared |= ports
            for i, tp in enumerate(pool.spec.get("targetPorts") or []):
                num = (tp or {}).get("number") if isinstance(tp, dict) else None
                if isinstance(num, int) and not unknown and num not in declared:
                    idx.tree.report(
                        "xref-pool-port",
                        pool,
                        ("spec", "targetPorts", i, "number"),
                        f"target port {num} is not a container port of the selected pods "
                        f"({sorted(declared)})",
                    )
        epp = pool.spec.get("endpointPickerRef")
        if isinstance(epp, dict) and epp.get("kind", "Service") == "Service" and not epp.get("group"):
            name = str(epp.get("name"))
            svcs = [s for s in idx.by_kind.get("Service", []) if s.name == name and idx.ns(s) in (ns, None)]
            if not svcs:
                if not idx.maybe_external(ns):
                    idx.tree.report(
                        "xref-pool-endpoint-picker",
                        pool,
                        ("spec", "endpointPickerRef", "name"),
                        f"endpoint picker Service {name!r} is not in the tree",
                    )
                continue
            port = (epp.get("port") or {}).get("number") if isinstance(epp.get("port"), dict) else None
            svc_ports: set[Any] = {
                p.get("port") for s in svcs for p in (s.spec.get("ports") or []) if isinstance(p, dict)
            }
            if port is not None and port not in svc_ports:
                idx.tree.report(
                    "xref-pool-endpoint-picker",
                    pool,
                    ("spec", "endpointPickerRef", "port", "number"),
                    f"endpoint picker Service {name!r} has no port {port} ({sorted(svc_ports)})",
                )


def _scaledobjects(idx: _Index) -> None:
    for so in idx.by_kind.get("ScaledObject", []):
        ref = so.spec.get("scaleTargetRef") or {}
        kind = str(ref.get("kind", "Deployment"))
        if idx.find(kind, str(ref.get("name")), idx.ns(so)) is False:
            idx.tree.report(
                "xref-scaledobject-target",
                so,
                ("spec", "scaleTargetRef", "name"),
                f"scale target {kind} {ref.get('name')!r} is not in the tree",
            )


def _externalsecrets(idx: _Index) -> None:
    for es in idx.by_kind.get("ExternalSecret", []):
        ref = es.spec.get("secretStoreRef") or {}
        kind = str(ref.get("kind", "SecretStore"))
        ns = None if kind == "ClusterSecretStore" else idx.ns(es)
        found = any(
            o.name == ref.get("name") and (ns is None or idx.ns(o) in (ns, None))
            for o in idx.by_kind.get(kind, [])
        )
        if not found and (kind == "ClusterSecretStore" or not idx.maybe_external(ns)):
            idx.tree.report(
                "xref-externalsecret-store",
                es,
                ("spec", "secretStoreRef", "name"),
                f"{kind} {ref.get('name')!r} is not in the tree",
            )


# Services the cluster creates itself (not in any tree), as (namespace, name, labels, port names):
# - default/kubernetes, by the API server (k8s pkg/controlplane/controller/kubernetesservice: labels
#   component=apiserver, provider=kubernetes; port "https");
# - the kubelet Service prometheus-operator maintains when run with --kubelet-service=<ns>/<name>
#   (prometheus-operator pkg/kubelet: labels k8s-app=kubelet, app.kubernetes.io/name=kubelet,
#   app.kubernetes.io/managed-by=prometheus-operator; ports https-metrics, http-metrics, cadvisor).
_API_SERVER_SERVICE = (
    "default",
    "kubernetes",
    {"component": "apiserver", "provider": "kubernetes"},
    {"https"},
)
_KUBELET_LABELS = {
    "k8s-app": "kubelet",
    "app.kubernetes.io/name": "kubelet",
    "app.kubernetes.io/managed-by": "prometheus-operator",
}
_KUBELET_PORTS = {"https-metrics", "http-metrics", "cadvisor"}

# Pods of the cluster itself that a Service may select but whose metrics no in-cluster Prometheus
# reaches on the platform's clusters: on GKE the control plane is managed (no such pods) and kube-proxy
# is a static pod serving metrics on 127.0.0.1 (none at all with Dataplane V2); on kind, kubeadm binds
# these endpoints to 127.0.0.1 (--bind-address, --listen-metrics-urls and metricsBindAddress defaults).
_UNREACHABLE_CLUSTER_PODS: list[tuple[dict[str, str], str]] = [
    ({"component": "kube-controller-manager"}, "kube-controller-manager"),
    ({"component": "kube-scheduler"}, "kube-scheduler"),
    ({"component": "etcd"}, "etcd"),
    ({"k8s-app": "kube-proxy"}, "kube-proxy"),
]


class _Svc:
    def __init__(
        self, ns: str | None, labels: dict[str, str], ports: set[str], obj: K8sObject | None
    ) -> None:
        self.ns, self.labels, self.ports, self.obj = ns, labels, ports, obj


def _services(idx: _Index) -> list[_Svc]:
    out = [
        _Svc(
            idx.ns(s),
            s.labels,
            {str(p.get("name")) for p in (s.spec.get("ports") or []) if isinstance(p, dict)},
            s,
        )
        for s in idx.by_kind.get("Service", [])
    ]
    ns, _, labels, ports = _API_SERVER_SERVICE
    out.append(_Svc(ns, labels, ports, None))
    for ref in idx.pods:
        for c, _ in ref.containers:
            for arg in container_args(c):
                if arg.startswith("--kubelet-service="):
                    kns, _, _name = arg.split("=", 1)[1].partition("/")
                    out.append(_Svc(kns, _KUBELET_LABELS, _KUBELET_PORTS, None))
    return out


def _servicemonitors(idx: _Index) -> None:
    services = _services(idx)
    for sm in idx.by_kind.get("ServiceMonitor", []):
        ns = idx.ns(sm)
        nsel = sm.spec.get("namespaceSelector") or {}
        names = None if nsel.get("any") else (nsel.get("matchNames") or [ns])
        sel = (sm.spec.get("selector") or {}).get("matchLabels") or {}
        svcs = [
            s
            for s in services
            if all(s.labels.get(k) == str(v) for k, v in sel.items())
            and (names is None or s.ns in (*names, None))
        ]
        if not svcs:
            if not any(idx.maybe_external(n) for n in (names or [None])):
                idx.tree.report(
                    "xref-servicemonitor-selector",
                    sm,
                    ("spec", "selector"),
                    f"selector {sel} matches no Service in {names or 'any namespace'}",
                )
            continue
        port_names = {p for s in svcs for p in s.ports}
        for i, ep in enumerate(sm.spec.get("endpoints") or []):
            if isinstance(ep, dict) and ep.get("port") and ep["port"] not in port_names:
                idx.tree.report(
                    "xref-servicemonitor-selector",
                    sm,
                    ("spec", "endpoints", i, "port"),
                    f"endpoint port {ep['port']!r} is not a port name of the selected Services",
                )
        _unreachable_targets(idx, sm, svcs)


def _unreachable_targets(idx: _Index, sm: K8sObject, svcs: list[_Svc]) -> None:
    for svc in svcs:
        if svc.obj is None:
            continue
        selector = svc.obj.spec.get("selector")
        if not isinstance(selector, dict) or not selector:
            continue  # endpoints managed by hand or by a controller: nothing to follow
        if any(
            idx.ns(ref.obj) in (svc.ns, None)
            and all(ref.labels.get(k) == str(v) for k, v in selector.items())
            for ref in idx.pods
        ):
            continue  # pods of the tree's own workloads
        for labels, component in _UNREACHABLE_CLUSTER_PODS:
            if all(selector.get(k) == v for k, v in labels.items()):
                idx.tree.report(
                    "xref-servicemonitor-target",
                    sm,
                    ("spec", "selector"),
                    f"it scrapes Service {svc.obj.name!r}, whose pods ({selector}) are the cluster's own "
                    f"{component}: not reachable on GKE (managed) nor on kind (kubeadm binds it to "
                    "127.0.0.1), so its targets are down forever and its Down alert fires; disable that "
                    "component's monitoring (for a chart, in its values)",
                )
                break


def _queues(idx: _Index) -> None:
    cqs = {o.name for o in idx.by_kind.get("ClusterQueue", [])}
    for lq in idx.by_kind.get("LocalQueue", []):
        cq = lq.spec.get("clusterQueue")
        if cq and cq not in cqs:
            idx.tree.report(
                "xref-localqueue", lq, ("spec", "clusterQueue"), f"ClusterQueue {cq!r} is not in the tree"
            )
    lqs = idx.by_kind.get("LocalQueue", [])
    covered = {o.name: _covered_resources(o) for o in idx.by_kind.get("ClusterQueue", [])}
    for obj in idx.tree.objects:
        q = obj.labels.get(QUEUE_LABEL)
        if q is None or obj.kind == "LocalQueue":
            continue
        ns = idx.ns(obj)
        queue = next((lq for lq in lqs if lq.name == q and idx.ns(lq) in (ns, None)), None)
        if queue is None:
            idx.tree.report(
                "xref-localqueue",
                obj,
                ("metadata", "labels", QUEUE_LABEL),
                f"LocalQueue {q!r} does not exist in namespace {ns}",
            )
            continue
        cq = str(queue.spec.get("clusterQueue", ""))
        if cq in covered and any(uses_gpu(ref) for ref in pod_specs(obj)) and GPU not in covered[cq]:
            idx.tree.report(
                "xref-localqueue",
                obj,
                ("metadata", "labels", QUEUE_LABEL),
                f"GPU workload queues on {q!r} but ClusterQueue {cq!r} has no {GPU} quota: "
                "Kueue never admits it",
            )


def _covered_resources(cq: K8sObject) -> set[str]:
    """Resources a ClusterQueue has quota for (covered and given a nominal quota in some flavor)."""
    out: set[str] = set()
    for group in cq.spec.get("resourceGroups") or []:
        if not isinstance(group, dict):
            continue
        covered_names = {str(r) for r in group.get("coveredResources") or []}
        for flavor in group.get("flavors") or []:
            resources = flavor.get("resources") if isinstance(flavor, dict) else None
            for res in resources or []:
                if isinstance(res, dict) and str(res.get("name")) in covered_names:
                    out.add(str(res.get("name")))
    return out


_SERVED_FLAG = re.compile(r"^--served-model-name(?:=(.*))?$")


def served_model_names(idx: _Index) -> set[str]:
    names: set[str] = set()
    for ref in idx.pods:
        for c, _ in ref.containers:
            args = [_expand(a, c, ref) for a in container_args(c)]
            model_arg: str | None = None
            found = False
            for i, a in enumerate(args):
                m = _SERVED_FLAG.match(a)
                if m:
                    found = True
                    if m.group(1):
                        names.update(m.group(1).split())
                    else:
                        for nxt in args[i + 1 :]:
                            if nxt.startswith("--"):
                                break
                            names.add(nxt)
                elif a.startswith("--model_name="):
                    found = True
                    names.add(a.split("=", 1)[1])
                elif a.startswith("--model="):
                    model_arg = a.split("=", 1)[1]
            if not found and model_arg and ("vllm" in str(c.get("image", "")) or ref.is_isvc):
                names.add(model_arg)
        if ref.is_isvc and not any(
            _SERVED_FLAG.match(a) or a.startswith("--model_name=")
            for c, _ in ref.containers
            for a in container_args(c)
        ):
            names.add(ref.obj.name)
    return names


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_LABEL_REF = re.compile(r"^metadata\.labels\['([^']+)'\]$")


def _expand(arg: str, container: dict[str, Any], ref: PodSpecRef) -> str:
    """Kubernetes $(VAR) expansion from the container env: literal values and label/name fieldRefs."""
    env: dict[str, str] = {}
    for e in container.get("env") or []:
        if not isinstance(e, dict) or "name" not in e:
            continue
        if "value" in e:
            env[str(e["name"])] = str(e["value"])
        field_path = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if isinstance(field_path, str):
            m = _LABEL_REF.match(field_path)
            if m and m.group(1) in ref.labels:
                env[str(e["name"])] = ref.labels[m.group(1)]
            elif field_path == "metadata.name":
                env[str(e["name"])] = ref.obj.name

    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), arg)


def _model_lists(idx: _Index) -> list[tuple[list[Any], str, int, str]]:
    """(model_list, display path, line of `model_list`, text) from ConfigMaps and values files."""
    out: list[tuple[list[Any], str, int, str]] = []
    for cm in idx.by_kind.get("ConfigMap", []):
        data = cm.data.get("data")
        for key, text in data.items() if isinstance(data, dict) else ():  # not a mapping: schema-invalid
            if isinstance(text, str) and "model_list" in text:
                parsed = _embedded_yaml(text, cm.display)
                if isinstance(parsed, dict) and isinstance(parsed.get("model_list"), list):
                    line, _ = cm.at(("data", key))
                    out.append((parsed["model_list"], cm.display, line, text))
    for doc in idx.tree.value_docs:
        _values_model_list(doc, out)
    for app in idx.by_kind.get("Application", []):
        spec = app.spec
        sources: list[Any] = (
            spec["sources"] if isinstance(spec.get("sources"), list) else [spec.get("source")]
        )
        base: tuple[str | int, ...] = (
            ("spec", "sources") if isinstance(spec.get("sources"), list) else ("spec",)
        )
        for i, src in enumerate(sources):
            helm = src.get("helm") if isinstance(src, dict) else None
            if not isinstance(helm, dict):
                continue
            where = (*base, i, "helm") if base == ("spec", "sources") else ("spec", "source", "helm")
            obj_values = helm.get("valuesObject")
            ml = (
                (obj_values.get("proxy_config") or {}).get("model_list")
                if isinstance(obj_values, dict)
                else None
            )
            if isinstance(ml, list):
                line, _ = app.at((*where, "valuesObject", "proxy_config", "model_list"))
                out.append((ml, app.display, line, ""))
            text = helm.get("values")
            if isinstance(text, str) and "model_list" in text:
                parsed = _embedded_yaml(text, app.display)
                ml = (
                    (parsed.get("proxy_config") or {}).get("model_list") if isinstance(parsed, dict) else None
                )
                if isinstance(ml, list):
                    line, _ = app.at((*where, "values"))
                    out.append((ml, app.display, line, text))
    return out


def _embedded_yaml(text: str, display: str) -> Any:
    """A YAML document held in a string (a LiteLLM config in a ConfigMap or in Helm values); None when
    it does not parse (the LiteLLM pod would fail on it, which is not this rule's business)."""
    try:
        doc = load_yaml(text, source=display, limits=MANIFEST_LIMITS, unique_keys=False)
    except DocumentError:
        return None
    return doc.data if doc is not None else None


def _values_model_list(doc: SourceDoc, out: list[tuple[list[Any], str, int, str]]) -> None:
    data = doc.data
    for path in (("proxy_config", "model_list"), ("model_list",)):
        cur: Any = data
        for p in path:
            cur = cur.get(p) if isinstance(cur, dict) else None
        if isinstance(cur, list):
            line, _ = doc.locate(path)
            out.append((cur, doc.display, line, ""))
            return


def _litellm(idx: _Index) -> None:
    served = served_model_names(idx)
    if not served:
        return
    for model_list, display, line, text in _model_lists(idx):
        lines = text.splitlines()
        for entry in model_list:
            model = (
                str(((entry or {}).get("litellm_params") or {}).get("model", ""))
                if isinstance(entry, dict)
                else ""
            )
            provider, _, name = model.partition("/")
            if provider not in ("hosted_vllm", "openai") or not name or name in served:
                continue
            at = line
            if text:  # embedded config: point at the line inside the block scalar
                at = line + 1 + next((i for i, ln in enumerate(lines) if model in ln), 0)
            else:
                at = (
                    line
                    + 1
                    + next((i for i, ln in enumerate(_file_lines(idx, display)[line:]) if model in ln), -1)
                )
            idx.tree.findings.append(
                finding(
                    "xref-litellm-models",
                    display,
                    at,
                    1,
                    f"LiteLLM model {model!r}: no server serves {name!r} (served: {sorted(served)})",
                )
            )


def _file_lines(idx: _Index, display: str) -> list[str]:
    if display not in idx.lines:
        sf = next((sf for sf in idx.tree.files.values() if sf.display == display), None)
        idx.lines[display] = sf.text.splitlines() if sf else []
    return idx.lines[display]
