"""Where pods hide in each kind: pod specs, their labels and containers, with JSON paths for positions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llm_platform.lint.sources import JsonPath
from llm_platform.lint.tree import K8sObject

GPU = "nvidia.com/gpu"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
ISVC_POD_LABEL = "serving.kserve.io/inferenceservice"
KSERVE_DEFAULT_PORT = 8080


@dataclass
class PodSpecRef:
    obj: K8sObject
    spec: dict[str, Any]
    path: JsonPath  # JSON path of the pod spec in obj
    labels: dict[str, str]  # labels the pods will carry
    containers: list[tuple[dict[str, Any], JsonPath]]
    is_isvc: bool = False


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _containers(spec: dict[str, Any], base: JsonPath) -> list[tuple[dict[str, Any], JsonPath]]:
    out = []
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, dict):
                out.append((c, (*base, key, i)))
    return out


def _template(obj: K8sObject, path: JsonPath, tmpl: dict[str, Any]) -> PodSpecRef | None:
    spec = tmpl.get("spec")
    if not isinstance(spec, dict):
        return None
    labels = {str(k): str(v) for k, v in _d(_d(tmpl.get("metadata")).get("labels")).items()}
    return PodSpecRef(obj, spec, (*path, "spec"), labels, _containers(spec, (*path, "spec")))


def pod_specs(obj: K8sObject) -> Iterator[PodSpecRef]:
    kind, spec = obj.kind, obj.spec
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        ref = _template(obj, ("spec", "template"), _d(spec.get("template")))
        if ref:
            yield ref
    elif kind == "CronJob":
        ref = _template(
            obj,
            ("spec", "jobTemplate", "spec", "template"),
            _d(_d(_d(spec.get("jobTemplate")).get("spec")).get("template")),
        )
        if ref:
            yield ref
    elif kind == "Pod" and obj.group == "":
        yield PodSpecRef(obj, spec, ("spec",), obj.labels, _containers(spec, ("spec",)))
    elif kind == "LeaderWorkerSet":
        lwt = _d(spec.get("leaderWorkerTemplate"))
        for key in ("leaderTemplate", "workerTemplate"):
            ref = _template(obj, ("spec", "leaderWorkerTemplate", key), _d(lwt.get(key)))
            if ref:
                yield ref
    elif kind == "InferenceService" and obj.group == "serving.kserve.io":
        pred = _d(spec.get("predictor"))
        base: JsonPath = ("spec", "predictor")
        containers = _containers(pred, base)
        model = pred.get("model")
        if isinstance(model, dict):
            containers.append((model, (*base, "model")))
        labels = dict(obj.labels)
        labels.update({str(k): str(v) for k, v in _d(pred.get("labels")).items()})
        labels[ISVC_POD_LABEL] = obj.name
        yield PodSpecRef(obj, pred, base, labels, containers, is_isvc=True)


def gpu_count(container: dict[str, Any]) -> tuple[Any, Any]:
    res = _d(container.get("resources"))
    return _d(res.get("requests")).get(GPU), _d(res.get("limits")).get(GPU)


def uses_gpu(ref: PodSpecRef) -> bool:
    return any(any(v is not None for v in gpu_count(c)) for c, _ in ref.containers)


def container_ports(ref: PodSpecRef) -> set[int] | None:
    """Declared container ports; None when no container declares any (nothing to compare)."""
    ports = {
        p.get("containerPort")
        for c, _ in ref.containers
        for p in (c.get("ports") or [])
        if isinstance(p, dict)
    }
    ports.discard(None)
    if ref.is_isvc:
        ports.add(KSERVE_DEFAULT_PORT)
    return {int(p) for p in ports if isinstance(p, int)} or None


def container_args(container: dict[str, Any]) -> list[str]:
    return [str(a) for a in list(container.get("command") or []) + list(container.get("args") or [])]
