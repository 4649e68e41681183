"""`cluster kind-test`: the checkout under test, installed on a throwaway cluster until every Application is
Synced and Healthy.

In order: the checkout's gitops/ becomes one commit (`snapshot`) with the tree's own URL pointing at an
in-cluster git server; the cluster is made (`kind.Throwaway`); `install` runs against it exactly as on a real
environment (`--env kind`, public repository), with the git server (`git_server`) applied right after Argo
CD; the Applications are followed until Synced and Healthy; then the objects of the GPU environment that ask
for GPUs (which kind cannot schedule; its environment serves through the inference simulator) are checked by
a server-side dry run, which runs admission (schemas, defaults, webhooks) without persisting them. The
cluster is deleted at the end unless `keep`, also when a step failed."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llm_platform.cluster import git_server
from llm_platform.cluster.bootstrap import bootstrap_plan, ref, wait_available
from llm_platform.cluster.install import InstallOptions, check_placeholders, run_install
from llm_platform.cluster.kind import Throwaway
from llm_platform.cluster.kube import ClusterError, Kube
from llm_platform.cluster.root import root_application
from llm_platform.cluster.snapshot import Snapshot, snapshot_checkout
from llm_platform.cluster.status import Overview
from llm_platform.errors import PlatformError
from llm_platform.logs import get_logger

log = get_logger("cluster")

ENV = "kind"
GPU_ENV = "gke"
GPU_RESOURCE = "nvidia.com/gpu"
GIT_SERVER_TIMEOUT_S = 300.0


class GitServerResult(BaseModel):
    step: str = "git-server"
    url: str
    commit: str
    refs: list[str]
    bundle_bytes: int
    available: list[str]


class DryRunCheck(BaseModel):
    object: str  # Kind/namespace/name
    ok: bool
    message: str = ""


class KindTestResult(BaseModel):
    step: str = "kind-test"
    cluster: str
    created: bool  # False: an existing cluster was reused (or given)
    kept: bool
    commit: str  # the served commit
    source_head: str | None
    source_dirty: bool
    applications: int
    gpu_dry_run: list[DryRunCheck]
    passed: bool


class KindTestFailed(PlatformError):  # noqa: N818 (the name the CLI catches)
    def __init__(self, message: str, result: KindTestResult) -> None:
        super().__init__(message)
        self.result = result


def needs_gpu(value: Any) -> bool:
    """Whether anything in `value` asks for GPUs: a `resources` with `nvidia.com/gpu` in requests or limits."""
    if isinstance(value, dict):
        resources = value.get("resources")
        if isinstance(resources, dict) and any(
            isinstance(resources.get(part), dict) and GPU_RESOURCE in resources[part]
            for part in ("requests", "limits")
        ):
            return True
        return any(needs_gpu(v) for v in value.values())
    if isinstance(value, list):
        return any(needs_gpu(v) for v in value)
    return False


def gpu_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if needs_gpu(o.get("spec"))]


def gpu_dry_run(kube: Kube, objects: list[dict[str, Any]]) -> list[DryRunCheck]:
    """Each GPU object through the API server's admission, without persisting it."""
    checks = []
    for obj in objects:
        try:
            kube.dry_run(obj)
        except ClusterError as exc:
            checks.append(DryRunCheck(object=ref(obj), ok=False, message=str(exc)))
        else:
            checks.append(DryRunCheck(object=ref(obj), ok=True))
    return checks


def serve(kube: Kube, snapshot: Snapshot, objects: list[dict[str, Any]]) -> GitServerResult:
    kube.apply(objects)
    available = wait_available(kube, objects, GIT_SERVER_TIMEOUT_S)
    log.info("kind-test: serving commit %s at %s", snapshot.commit[:12], snapshot.served_url)
    return GitServerResult(
        url=snapshot.served_url,
        commit=snapshot.commit,
        refs=snapshot.refs,
        bundle_bytes=snapshot.bundle_bytes,
        available=available,
    )


class Plan(BaseModel):
    """Everything kind-test applies, computed before any cluster exists (what --dry-run prints)."""

    snapshot: Snapshot
    bootstrap: list[dict[str, Any]]
    git_server: list[dict[str, Any]]
    root: dict[str, Any]
    gpu: list[dict[str, Any]]

    def objects(self) -> list[dict[str, Any]]:
        return [*self.bootstrap, *self.git_server, self.root]


def plan(repo_root: Path, work_dir: Path, charts_mirror: Path | None = None) -> Plan:
    from llm_platform.cluster.secrets import environment_objects

    snapshot = snapshot_checkout(repo_root, work_dir, ENV, git_server.SERVED_URL)
    check_placeholders(snapshot.tree, ENV)
    bootstrap = bootstrap_plan(snapshot.tree, charts_mirror)
    image = git_server.argocd_image(bootstrap)
    return Plan(
        snapshot=snapshot,
        bootstrap=bootstrap,
        git_server=git_server.server_objects(snapshot.bundle, snapshot.commit, image),
        root=root_application(snapshot.tree, ENV, snapshot.served_url, _branch(snapshot)),
        gpu=gpu_objects(environment_objects(snapshot.tree, GPU_ENV)),
    )


def _branch(snapshot: Snapshot) -> str:
    return snapshot.default_branch.removeprefix("refs/heads/")


def run_kind_test(
    cluster: Throwaway,
    kube_for: Callable[[Path], Kube],
    the_plan: Plan,
    follow: Callable[[Kube], Overview],
    *,
    keep: bool = False,
    charts_mirror: Path | None = None,
) -> KindTestResult:
    """Make the cluster, install the plan's snapshot, follow it, dry-run the GPU objects; delete the cluster
    unless `keep`. KindTestFailed when a GPU object is refused (the result says which)."""
    snapshot = the_plan.snapshot
    created = cluster.create()
    try:
        kube = kube_for(cluster.kubeconfig())
        options = InstallOptions(
            env=ENV,
            repo_url=snapshot.served_url,
            revision=_branch(snapshot),
            public_repo=True,
            charts_mirror=charts_mirror,
        )
        installed = run_install(
            kube,
            snapshot.tree,
            options,
            follow,
            bootstrap_objects=the_plan.bootstrap,
            after_bootstrap=lambda k: serve(k, snapshot, the_plan.git_server),
        )
        checks = gpu_dry_run(kube, the_plan.gpu)
    finally:
        if not keep:
            cluster.delete()
    result = KindTestResult(
        cluster=cluster.name,
        created=created,
        kept=keep,
        commit=snapshot.commit,
        source_head=snapshot.source_head,
        source_dirty=snapshot.source_dirty,
        applications=len(installed.overview.rows),
        gpu_dry_run=checks,
        passed=all(c.ok for c in checks),
    )
    refused = [c for c in checks if not c.ok]
    if refused:
        raise KindTestFailed(
            f"kind-test: {len(refused)} GPU object(s) of {GPU_ENV} refused by the API server: "
            + "; ".join(f"{c.object}: {c.message}" for c in refused[:5]),
            result,
        )
    return result


def work_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="llm-platform-kind-test-")
