"""`cluster bootstrap` and `cluster repo-credential`: what they apply, computed from the tree (the Argo CD
chart rendered exactly like `lint` renders the self-managed `argocd` Application), checked by our own
lint; "available" and "differs" decided on objects shaped like the API server's (a Deployment's and a
StatefulSet's status as the controllers write them; a Secret's `data` base64, as the API returns it);
and the one adapter, kubectl, against a loopback HTTP server that stands in only to inject faults
(401, 403, a refused connection, a stall). There is no Kubernetes API server here: applying to a real
cluster is exercised by `llm-platform cluster bootstrap` against one (see the README)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_platform.cluster.bootstrap import TRACKING_ANNOTATION, unavailable, wait_available
from llm_platform.cluster.kube import ClusterError, Kubectl, Target
from llm_platform.cluster.repo_credential import (
    GIT_TOKEN_ENV,
    apply_credential,
    credential,
    differs,
    secret_name,
    secret_object,
)
from llm_platform.errors import InputError
from llm_platform.lint import run_lint
from tests.support.loopback import LoopbackHTTPServer
from tests.support.tools import require_tool

_CLI = str(Path(sys.executable).with_name("llm-platform"))


class StateKube:
    """Holds API objects for the pure logic under test (it is not a cluster): get/list answer from the
    state; apply records what was sent and stores it as the server would (with metadata it adds)."""

    def __init__(self, objects: list[dict[str, Any]] | None = None) -> None:
        self.state: dict[tuple[str, str, str | None, str], dict[str, Any]] = {}
        self.applied: list[list[dict[str, Any]]] = []
        for obj in objects or []:
            self._put(obj)

    def _key(self, obj: dict[str, Any]) -> tuple[str, str, str | None, str]:
        meta = obj["metadata"]
        return obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]

    def _put(self, obj: dict[str, Any]) -> None:
        stored = json.loads(json.dumps(obj))
        if stored["kind"] == "Secret" and "stringData" in stored:  # as the API server stores it
            data = {
                k: base64.b64encode(v.encode()).decode() for k, v in (stored.pop("stringData") or {}).items()
            }
            stored["data"] = {**(stored.get("data") or {}), **data}
        stored["metadata"].setdefault("uid", f"uid-{len(self.state)}")
        self.state[self._key(stored)] = stored

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        return self.state.get((api_version, kind, namespace, name))

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            o
            for (a, k, ns, _), o in self.state.items()
            if (a, k) == (api_version, kind) and namespace in (None, ns)
        ]

    def apply(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.applied.append(objects)
        for obj in objects:
            self._put(obj)
        return objects


@pytest.fixture(scope="module")
def rendered_bootstrap(repo_root: Path) -> list[dict[str, Any]]:
    from llm_platform.cluster.bootstrap import bootstrap_plan

    require_tool("helm")
    mirror = os.environ.get("LLM_PLATFORM_CHARTS_MIRROR")
    if not mirror:
        pytest.fail("$LLM_PLATFORM_CHARTS_MIRROR is not set (scripts/test.sh sets it)", pytrace=False)
    return bootstrap_plan(repo_root, Path(mirror))


def test_bootstrap_applies_the_argocd_application_s_own_render_in_dependency_order(
    rendered_bootstrap: list[dict[str, Any]],
) -> None:
    objects = rendered_bootstrap
    kinds = [o["kind"] for o in objects]
    assert kinds[:3] == ["CustomResourceDefinition"] * 3 and kinds[3] == "Namespace"
    assert (
        kinds.index("ServiceAccount")
        < kinds.index("RoleBinding")
        < kinds.index("ConfigMap")
        < kinds.index("Deployment")
    )
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("StatefulSet", "argocd-application-controller") in names
    assert ("Deployment", "argocd-server") in names and ("Deployment", "argocd-repo-server") in names
    assert not any("dex" in n for _, n in names)  # off in our values: the tree runs its own Dex
    crds = {o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"}
    assert crds == {"applications.argoproj.io", "applicationsets.argoproj.io", "appprojects.argoproj.io"}
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] not in ("CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert meta["namespace"] == "argocd", obj["kind"]
        if obj["kind"] == "Namespace":
            # Not the Application's (it has no CreateNamespace): no tracking id, or its prune would delete it.
            assert TRACKING_ANNOTATION not in (meta.get("annotations") or {})
            continue
        group = obj["apiVersion"].rpartition("/")[0]
        assert meta["annotations"][TRACKING_ANNOTATION] == (
            f"argocd:{group}/{obj['kind']}:{meta.get('namespace') or ''}/{meta['name']}"
        )
    # Our values reached the render: the Application health check in argocd-cm.
    cm = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "argocd-cm")
    assert "resource.customizations.health.argoproj.io_Application" in cm["data"]


def test_the_dry_run_output_passes_our_own_lint(
    rendered_bootstrap: list[dict[str, Any]], tmp_path: Path, crds_dir: Path
) -> None:
    """What --dry-run prints is valid Kubernetes: every object against the 1.35 schemas and the CRDs."""
    out = tmp_path / "repo" / "gitops" / "bootstrap.yaml"
    out.parent.mkdir(parents=True)
    out.write_text(yaml.safe_dump_all(rendered_bootstrap, sort_keys=False))
    report = run_lint([out.parent], crd_dirs=[crds_dir], cwd=tmp_path / "repo", render_charts=False)
    assert report.coverage.schema_core >= 40
    assert [f.text() for f in report.findings if f.rule_id.startswith(("schema-", "yaml-", "k8s-"))] == []


def test_a_second_bootstrap_changes_nothing(rendered_bootstrap: list[dict[str, Any]]) -> None:
    from llm_platform.cluster.bootstrap import changed_objects

    kube = StateKube()
    assert len(changed_objects(kube, rendered_bootstrap)) == len(rendered_bootstrap)
    kube.apply(rendered_bootstrap)
    assert changed_objects(kube, rendered_bootstrap) == []
    # A value someone changed in the cluster is a change again.
    cm = kube.get("v1", "ConfigMap", "argocd-cm", "argocd")
    assert cm is not None
    cm["data"]["timeout.reconciliation"] = "1s"
    assert changed_objects(kube, rendered_bootstrap) == ["ConfigMap/argocd/argocd-cm"]


def _deployment(
    name: str, *, replicas: int = 1, available: int = 1, generation: int = 2, observed: int = 2
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "argocd", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": available,
            "availableReplicas": available,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available >= replicas else "False",
                    "reason": "MinimumReplicasAvailable"
                    if available >= replicas
                    else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if available >= replicas
                    else "Deployment does not have minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{name}-5d8f7" is progressing.',
                },
            ],
        },
    }


def test_available_means_the_controllers_observed_the_spec_and_report_ready_replicas() -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "argocd-application-controller", "namespace": "argocd", "generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "currentRevision": "c-1",
            "updateRevision": "c-1",
        },
    }
    assert unavailable([_deployment("a"), sts]) == []
    assert unavailable([_deployment("a", available=0)])[0].startswith("Deployment/argocd/a: 0/1 available")
    assert unavailable([_deployment("a", observed=1)])  # the new spec not yet seen by the controller
    rolling = {**sts, "status": {**sts["status"], "updateRevision": "c-2"}}
    assert unavailable([rolling]) == ["StatefulSet/argocd/argocd-application-controller: 1/1 ready"]


def test_wait_available_polls_until_ready_or_names_what_is_not() -> None:
    kube = StateKube([_deployment("argocd-server", available=0)])
    objects = [_deployment("argocd-server")]
    ticks = iter(range(1000))
    polls = []

    def sleep(_: float) -> None:
        polls.append(1)
        if len(polls) == 2:
            kube.apply([_deployment("argocd-server")])

    assert wait_available(kube, objects, 60, clock=lambda: next(ticks), sleep=sleep) == [
        "Deployment/argocd/argocd-server"
    ]
    assert len(polls) == 2
    stuck = StateKube([_deployment("argocd-server", available=0)])
    with pytest.raises(
        Exception, match=r"not available after 3 s: Deployment/argocd/argocd-server: 0/1 available"
    ):
        wait_available(stuck, objects, 3, clock=lambda: next(ticks), sleep=lambda _: None)


# --- repo-credential ---------------------------------------------------------------------------------


def test_repo_credential_from_the_token_is_applied_once_and_updated_when_it_differs() -> None:
    url = "https://github.com/example-org/llm-platform.git"
    cred = credential(url, env={GIT_TOKEN_ENV: "ghp_first"})
    kube = StateKube()
    first = apply_credential(kube, cred)
    assert first.changed and first.secret == f"argocd/{secret_name(url)}" and first.source == "$GIT_TOKEN"
    stored = kube.get("v1", "Secret", secret_name(url), "argocd")
    assert stored is not None and stored["metadata"]["labels"] == {
        "argocd.argoproj.io/secret-type": "repository"
    }
    assert base64.b64decode(stored["data"]["password"]).decode() == "ghp_first"
    assert not apply_credential(kube, cred).changed and len(kube.applied) == 1
    rotated = credential(url, env={GIT_TOKEN_ENV: "ghp_second"})
    assert differs(kube, rotated) and apply_credential(kube, rotated).changed
    # The result and the dry run never carry the token.
    dry = yaml.safe_dump(secret_object(rotated, reveal=False))
    assert "ghp_second" not in dry and "<from $GIT_TOKEN>" in dry
    assert "ghp_second" not in first.model_dump_json() + repr(rotated) + str(rotated)


def test_repo_credential_refuses_what_would_leak_or_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="carries credentials"):
        credential("https://user:ghp_x@github.com/o/r.git", env={GIT_TOKEN_ENV: "t"})
    with pytest.raises(InputError, match=r"\$GIT_TOKEN: not set"):
        credential("https://github.com/o/r.git", env={})
    with pytest.raises(InputError, match="--ssh-key-file"):
        credential("git@github.com:o/r.git", env={})
    key = tmp_path / "id"
    key.write_text("not a key\n")
    with pytest.raises(InputError, match="is not a private key"):
        credential("git@github.com:o/r.git", ssh_key_file=key, env={})
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
    cred = credential("git@github.com:o/r.git", ssh_key_file=key, env={})
    assert secret_object(cred, reveal=False)["stringData"]["sshPrivateKey"] == f"<from {key}>"


# --- the kubectl adapter, against a loopback server that injects faults ---------------------------------


class _Fault(BaseHTTPRequestHandler):
    """Answers every request with one fault, as an API server would word it (a Status object)."""

    mode = "401"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.mode == "stall":
            time.sleep(20)
            return
        code, reason = (401, "Unauthorized") if self.mode == "401" else (403, "Forbidden")
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f'{reason.lower()}: User "system:anonymous" cannot get path "{self.path}"',
                "reason": reason,
                "code": code,
            }
        ).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = _answer


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "kubeconfig-token-value"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


@pytest.mark.parametrize(("mode", "reason"), [("401", "Unauthorized"), ("403", "Forbidden")])
def test_kubectl_errors_are_one_line_with_the_api_reason_and_no_secret(
    tmp_path: Path, mode: str, reason: str
) -> None:
    require_tool("kubectl")
    handler = type("Fault", (_Fault,), {"mode": mode})
    server = LoopbackHTTPServer(handler).start()
    try:
        kube = Kubectl(Target(kubeconfig=_kubeconfig(tmp_path, server.url)), request_timeout="5s")
        cred = credential("https://github.com/o/r.git", env={GIT_TOKEN_ENV: "ghp_never_shown"})
        with pytest.raises(ClusterError) as err:
            kube.apply([secret_object(cred, reveal=True)])
        # (kubectl words a refused OpenAPI download during apply's validation without the status: then
        # only the line and the secrecy are checked)
        assert err.value.reason in (reason, "") and "\n" not in str(err.value)
        assert err.value.reason == reason or mode == "403"
        assert "ghp_never_shown" not in str(err.value) and "kubeconfig-token-value" not in str(err.value)
        with pytest.raises(ClusterError) as err:
            kube.get("apps/v1", "Deployment", "argocd-server", "argocd")
        assert err.value.reason == reason
    finally:
        server.stop()


def test_kubectl_refused_and_stalled_servers_end_in_bounded_time(tmp_path: Path) -> None:
    require_tool("kubectl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    kube = Kubectl(
        Target(kubeconfig=_kubeconfig(tmp_path, f"http://127.0.0.1:{closed}")), request_timeout="5s"
    )
    with pytest.raises(ClusterError) as err:
        kube.list_objects("argoproj.io/v1alpha1", "Application", "argocd")
    assert err.value.reason == "Unreachable"
    server = LoopbackHTTPServer(type("Stall", (_Fault,), {"mode": "stall"})).start()
    try:
        stalled = Kubectl(Target(kubeconfig=_kubeconfig(tmp_path, server.url)), request_timeout="2s")
        started = time.monotonic()
        with pytest.raises(ClusterError) as err:
            stalled.get("v1", "Secret", "x", "argocd")
        assert time.monotonic() - started < 60 and err.value.reason == "Timeout"
    finally:
        server.stop()


def test_cli_dry_runs_print_the_objects_and_contact_no_cluster(repo_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, GIT_TOKEN_ENV: "ghp_cli_secret", "KUBECONFIG": str(tmp_path / "none")}
    proc = subprocess.run(
        [_CLI, "cluster", "repo-credential", "--repo-url", "https://github.com/o/r.git", "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    [doc] = list(yaml.safe_load_all(proc.stdout))
    assert doc["kind"] == "Secret" and "ghp_cli_secret" not in proc.stdout + proc.stderr
    bad = subprocess.run(
        [_CLI, "cluster", "repo-credential", "--repo-url", "https://u:p@github.com/o/r.git", "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("llm-platform: error: --repo-url:")


def test_cli_root_dry_run_prints_the_root_for_the_fork_and_it_lints(
    repo_root: Path, tmp_path: Path, crds_dir: Path
) -> None:
    proc = subprocess.run(
        [
            _CLI,
            "cluster",
            "root",
            "--env",
            "kind",
            "--repo-url",
            "https://github.com/me/fork.git",
            "--revision",
            "v1.2.3",
            "--root",
            str(repo_root),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [root] = list(yaml.safe_load_all(proc.stdout))
    assert (root["kind"], root["metadata"]["name"]) == ("Application", "root")
    assert root["spec"]["source"] == {
        "repoURL": "https://github.com/me/fork.git",
        "targetRevision": "v1.2.3",
        "path": "gitops/apps/kind",
    }
    out = tmp_path / "repo" / "gitops" / "root.yaml"
    out.parent.mkdir(parents=True)
    out.write_text(proc.stdout)
    report = run_lint([out.parent], crd_dirs=[crds_dir], cwd=tmp_path / "repo", render_charts=False)
    assert report.coverage.schema_crd == 1
    assert [f.text() for f in report.findings if f.rule_id.startswith("schema-")] == []


def test_cli_install_stops_before_any_cluster_while_placeholders_are_left(
    repo_root: Path, tmp_path: Path
) -> None:
    """The upstream tree is a template: `install` refuses it (configure --check first), contacting nothing."""
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    proc = subprocess.run(
        [
            _CLI,
            "cluster",
            "install",
            "--env",
            "kind",
            "--root",
            str(repo_root),
            "--repo-url",
            "https://github.com/me/f.git",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines()[-1].startswith("llm-platform: error: install: ")
    assert "placeholder(s) left for environment kind: run llm-platform configure" in proc.stderr


def test_cli_secrets_dry_run_lists_keys_and_never_values(repo_root: Path) -> None:
    env = {
        **os.environ,
        "LLM_PLATFORM_SECRET_DEX_GOOGLE_CLIENT_ID": "id-given-123",
        "LLM_PLATFORM_SECRET_DEX_GOOGLE_CLIENT_SECRET": "secret-given-456",
    }
    proc = subprocess.run(
        [_CLI, "cluster", "secrets", "--env", "gke", "--dry-run", "--root", str(repo_root)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["dry_run"] is True and "litellm-master-key" in result["created"]
    assert (
        "id-given-123" not in proc.stdout + proc.stderr
        and "secret-given-456" not in proc.stdout + proc.stderr
    )
    kind = subprocess.run(
        [_CLI, "cluster", "secrets", "--env", "kind", "--dry-run", "--root", str(repo_root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert kind.returncode == 0 and json.loads(kind.stdout)["created"] == []


def test_the_deploy_kubeconfig_hands_kubectl_the_token_from_the_environment_only(tmp_path: Path) -> None:
    """The kubeconfig `deploy --install` writes holds no token: its exec plugin prints the one in the
    environment as the ExecCredential kubectl reads (client.authentication.k8s.io/v1)."""
    from llm_platform.cluster.kubeconfig import gke_kubeconfig
    from llm_platform.tofu import PlatformOutputs, ServiceAccounts

    require_tool("kubectl")
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
    outputs = PlatformOutputs(
        project_id="p",
        region="r",
        cluster_name="llm",
        cluster_location="r",
        cluster_endpoint="10.0.0.2",
        cluster_ca_certificate=ca,
        registry_url="r-docker.pkg.dev/p/modelcars",
        workload_identity_pool="p.svc.id.goog",
        service_accounts=ServiceAccounts(
            argocd="argocd-sa@p.iam.gserviceaccount.com",
            external_secrets="eso-sa@p.iam.gserviceaccount.com",
            pusher="pusher-sa@p.iam.gserviceaccount.com",
            nodes="nodes-sa@p.iam.gserviceaccount.com",
        ),
    )
    text = gke_kubeconfig(outputs, "GOOGLE_OAUTH_ACCESS_TOKEN")
    config = yaml.safe_load(text)
    assert config["clusters"][0]["cluster"] == {
        "server": "https://10.0.0.2",
        "certificate-authority-data": ca,
    }
    # kubectl runs the plugin with the environment and reads an ExecCredential from its stdout.
    plugin = config["users"][0]["user"]["exec"]
    env = {**os.environ, "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.canary-token"}
    proc = subprocess.run(
        [plugin["command"], *plugin["args"]], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(proc.stdout) == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "ya29.canary-token"},
    }
    assert plugin["apiVersion"] == "client.authentication.k8s.io/v1" and plugin["interactiveMode"] == "Never"
    # And kubectl takes the kubeconfig as it is (its own parser).
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    view = subprocess.run(
        [require_tool("kubectl"), "config", "view", "--kubeconfig", str(path), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(view.stdout)["current-context"] == "platform"
    assert "canary" not in text and "canary" not in view.stdout
