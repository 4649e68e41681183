"""Policy rules: digest-pinned images and modelcars, GPU scheduling and Kueue, serving pod hygiene."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from llm_platform.lint.sources import JsonPath
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
    if tree.config.accepts_unpinned(image):
        tree.accepted_unpinned.add(image)
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
        covered: set[JsonPath] = set()
        if obj.kind in _IMAGE_KINDS_WITH_CONTAINERS and obj.spec.get("disabled") is True:
            continue  # KServe never selects a disabled runtime: its images are never pulled
        if obj.kind in _IMAGE_KINDS_WITH_CONTAINERS:
            for i, c in enumerate(obj.spec.get("containers") or []):
                if isinstance(c, dict):
                    covered.add(("spec", "containers", i, "image"))
                    check_image(tree, obj, c.get("image"), ("spec", "containers", i, "image"))
        for ref in pod_specs(obj):
            covered.update((*path, "image") for _, path in ref.containers)
            _pod(
                tree,
                obj,
                ref,
                any(sel and all(ref.labels.get(k) == v for k, v in sel.items()) for sel in selectors),
            )
        if obj.kind not in _NOT_WORKLOAD_KINDS:
            _other_images(tree, obj, covered)


# Kinds whose `image` fields are not images the cluster pulls (schemas, docs, the linter's own input).
_NOT_WORKLOAD_KINDS = {"CustomResourceDefinition", "Kustomization", "Component"}
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*(?::[\w][\w.\-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
_IMAGE_FLAG = re.compile(r"^--?[\w-]*(?:image|reloader)[\w-]*=(.+)$", re.IGNORECASE)
_MAX_EMBEDDED_CONFIG = 1 << 20  # a ConfigMap value parsed for embedded images (JSON or YAML)


def _looks_like_image(value: str) -> bool:
    """A reference a runtime pulls: registry/repo with a tag or digest, not a bare word or a URL."""
    if "://" in value or " " in value or "{" in value or not _IMAGE_REF.match(value):
        return False
    return ":" in value.rsplit("/", 1)[-1] or "@" in value or "/" in value


def _other_images(tree: Tree, obj: K8sObject, covered: set[JsonPath]) -> None:
    """Images outside pod containers: custom resources (Prometheus.spec.image, ClusterPolicy's
    repository/image/version), image flags in container args, and images inside ConfigMap values that
    hold JSON/YAML config (KServe's inferenceservice-config). Each is checked like a container image."""
    for path, value in _walk(obj.data, ()):
        if path in covered:
            continue
        key = path[-1] if path else None
        if isinstance(value, dict):
            joined = _split_image(value)
            if joined is not None:
                check_image(tree, obj, joined, path)
        elif isinstance(value, str) and isinstance(key, str):
            if key == "image" or key.endswith("Image"):
                if _looks_like_image(value):
                    check_image(tree, obj, value, path)
            elif obj.kind == "ConfigMap" and len(path) == 2 and path[0] == "data":
                _embedded(tree, obj, path, value)
        elif isinstance(value, str) and len(path) >= 2 and path[-2] in ("args", "command"):
            m = _IMAGE_FLAG.match(value)
            if m and _looks_like_image(m.group(1)):
                check_image(tree, obj, m.group(1), path)


def _split_image(node: dict[str, Any]) -> str | None:
    """`{repository, tag}` (Helm style) or `{repository, image, version}` (NVIDIA ClusterPolicy)."""
    repo = node.get("repository")
    if not isinstance(repo, str) or not repo or "://" in repo:
        return None
    if isinstance(node.get("image"), str) and isinstance(node.get("version"), (str, int, float)):
        version = str(node["version"])
        sep = "@" if version.startswith("sha256:") else ":"
        return f"{repo.rstrip('/')}/{node['image']}{sep}{version}"
    if "image" not in node and isinstance(node.get("tag"), str) and node["tag"]:
        tag = node["tag"]
        return f"{repo}{'' if tag.startswith('@') else ':'}{tag}"
    return None


def _embedded(tree: Tree, obj: K8sObject, path: JsonPath, text: str) -> None:
    if len(text) > _MAX_EMBEDDED_CONFIG or "image" not in text.lower():
        return
    try:
        data = json.loads(text)
    except ValueError:
        return
    for _, value in _walk(data, ()):
        if isinstance(value, dict):
            image, version = value.get("image"), value.get("defaultImageVersion")
            if isinstance(image, str) and isinstance(version, str) and ":" not in image.rsplit("/", 1)[-1]:
                # KServe's inferenceservice-config: the controller pulls image:defaultImageVersion
                value = {**value, "image": f"{image}:{version}"}
            for k, v in value.items():
                named = isinstance(k, str) and (k == "image" or k.endswith("Image"))
                if named and isinstance(v, str) and _looks_like_image(v):
                    check_image(tree, obj, v, path)


def _walk(data: Any, path: JsonPath, depth: int = 0) -> Iterator[tuple[JsonPath, Any]]:
    yield path, data
    if depth > 64:
        return
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, (*path, k), depth + 1)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _walk(v, (*path, i), depth + 1)


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
