"""Policy rules: digest-pinned images and modelcars, GPU scheduling and Kueue, serving pod hygiene."""

from __future__ import annotations

import re
from typing import Any

from llm_platform.lint.tree import K8sObject, Tree
from llm_platform.lint.workloads import GPU, QUEUE_LABEL, PodSpecRef, gpu_count, pod_specs, uses_gpu
from llm_platform.oci import DIGEST_PATTERN

DIGEST = re.compile(rf"@{DIGEST_PATTERN}$")
_IMAGE_KINDS_WITH_CONTAINERS = {"ServingRuntime", "ClusterServingRuntime"}


def _tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def check_image(tree: Tree, obj: K8sObject, image: Any, path: tuple[str | int, ...]) -> None:
    if not isinstance(image, str) or not image:
        return
    if DIGEST.search(image):
        return
    tag = _tag(image)
    if tag is None or tag == "latest":
        tree.report(
            "policy-image-latest",
            obj,
            path,
            f"image {image!r} uses {'latest' if tag else 'no tag (latest)'}: pin it by @sha256 digest",
        )
        return
    tree.report(
        "policy-image-not-digest", obj, path, f"image {image!r} is pinned by tag only: add @sha256:<digest>"
    )


def _serving(ref: PodSpecRef, pool_selected: bool) -> bool:
    if ref.is_isvc or pool_selected or uses_gpu(ref):
        return True
    return any("vllm" in str(c.get("image", "")) for c, _ in ref.containers)


def check(tree: Tree, pool_selectors: list[dict[str, str]] | None = None) -> None:
    selectors = pool_selectors if pool_selectors is not None else _pool_selectors(tree)
    for obj in tree.objects:
        if obj.kind in _IMAGE_KINDS_WITH_CONTAINERS:
            for i, c in enumerate(obj.spec.get("containers") or []):
                if isinstance(c, dict):
                    check_image(tree, obj, c.get("image"), ("spec", "containers", i, "image"))
        for ref in pod_specs(obj):
            _pod(
                tree,
                obj,
                ref,
                any(sel and all(ref.labels.get(k) == v for k, v in sel.items()) for sel in selectors),
            )


def _pool_selectors(tree: Tree) -> list[dict[str, str]]:
    out = []
    for pool in tree.of_kind("InferencePool"):
        sel = pool.spec.get("selector") or {}
        labels = sel.get("matchLabels") if isinstance(sel.get("matchLabels"), dict) else sel
        out.append({str(k): str(v) for k, v in (labels or {}).items() if not isinstance(v, (dict, list))})
    return out


def _pod(tree: Tree, obj: K8sObject, ref: PodSpecRef, pool_selected: bool) -> None:
    for c, path in ref.containers:
        if "image" in c:
            check_image(tree, obj, c.get("image"), (*path, "image"))
        uri = c.get("storageUri")
        if isinstance(uri, str) and uri.startswith("oci") and not DIGEST.search(uri):
            tree.report(
                "policy-modelcar-not-digest",
                obj,
                (*path, "storageUri"),
                f"modelcar {uri!r} is not pinned by digest: use oci://<repo>@sha256:<digest>",
            )
    for i, vol in enumerate(ref.spec.get("volumes") or []):
        img = (vol or {}).get("image") if isinstance(vol, dict) else None
        if isinstance(img, dict):
            refv = str(img.get("reference", ""))
            if not DIGEST.search(refv):
                tree.report(
                    "policy-modelcar-not-digest",
                    obj,
                    (*ref.path, "volumes", i, "image", "reference"),
                    f"image volume {refv!r} is not pinned by digest",
                )
    gpu = uses_gpu(ref)
    if gpu:
        for c, path in ref.containers:
            req, lim = gpu_count(c)
            if req is None and lim is None:
                continue
            if lim is None:
                tree.report(
                    "policy-gpu-limit",
                    obj,
                    (*path, "resources"),
                    f"container {c.get('name', '?')!r} requests {GPU} without a limit",
                )
            elif req is not None and str(req) != str(lim):
                tree.report(
                    "policy-gpu-limit",
                    obj,
                    (*path, "resources", "limits", GPU),
                    f"container {c.get('name', '?')!r}: {GPU} request {req} != limit {lim}",
                )
        tolerations = [t for t in ref.spec.get("tolerations") or [] if isinstance(t, dict)]
        if not any(
            t.get("key") == GPU or (t.get("operator") == "Exists" and not t.get("key")) for t in tolerations
        ):
            tree.report(
                "policy-gpu-toleration",
                obj,
                (*ref.path, "tolerations") if tolerations else ref.path,
                f"GPU pod does not tolerate the {GPU} taint of GPU node pools",
            )
        if QUEUE_LABEL not in obj.labels and QUEUE_LABEL not in ref.labels:
            tree.report(
                "policy-gpu-queue-label",
                obj,
                ("metadata", "labels") if obj.labels else ("metadata",),
                f"GPU workload has no {QUEUE_LABEL} label: Kueue will not admit it against GPU quota",
            )
    if not _serving(ref, pool_selected):
        return
    sc = ref.spec.get("securityContext") or {}
    main = [(c, p) for c, p in ref.containers if "initContainers" not in p]
    if not (isinstance(sc, dict) and sc.get("runAsNonRoot") is True) and not all(
        (c.get("securityContext") or {}).get("runAsNonRoot") is True for c, _ in main
    ):
        tree.report(
            "policy-non-root",
            obj,
            (*ref.path, "securityContext") if sc else ref.path,
            "serving pod does not set runAsNonRoot: true (pod or every container securityContext)",
        )
    for c, path in main:
        name = c.get("name", "kserve-container")
        missing = [p for p in ("readinessProbe", "livenessProbe") if not c.get(p)]
        if missing:
            tree.report(
                "policy-probes", obj, path, f"serving container {name!r} has no {' or '.join(missing)}"
            )
        req = ((c.get("resources") or {}).get("requests")) or {}
        lacking = [r for r in ("cpu", "memory") if r not in req]
        if lacking:
            tree.report(
                "policy-resources",
                obj,
                (*path, "resources") if c.get("resources") else path,
                f"serving container {name!r} requests no {' or '.join(lacking)}",
            )
