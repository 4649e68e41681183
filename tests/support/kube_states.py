"""Cluster states for the pure `llm_platform.cluster` logic: `StateKube` and Application documents.

`StateKube` is a state holder, not a fake cluster: it implements the `kube.Kube` protocol over a dict
of documents (get, list, apply by key) and can play a script of states, one per `list_objects` call,
or raise a ClusterError on a given call. It validates nothing, defaults nothing and runs no controller.

The Application documents are shaped as Argo CD v3.4 writes them (the Application CRD of the argo-cd
chart 9.5.21: `status.sync`, `status.health`, `status.conditions`, `status.operationState` with its
`syncResult.resources`, `status.resources`, `summary`, `reconciledAt`); tests/test_cluster_status.py
validates every one of them against that CRD."""

from __future__ import annotations

import copy
import zlib
from typing import Any

from llm_platform.cluster.kube import ClusterError

API = "argoproj.io/v1alpha1"
SERVER = "https://kubernetes.default.svc"
REPO = "https://github.com/llm-platform-example/llm-platform.git"
REVISION = "4f1c9d2e8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
T0 = "2026-05-04T10:00:00Z"
T1 = "2026-05-04T10:01:30Z"

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


class StateKube:
    """`Kube` over a dict. `script`: states (lists of documents) that replace the whole state, one per
    `list_objects` call, the last one staying; `fail_on`: {call number: ClusterError} for the n-th call of
    any method (1-based); `refuse`: {name: ClusterError} for a dry run of that object (an admission
    refusal). `calls` records (method, kind, name) and `applied` every applied object."""

    def __init__(
        self,
        objects: list[dict[str, Any]] | None = None,
        *,
        script: list[list[dict[str, Any]]] | None = None,
        fail_on: dict[int, ClusterError] | None = None,
    ) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.script = [list(s) for s in script or []]
        self.fail_on = dict(fail_on or {})
        self.calls: list[tuple[str, str, str]] = []
        self.applied: list[dict[str, Any]] = []
        self.refuse: dict[str, ClusterError] = {}  # dry_run of the object of that name raises this
        self.put(*(objects or []))

    def put(self, *objects: dict[str, Any]) -> None:
        for obj in objects:
            self.objects[key_of(obj)] = copy.deepcopy(obj)

    def _call(self, method: str, kind: str, name: str = "") -> None:
        self.calls.append((method, kind, name))
        error = self.fail_on.get(len(self.calls))
        if error is not None:
            raise error

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        self._call("get", kind, name)
        obj = self.objects.get((api_version, kind, namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        self._call("list", kind)
        if self.script:
            state = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            self.objects = {}
            self.put(*state)
        return [
            copy.deepcopy(o)
            for (av, k, ns, _), o in sorted(self.objects.items())
            if av == api_version and k == kind and (namespace is None or ns == namespace)
        ]

    def apply(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self._call("apply", ",".join(o["kind"] for o in objects))
        out = []
        for obj in objects:
            self.applied.append(copy.deepcopy(obj))
            live = self.objects.get(key_of(obj))
            new = copy.deepcopy(obj)
            if live is not None and "status" in live:  # status is a subresource: an apply keeps it
                new["status"] = copy.deepcopy(live["status"])
            self.objects[key_of(obj)] = new
            out.append(copy.deepcopy(new))
        return out

    def dry_run(self, obj: dict[str, Any]) -> None:
        self._call("dry_run", obj["kind"], obj["metadata"]["name"])
        error = self.refuse.get(obj["metadata"]["name"])
        if error is not None:
            raise error


def application(
    name: str,
    *,
    wave: int | str | None = 0,
    sync: str = "Synced",
    health: str = "Healthy",
    health_message: str | None = None,
    namespace: str = "argocd",
    destination: str = "platform",
    phase: str = "Succeeded",
    op_message: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    resources: list[dict[str, Any]] | None = None,
    sync_results: list[dict[str, Any]] | None = None,
    resource_health_source: str | None = None,
    with_status: bool = True,
) -> dict[str, Any]:
    """An Application as `kubectl get application -o json` returns it, its status as Argo CD v3.4 writes
    it: automated sync (so an `operationState` of `phase`), `resources` and the last `syncResult`."""
    annotations = {} if wave is None else {"argocd.argoproj.io/sync-wave": str(wave)}
    app: dict[str, Any] = {
        "apiVersion": API,
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}",
            "resourceVersion": "12345",
            "generation": 3,
            "creationTimestamp": T0,
            "annotations": annotations,
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            "labels": {"argocd.argoproj.io/instance": "root"},
        },
        "spec": {
            "project": "platform",
            "source": {"repoURL": REPO, "targetRevision": "main", "path": f"gitops/platform/{name}"},
            "destination": {"server": SERVER, "namespace": destination},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }
    if not with_status:
        return app
    if resources is None:
        resources = [resource("apps", "Deployment", destination, name, health=health, sync=sync)]
    if sync_results is None:
        sync_results = [
            sync_result("apps", "Deployment", destination, name, message=f"deployment.apps/{name} created")
        ]
    health_block: dict[str, Any] = {"status": health, "lastTransitionTime": T1}
    if health_message is not None:
        health_block["message"] = health_message
    operation_state: dict[str, Any] = {
        "operation": {
            "initiatedBy": {"automated": True},
            "retry": {"limit": 5},
            "sync": {"revision": REVISION, "prune": True, "syncStrategy": {"hook": {}}},
        },
        "phase": phase,
        "message": op_message
        if op_message is not None
        else {
            "Succeeded": "successfully synced (all tasks run)",
            "Running": "one or more tasks are running",
        }.get(phase, ""),
        "startedAt": T0,
        "syncResult": {
            "revision": REVISION,
            "source": app["spec"]["source"],
            "resources": sync_results,
        },
    }
    if phase != "Running":
        operation_state["finishedAt"] = T1
    status: dict[str, Any] = {
        "sync": {
            "status": sync,
            "revision": REVISION,
            "comparedTo": {"source": app["spec"]["source"], "destination": app["spec"]["destination"]},
        },
        "health": health_block,
        "conditions": conditions or [],
        "operationState": operation_state,
        "resources": resources,
        "summary": {"images": [f"registry.example/{name}:1.0.0"]},
        "reconciledAt": T1,
        "observedAt": T1,
        "sourceType": "Directory",
        "controllerNamespace": "argocd",
    }
    if not conditions:
        del status["conditions"]
    if resource_health_source is not None:
        status["resourceHealthSource"] = resource_health_source
    app["status"] = status
    return app


def resource(
    group: str,
    kind: str,
    namespace: str,
    name: str,
    *,
    health: str | None = "Healthy",
    message: str | None = None,
    sync: str = "Synced",
    version: str = "v1",
) -> dict[str, Any]:
    """An entry of `status.resources` (health absent when `health` is None: a kind without health, or
    resource health kept in the resource tree)."""
    res: dict[str, Any] = {
        "group": group,
        "version": version,
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "status": sync,
    }
    if health is not None:
        res["health"] = {"status": health, **({"message": message} if message is not None else {})}
    return res


def sync_result(
    group: str,
    kind: str,
    namespace: str,
    name: str,
    *,
    status: str = "Synced",
    message: str = "",
    hook_phase: str = "Running",
    version: str = "v1",
) -> dict[str, Any]:
    """An entry of `operationState.syncResult.resources`."""
    return {
        "group": group,
        "version": version,
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "status": status,
        "message": message,
        "hookPhase": hook_phase,
        "syncPhase": "Sync",
    }


def condition(type_: str, message: str) -> dict[str, Any]:
    return {"type": type_, "message": message, "lastTransitionTime": T1}
