"""The in-cluster git server `kind-test` serves the checkout from: `git daemon` over the git protocol,
read-only, in the argocd namespace, holding one commit (the snapshot's bundle, from a ConfigMap).

It runs the Argo CD image the bootstrap installs (the cluster has pulled it already, and its Ubuntu `git`
ships `git daemon`), as Argo CD's own non-root uid. Argo CD reads `git://` repositories with no credential.
The objects carry no Argo CD tracking id: no Application renders them, so none prunes them.

`SERVE_SCRIPT` is the whole server; the tests run exactly this script with a local git to prove that what it
serves is the snapshot's commit."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from llm_platform.cluster.bootstrap import ARGOCD_NAMESPACE
from llm_platform.errors import PlatformError

NAME = "llm-platform-git"
PORT = 9418  # git's registered port
REPOSITORY = "platform.git"
SERVED_URL = f"git://{NAME}.{ARGOCD_NAMESPACE}.svc.cluster.local/{REPOSITORY}"
BUNDLE_KEY = "served.bundle"
COMMIT_ANNOTATION = "llm-platform.io/served-commit"  # on the pod template: a new snapshot rolls the pod
_ARGOCD_UID = 999  # the argocd user of the Argo CD image
_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "llm-platform-kind-test"}

# $BUNDLE, $GIT_ROOT, $LISTEN and $PORT come from the container's environment (and from the tests).
CLONE_SCRIPT = 'set -eu\nrm -rf "$GIT_ROOT/platform.git"\nexec git clone --quiet --mirror "$BUNDLE" "$GIT_ROOT/platform.git"\n'
SERVE_SCRIPT = (
    "set -eu\n"
    'exec git daemon --reuseaddr --export-all --informative-errors --listen="$LISTEN" --port="$PORT" '
    '--base-path="$GIT_ROOT" "$GIT_ROOT"\n'
)


def argocd_image(bootstrap_objects: list[dict[str, Any]]) -> str:
    """The image of the Argo CD repo-server among the bootstrap's objects (it has git)."""
    for obj in bootstrap_objects:
        if (
            obj.get("kind") == "Deployment"
            and (obj.get("metadata") or {}).get("name") == "argocd-repo-server"
        ):
            for container in obj["spec"]["template"]["spec"].get("containers") or []:
                if container.get("name") == "repo-server" and container.get("image"):
                    return str(container["image"])
    raise PlatformError("the Argo CD render has no argocd-repo-server Deployment with a repo-server image")


def server_objects(bundle: Path, commit: str, image: str) -> list[dict[str, Any]]:
    """The ConfigMap with the bundle, the Deployment that clones and serves it, and its Service."""
    meta = {"namespace": ARGOCD_NAMESPACE, "labels": dict(_LABELS)}
    security = {
        "runAsNonRoot": True,
        "runAsUser": _ARGOCD_UID,
        "runAsGroup": _ARGOCD_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    env = [
        {"name": "BUNDLE", "value": f"/bundle/{BUNDLE_KEY}"},
        {"name": "GIT_ROOT", "value": "/srv/git"},
        {"name": "LISTEN", "value": "0.0.0.0"},
        {"name": "PORT", "value": str(PORT)},
        {"name": "HOME", "value": "/srv/git"},
    ]
    resources = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
    mounts = [{"name": "repository", "mountPath": "/srv/git"}]
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{NAME}-bundle", **meta},
        "binaryData": {BUNDLE_KEY: base64.b64encode(bundle.read_bytes()).decode()},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, **meta},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": dict(_LABELS), "annotations": {COMMIT_ANNOTATION: commit}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"fsGroup": _ARGOCD_UID},
                    "initContainers": [
                        {
                            "name": "clone",
                            "image": image,
                            "command": ["sh", "-c", CLONE_SCRIPT],
                            "env": env,
                            "securityContext": security,
                            "resources": resources,
                            "volumeMounts": [
                                *mounts,
                                {"name": "bundle", "mountPath": "/bundle", "readOnly": True},
                            ],
                        }
                    ],
                    "containers": [
                        {
                            "name": "git-daemon",
                            "image": image,
                            "command": ["sh", "-c", SERVE_SCRIPT],
                            "env": env,
                            "ports": [{"name": "git", "containerPort": PORT, "protocol": "TCP"}],
                            "readinessProbe": {"tcpSocket": {"port": "git"}, "periodSeconds": 5},
                            "livenessProbe": {"tcpSocket": {"port": "git"}, "periodSeconds": 20},
                            "securityContext": security,
                            "resources": resources,
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": [
                        {"name": "repository", "emptyDir": {"sizeLimit": "64Mi"}},
                        {"name": "bundle", "configMap": {"name": f"{NAME}-bundle"}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, **meta},
        "spec": {
            "selector": {"app.kubernetes.io/name": NAME},
            "ports": [{"name": "git", "port": PORT, "targetPort": "git", "protocol": "TCP"}],
        },
    }
    # One fresh object graph: shared dicts would come out of a YAML dump as anchors and aliases.
    return json.loads(json.dumps([configmap, service, deployment]))
