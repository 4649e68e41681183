"""`cluster kind-test`, up to the boundary of a container engine (none runs here, so no kind cluster does):

- the snapshot: the checkout's gitops/ as it is now (uncommitted and untracked files in, ignored files out)
  as one commit, with the tree's own URL pointing at the in-cluster server, made by real git;
- the in-cluster git server: the exact scripts its pod runs, run here with git's own daemon, and the tree
  cloned back over the git protocol (what Argo CD's repo-server does);
- the plan --dry-run prints: the objects, in order, checked by our own lint;
- the orchestration (order, the GPU dry run, the cluster deleted also on failure) over `StateKube`, a state
  holder (tests/support/kube_states.py), not a cluster;
- the kind adapter's refusals without kind or a container engine, and its pins.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_platform import images
from llm_platform.cluster import git_server, kind
from llm_platform.cluster.kind_test import (
    KindTestFailed,
    gpu_dry_run,
    gpu_objects,
    needs_gpu,
    plan,
    run_kind_test,
)
from llm_platform.cluster.kube import ClusterError
from llm_platform.cluster.snapshot import snapshot_checkout
from llm_platform.cluster.status import Overview
from llm_platform.configure.identity import Identity
from llm_platform.configure.service import configure
from llm_platform.errors import InputError, PlatformError
from llm_platform.lint import run_lint
from tests.support.bump_fixture import git, git_env
from tests.support.kube_states import StateKube
from tests.support.tools import require_tool

_CLI = str(Path(sys.executable).with_name("llm-platform"))
FORK_URL = "https://github.com/acme/platform.git"
SERVED = git_server.SERVED_URL


def _fork(repo_root: Path, dest: Path, env: dict[str, str]) -> Path:
    """A configured fork: the tree's gitops/ and modelcars/, committed, then `configure`d and committed."""
    for part in ("gitops", "modelcars"):
        shutil.copytree(repo_root / part, dest / part)
    git(dest, "init", "-q", "-b", "main", env=env)
    identity = Identity(
        repo_url=FORK_URL,
        revision="main",
        project_id="acme-llm-prod",
        region="europe-west4",
        registry="europe-west4-docker.pkg.dev/acme-llm-prod/modelcars",
    )
    configure(dest, identity)
    git(dest, "add", "-A", env=env)
    git(dest, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "fork", env=env)
    return dest


@pytest.fixture
def fork(repo_root: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = git_env(tmp_path)
    return _fork(repo_root, tmp_path / "fork", env), env


def _clone_bundle(bundle: Path, dest: Path, env: dict[str, str], branch: str = "main") -> Path:
    subprocess.run(
        [require_tool("git"), "clone", "-q", "-b", branch, str(bundle), str(dest)], check=True, env=env
    )
    return dest


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / "gitops").rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_the_snapshot_is_the_working_tree_as_one_commit_pointing_at_the_in_cluster_server(
    fork: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, env = fork
    # What a developer has in front of them: an edit not committed, a new file not added, an ignored file.
    values = root / "gitops/charts/argocd/values.yaml"
    values.write_text(values.read_text() + "# an uncommitted edit\n")
    (root / "gitops/notes.yaml").write_text(f"repo: {FORK_URL}\n")
    (root / ".gitignore").write_text("gitops/scratch.yaml\n")
    (root / "gitops/scratch.yaml").write_text("ignored: true\n")

    snap = snapshot_checkout(root, tmp_path / "work1", "kind", SERVED)
    assert snap.self_url == FORK_URL and snap.served_url == SERVED
    assert snap.source_head == git(root, "rev-parse", "HEAD", env=env).strip() and snap.source_dirty
    assert snap.refs == ["refs/heads/main"] and snap.default_branch == "refs/heads/main"

    clone = _clone_bundle(snap.bundle, tmp_path / "clone", env)
    assert git(clone, "rev-parse", "HEAD", env=env).strip() == snap.commit
    served, here = _files(clone), _files(root)
    assert "gitops/scratch.yaml" not in served and "gitops/scratch.yaml" in here
    assert served["gitops/notes.yaml"] == f"repo: {SERVED}\n".encode()
    assert served["gitops/charts/argocd/values.yaml"].endswith(b"# an uncommitted edit\n")
    del here["gitops/scratch.yaml"]
    assert set(served) == set(here)
    for rel, data in here.items():  # byte for byte the checkout, but for the URL
        assert served[rel] == data.replace(FORK_URL.encode(), SERVED.encode()), rel
    assert not any(FORK_URL.encode() in data for data in served.values())
    retargeted = sorted(rel for rel, data in here.items() if FORK_URL.encode() in data)
    assert snap.retargeted == retargeted and len(retargeted) >= 10

    # The same tree is the same commit (fixed identity and dates), wherever and whenever it is made.
    again = snapshot_checkout(root, tmp_path / "work2", "kind", SERVED)
    assert again.commit == snap.commit
    git(root, "add", "-A", env=env)  # committed: another HEAD, the same tree, the same commit
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "wip", env=env)
    committed = snapshot_checkout(root, tmp_path / "work3", "kind", SERVED)
    assert committed.commit == snap.commit and not committed.source_dirty
    (root / "gitops/notes.yaml").write_text("changed: true\n")
    assert snapshot_checkout(root, tmp_path / "work4", "kind", SERVED).commit != snap.commit


def test_every_revision_the_tree_follows_is_a_ref_and_a_pinned_commit_is_refused(
    fork: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, env = fork
    app = root / "gitops/apps/base/litellm.yaml"
    text = app.read_text()
    assert "targetRevision: main" in text
    app.write_text(text.replace("targetRevision: main", "targetRevision: v2.0.0", 1))
    snap = snapshot_checkout(root, tmp_path / "w", "kind", SERVED)
    assert snap.refs == ["refs/heads/main", "refs/heads/v2.0.0"]
    clone = _clone_bundle(snap.bundle, tmp_path / "c", env, branch="v2.0.0")
    assert git(clone, "rev-parse", "HEAD", env=env).strip() == snap.commit

    app.write_text(text.replace("targetRevision: main", "targetRevision: " + "a" * 40, 1))
    with pytest.raises(InputError, match=r"gitops/apps/base/litellm.yaml: .* pins the commit a{40}"):
        snapshot_checkout(root, tmp_path / "w2", "kind", SERVED)


def test_a_symlink_out_of_the_served_tree_is_refused(
    fork: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, _ = fork
    (root / "gitops/escape.yaml").symlink_to("../modelcars/minilm-demo.yaml")
    with pytest.raises(InputError, match=r"gitops/escape.yaml: a symlink to '../modelcars/minilm-demo.yaml'"):
        snapshot_checkout(root, tmp_path / "w", "kind", SERVED)


def test_outside_git_every_file_of_gitops_is_served(repo_root: Path, tmp_path: Path) -> None:
    """The Dagger engine gets the tree without .git."""
    shutil.copytree(repo_root / "gitops", tmp_path / "plain/gitops")
    snap = snapshot_checkout(tmp_path / "plain", tmp_path / "w", "kind", SERVED)
    assert snap.source_head is None and snap.source_dirty
    clone = _clone_bundle(snap.bundle, tmp_path / "c", git_env(tmp_path))
    assert set(_files(clone)) == set(_files(tmp_path / "plain"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served_daemon(
    fork: tuple[Path, dict[str, str]], tmp_path: Path
) -> Iterator[tuple[str, Any, dict[str, str]]]:
    """The git server's two scripts, exactly as its pod runs them, with this machine's git."""
    root, env = fork
    snap = snapshot_checkout(root, tmp_path / "w", "kind", SERVED)
    port = _free_port()
    script_env = {
        **env,
        "BUNDLE": str(snap.bundle),
        "GIT_ROOT": str(tmp_path / "srv"),
        "LISTEN": "127.0.0.1",
        "PORT": str(port),
    }
    (tmp_path / "srv").mkdir()
    subprocess.run(["sh", "-c", git_server.CLONE_SCRIPT], check=True, env=script_env, timeout=60)
    daemon = subprocess.Popen(["sh", "-c", git_server.SERVE_SCRIPT], env=script_env, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise AssertionError("git daemon did not start") from None
                time.sleep(0.1)
        yield f"git://127.0.0.1:{port}/{git_server.REPOSITORY}", snap, env
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=10)


def test_the_git_server_scripts_serve_the_snapshot_over_the_git_protocol(
    served_daemon: tuple[str, Any, dict[str, str]], tmp_path: Path
) -> None:
    url, snap, env = served_daemon
    refs = git(tmp_path, "ls-remote", url, env=env)
    assert f"{snap.commit}\trefs/heads/main" in refs and f"{snap.commit}\tHEAD" in refs
    clone = tmp_path / "argo"
    git(tmp_path, "clone", "-q", "--depth", "1", "-b", "main", url, str(clone), env=env)
    assert git(clone, "rev-parse", "HEAD", env=env).strip() == snap.commit
    assert _files(clone) == _files(snap.tree)
    # Read-only: the daemon refuses a push (receive-pack is off by default).
    proc = subprocess.run(
        [require_tool("git"), "-C", str(clone), "push", url, "HEAD:refs/heads/evil"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode != 0


def test_the_git_server_objects_run_argo_cd_s_image_as_non_root_and_roll_with_the_commit(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "b"
    bundle.write_bytes(b"# v2 git bundle\n")
    image = "quay.io/argoproj/argocd:v3.4.1"
    configmap, service, deployment = git_server.server_objects(bundle, "c" * 40, image)
    assert [configmap["kind"], service["kind"], deployment["kind"]] == ["ConfigMap", "Service", "Deployment"]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["annotations"][git_server.COMMIT_ANNOTATION] == "c" * 40
    for container in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
        assert container["image"] == image
        assert (
            container["securityContext"]["runAsNonRoot"] and container["securityContext"]["runAsUser"] == 999
        )
    assert service["spec"]["ports"][0]["port"] == 9418
    assert SERVED == "git://llm-platform-git.argocd.svc.cluster.local/platform.git"
    for obj in (configmap, service, deployment):
        assert "argocd.argoproj.io/tracking-id" not in (obj["metadata"].get("annotations") or {})


def test_kind_test_dry_run_prints_the_objects_in_order_and_they_lint(
    fork: tuple[Path, dict[str, str]], tmp_path: Path, crds_dir: Path
) -> None:
    root, _ = fork
    require_tool("helm")
    proc = subprocess.run(
        [_CLI, "cluster", "kind-test", "--dry-run", "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none"), "PATH": os.environ["PATH"]},
    )
    assert proc.returncode == 0, proc.stderr
    assert images.KIND_NODE in proc.stderr
    assert "server-side dry run of 3 GPU object(s)" in proc.stderr
    objects = list(yaml.safe_load_all(proc.stdout))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    # Argo CD first (as bootstrap applies it), then the git server, then the root pointing at it.
    assert kinds[0][0] == "CustomResourceDefinition"
    assert kinds[-4:-1] == [
        ("ConfigMap", "llm-platform-git-bundle"),
        ("Service", "llm-platform-git"),
        ("Deployment", "llm-platform-git"),
    ]
    assert kinds[-1] == ("Application", "root")
    assert objects[-1]["spec"]["source"] == {
        "repoURL": SERVED,
        "targetRevision": "main",
        "path": "gitops/apps/kind",
    }
    out = tmp_path / "lint" / "gitops" / "kind-test.yaml"
    out.parent.mkdir(parents=True)
    out.write_text(proc.stdout)
    report = run_lint([out.parent], crd_dirs=[crds_dir], cwd=tmp_path / "lint", render_charts=False)
    # Valid Kubernetes, every object: the strict 1.35 schemas and the CRDs (policy rules are the tree's
    # lint's business: an orphan here is the point of a bootstrap).
    assert [f.text() for f in report.findings if f.rule_id.startswith(("schema-", "yaml-", "k8s-"))] == []
    git_findings = [f.text() for f in report.findings if "llm-platform-git" in f.text()]
    assert all("policy-image-not-digest" in t for t in git_findings), git_findings
    assert report.coverage.schema_core >= 40 and report.coverage.schema_crd >= 1


def test_kind_test_stops_before_any_cluster_on_the_unconfigured_template(
    repo_root: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [_CLI, "cluster", "kind-test", "--root", str(repo_root)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"},  # no kind: it must not get that far
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("llm-platform: error: install: 4 placeholder(s) left")
    )


def test_kind_test_on_an_unreachable_cluster_fails_in_seconds_naming_the_server(
    fork: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """--kubeconfig (the Dagger path): a server that refuses connections ends the test at its first request."""
    root, _ = fork
    require_tool("kubectl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{closed}"}}],
                "users": [{"name": "u", "user": {"token": "canary-kube-token-51d0"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    started = time.monotonic()
    proc = subprocess.run(
        [_CLI, "cluster", "kind-test", "--kubeconfig", str(kubeconfig), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert time.monotonic() - started < 60
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("llm-platform: error:") and f"127.0.0.1:{closed}" in last, last
    assert "canary-kube-token-51d0" not in proc.stderr


# --- the orchestration, over a state holder ---


class RecordingThrowaway:
    """Records create/delete; the kubeconfig is a path nobody opens (StateKube stands for the cluster)."""

    name = "recorded"

    def __init__(self) -> None:
        self.events: list[str] = []

    def create(self) -> bool:
        self.events.append("create")
        return True

    def kubeconfig(self) -> Path:
        return Path("/nonexistent/kubeconfig")

    def delete(self) -> None:
        self.events.append("delete")


def _available(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Workloads as their controllers report them once ready (as tests/test_cluster_bootstrap.py shapes them)."""
    out = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            obj = {**obj, "metadata": {**obj["metadata"], "generation": 1}}
            obj["status"] = {
                "observedGeneration": 1,
                "replicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "updatedReplicas": 1,
                "currentRevision": "r1",
                "updateRevision": "r1",
                "conditions": [{"type": "Available", "status": "True"}],
            }
        out.append(obj)
    return out


class ReadyKube(StateKube):
    """Applied workloads come back as available (the controllers' part, which a state holder does not play)."""

    def apply(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = super().apply(objects)
        self.put(*_available(objects))
        return out


@pytest.fixture(scope="module")
def kind_plan(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_tool("helm")
    tmp = tmp_path_factory.mktemp("kind-plan")
    root = _fork(repo_root, tmp / "fork", git_env(tmp))
    return plan(root, tmp / "work", Path(os.environ["LLM_PLATFORM_CHARTS_MIRROR"]))


def test_run_kind_test_installs_in_order_dry_runs_the_gpu_objects_and_deletes_the_cluster(
    kind_plan: Any,
) -> None:
    cluster, kube = RecordingThrowaway(), ReadyKube()
    followed: list[str] = []

    def follow(k: Any) -> Overview:
        followed.append("follow")
        return Overview(namespace="argocd", root="root")

    result = run_kind_test(cluster, lambda _: kube, kind_plan, follow)
    assert cluster.events == ["create", "delete"] and followed == ["follow"]
    applied = [(o["kind"], o["metadata"]["name"]) for o in kube.applied]
    n = len(kind_plan.bootstrap)
    assert applied[:n] == [(o["kind"], o["metadata"]["name"]) for o in kind_plan.bootstrap]
    assert applied[n : n + 3] == [
        ("ConfigMap", "llm-platform-git-bundle"),
        ("Service", "llm-platform-git"),
        ("Deployment", "llm-platform-git"),
    ]
    assert applied[-1] == ("Application", "root")
    assert kube.applied[-1]["spec"]["source"]["repoURL"] == SERVED
    dry = [name for method, _, name in kube.calls if method == "dry_run"]
    assert dry == sorted(dry) and len(dry) == 3 and all(name.startswith("vllm-") for name in dry)
    assert result.passed and result.commit == kind_plan.snapshot.commit and result.created


def test_a_refused_gpu_object_fails_the_test_and_a_failed_step_still_deletes_the_cluster(
    kind_plan: Any,
) -> None:
    cluster, kube = RecordingThrowaway(), ReadyKube()
    name = kind_plan.gpu[0]["metadata"]["name"]
    kube.refuse[name] = ClusterError("admission webhook denied the request", "BadRequest")
    with pytest.raises(
        KindTestFailed, match=f"1 GPU object.* Deployment/llm-serving/{name}: admission webhook"
    ) as exc:
        run_kind_test(cluster, lambda _: kube, kind_plan, lambda _: Overview(namespace="argocd", root="root"))
    assert not exc.value.result.passed and cluster.events == ["create", "delete"]

    broken, stuck = RecordingThrowaway(), ReadyKube()

    def timeout(_: Any) -> Overview:
        raise PlatformError("timed out after 30m")

    with pytest.raises(PlatformError, match="timed out"):
        run_kind_test(broken, lambda _: stuck, kind_plan, timeout)
    assert broken.events == ["create", "delete"]

    kept = RecordingThrowaway()
    run_kind_test(
        kept, lambda _: ReadyKube(), kind_plan, lambda _: Overview(namespace="argocd", root="root"), keep=True
    )
    assert kept.events == ["create"]


def test_gpu_objects_are_those_asking_for_gpus() -> None:
    gpu = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    assert needs_gpu({"template": {"spec": gpu}})
    assert not needs_gpu({"coveredResources": ["nvidia.com/gpu"]})  # a Kueue ClusterQueue names, not asks
    objs = [
        {"kind": "Deployment", "metadata": {"name": "a"}, "spec": {"template": {"spec": gpu}}},
        {"kind": "Deployment", "metadata": {"name": "b"}, "spec": {"template": {"spec": {"containers": []}}}},
    ]
    assert [o["metadata"]["name"] for o in gpu_objects(objs)] == ["a"]
    checks = gpu_dry_run(StateKube(), objs[:1])
    assert checks[0].ok and checks[0].object == "Deployment/a"


# --- the kind adapter ---


def test_kind_is_refused_clearly_without_kind_or_a_container_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = kind.KindCluster("t", tmp_path / "kubeconfig")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlatformError, match=r"kind is not on PATH: install kind v0.33.0"):
        cluster.create()
    fake_kind = tmp_path / "kind"  # a kind that exists: the engine check comes before it would run
    fake_kind.write_text("#!/bin/sh\nexit 0\n")
    fake_kind.chmod(0o755)
    monkeypatch.delenv("KIND_EXPERIMENTAL_PROVIDER", raising=False)
    with pytest.raises(PlatformError, match="kind needs Docker or Podman, and neither is on PATH"):
        cluster.create()
    with pytest.raises(InputError, match="--name"):
        kind.check_name("Not_A_Name")


def test_kind_uses_the_pinned_node_image_podman_when_there_is_no_docker_and_our_kubeconfig(
    tmp_path: Path,
) -> None:
    config = kind.cluster_config()
    assert config["nodes"] == [{"role": "control-plane", "image": images.KIND_NODE}]
    argv = kind.create_argv("kind", "t", tmp_path / "kc")
    assert argv[:3] == ["kind", "create", "cluster"] and argv[argv.index("--kubeconfig") + 1] == str(
        tmp_path / "kc"
    )
    podman = tmp_path / "podman"
    podman.write_text("#!/bin/sh\n")
    podman.chmod(0o755)
    assert kind.provider_env({"PATH": str(tmp_path)})["KIND_EXPERIMENTAL_PROVIDER"] == "podman"
    assert "KIND_EXPERIMENTAL_PROVIDER" not in kind.provider_env({"PATH": "/nonexistent"})


def test_the_kind_pins_agree(repo_root: Path) -> None:
    lock = dict(
        line.split("=", 1)
        for line in (repo_root / "scripts/tools.lock").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert lock["KIND_VERSION"] == kind.KIND_VERSION
    assert len(lock["KIND_LINUX_AMD64_SHA256"]) == 64
    assert images.KIND_NODE.startswith("docker.io/kindest/node:v1.35.")


def test_every_path_the_tree_s_applications_read_is_under_gitops(repo_root: Path) -> None:
    """Only gitops/ is served to the cluster: an Application source path elsewhere would not be there."""
    from llm_platform.cluster.secrets import is_application, sources_of

    url = "https://github.com/llm-platform-example/llm-platform.git"
    paths = []
    for path in (repo_root / "gitops").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and is_application(doc):
                paths += [s["path"] for s in sources_of(doc) if s.get("repoURL") == url and "path" in s]
    assert len(paths) >= 6 and all(p.startswith("gitops/") for p in paths)
