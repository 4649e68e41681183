"""`cluster root` and `cluster status` as pure logic: overview, failures, the table, progress lines, the
wait and the root apply, driven by `StateKube` (tests/support/kube_states.py), a state holder over a dict
that implements the `Kube` protocol; it is not a fake cluster. Its Application documents are checked
against the real Application CRD of the pinned argo-cd chart (`crds_dir`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_platform.cluster.kube import ClusterError
from llm_platform.cluster.root import (
    RootResult,
    WaitTimeout,
    apply_root,
    format_duration,
    parse_duration,
    root_application,
    wait,
)
from llm_platform.cluster.status import (
    LINE_WIDTH,
    Overview,
    failures,
    overview,
    progress_lines,
    table,
)
from llm_platform.errors import InputError, PlatformError
from llm_platform.lint.schemas import CrdStore
from tests.support.kube_states import (
    StateKube,
    application,
    condition,
    resource,
    sync_result,
)

pytestmark = pytest.mark.unit  # pure: StateKube only, no cluster, registry, podman or tool

FORK = "https://github.com/someone/llm-platform.git"
COMPARISON = (
    "Failed to load target state: failed to generate manifest for source 1 of 2: rpc error: code = Unknown "
    "desc = Manifest generation error (cached): `helm template` failed exit status 1: Error: values don't "
    "meet the specifications of the schema(s)"
)
SYNC_FAILED = 'The Deployment "litellm" is invalid: spec.template.spec.containers[0].image: Required value'


def root_app(**kw: Any) -> dict[str, Any]:
    return application("root", wave=None, destination="argocd", **kw)


def healthy_platform() -> list[dict[str, Any]]:
    return [
        root_app(),
        application("argocd", wave=-10, destination="argocd"),
        application("cert-manager", wave=-8, destination="cert-manager"),
        application("keda", wave=-7, destination="keda"),
        application("litellm", wave=5, destination="litellm"),
    ]


def broken_litellm() -> dict[str, Any]:
    """A sync that failed on one resource while the comparison of the other source failed."""
    return application(
        "litellm",
        wave=5,
        destination="litellm",
        sync="OutOfSync",
        health="Degraded",
        phase="Failed",
        op_message="one or more objects failed to apply, reason: " + SYNC_FAILED,
        conditions=[condition("ComparisonError", COMPARISON), condition("SyncError", "sync failed")],
        resources=[
            resource(
                "apps",
                "Deployment",
                "litellm",
                "litellm",
                health="Degraded",
                message='Deployment "litellm" exceeded its progress deadline',
                sync="OutOfSync",
            ),
            resource("", "Service", "litellm", "litellm", health="Healthy"),
            resource("", "ConfigMap", "litellm", "litellm-config", health=None, sync="OutOfSync"),
        ],
        sync_results=[
            sync_result(
                "apps",
                "Deployment",
                "litellm",
                "litellm",
                status="SyncFailed",
                message=SYNC_FAILED,
                hook_phase="Failed",
            ),
            sync_result("", "Service", "litellm", "litellm", message="service/litellm unchanged"),
            sync_result(
                "batch",
                "Job",
                "litellm",
                "litellm-migrate",
                message="Job failed: BackoffLimitExceeded",
                hook_phase="Failed",
            ),
        ],
    )


def progressing(name: str, wave: int, destination: str) -> dict[str, Any]:
    return application(
        name,
        wave=wave,
        destination=destination,
        health="Progressing",
        phase="Running",
        op_message=f"waiting for healthy state of apps/Deployment/{name}",
        resources=[
            resource(
                "apps",
                "Deployment",
                destination,
                name,
                health="Progressing",
                message="Waiting for rollout to finish: 0 of 1 updated replicas are available...",
            )
        ],
    )


class Clock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run_wait(kube: StateKube, timeout_s: float = 600.0, poll_s: float = 5.0) -> tuple[Clock, list[Overview]]:
    clock = Clock()
    seen: list[Overview] = []
    wait(kube, timeout_s, poll_s, clock, clock.sleep, seen.append)
    return clock, seen


# -- overview, table, failures -------------------------------------------------------------------------


def test_all_synced_and_healthy_is_done() -> None:
    kube = StateKube(healthy_platform())
    view = overview(kube)
    assert view.all_done and view.root_found and view.note == ""
    assert [(r.name, r.wave) for r in view.rows] == [
        ("argocd", -10),
        ("cert-manager", -8),
        ("keda", -7),
        ("root", 0),
        ("litellm", 5),
    ]
    assert all(r.done and r.message == "" for r in view.rows)  # a succeeded operation says nothing
    assert view.counts.total == 5 and view.counts.done == 5 and view.counts.health == {"Healthy": 5}
    assert failures(kube, view) == []
    lines = table(view).splitlines()
    assert lines[0].split() == ["NAME", "WAVE", "SYNC", "HEALTH", "MESSAGE"]
    assert lines[1].split() == ["argocd", "-10", "Synced", "Healthy"]
    assert lines[-1] == "5 Applications, 5 done; sync: 5 Synced; health: 5 Healthy (all Synced and Healthy)"
    clock, seen = run_wait(kube)
    assert len(seen) == 2 and clock.sleeps == [5.0]  # done twice in a row with the same Applications


def test_no_applications_and_no_root_are_states() -> None:
    empty = overview(StateKube())
    assert (
        not empty.all_done
        and empty.rows == []
        and "no Argo CD Applications in namespace argocd" in empty.note
    )
    assert table(empty).splitlines()[1:] == ["0 Applications, 0 done", empty.note]
    assert failures(StateKube(), empty) == []
    rootless = overview(StateKube(healthy_platform()[1:]))
    assert not rootless.all_done and rootless.note == "the root Application argocd/root does not exist"
    assert table(rootless).splitlines()[-1] == rootless.note
    fresh = overview(StateKube([application("keda", wave=-7, with_status=False), root_app()]))
    assert [(r.name, r.sync, r.health, r.done) for r in fresh.rows] == [
        ("keda", "Unknown", "Unknown", False),
        ("root", "Synced", "Healthy", True),
    ]


def test_wave_annotation() -> None:
    rows = overview(
        StateKube(
            [
                root_app(),
                application("a", wave=" -3 "),
                application("b", wave="soon"),
                application("c", wave=None),
            ]
        )
    ).rows
    assert [(r.name, r.wave) for r in rows] == [("a", -3), ("b", 0), ("c", 0), ("root", 0)]


def test_failures_list_sync_failed_resources_and_comparison_errors() -> None:
    kube = StateKube([*healthy_platform()[:-1], broken_litellm()])
    view = overview(kube)
    assert not view.all_done
    bad = view.rows[-1]
    assert (bad.name, bad.sync, bad.health, bad.done) == ("litellm", "OutOfSync", "Degraded", False)
    assert (
        bad.message == "one or more objects failed to apply, reason: " + SYNC_FAILED
    )  # the failed operation first
    got = failures(kube, view)
    assert got == [
        "litellm: operation Failed: one or more objects failed to apply, reason: " + SYNC_FAILED,
        "litellm: ComparisonError: " + COMPARISON,
        "litellm: SyncError: sync failed",
        'litellm: Deployment litellm/litellm: Degraded: Deployment "litellm" exceeded its progress deadline',
        "litellm: ConfigMap litellm/litellm-config: OutOfSync",
        "litellm: Deployment litellm/litellm: SyncFailed: " + SYNC_FAILED,
        "litellm: Job litellm/litellm-migrate: hook Failed: Job failed: BackoffLimitExceeded",
    ]
    # without the failed operation, the error condition is the message
    comparing = application(
        "x", sync="Unknown", health="Healthy", conditions=[condition("ComparisonError", COMPARISON)]
    )
    assert overview(StateKube([comparing])).rows[0].message == "ComparisonError: " + COMPARISON


def test_failures_when_resource_health_is_in_the_resource_tree() -> None:
    app = application(
        "kserve",
        wave=-7,
        destination="kserve",
        health="Progressing",
        resources=[resource("apps", "Deployment", "kserve", "kserve-controller-manager", health=None)],
        resource_health_source="appTree",
    )
    kube = StateKube([root_app(), app])
    (line,) = failures(kube, overview(kube))
    assert line.startswith("kserve: health Progressing: Argo CD keeps resource health in its resource tree")
    assert "argocd app get argocd/kserve" in line


def test_failures_are_bounded_and_an_app_that_went_is_said() -> None:
    many = application(
        "big",
        health="Degraded",
        resources=[
            resource("", "ConfigMap", "big", f"cm-{i}", health="Degraded", message="x" * 5000)
            for i in range(50)
        ],
    )
    kube = StateKube([root_app(), many])
    view = overview(kube)
    lines = failures(kube, view)
    assert len(lines) == 20 and lines[-1] == "big: 31 more not shown"
    assert max(map(len, lines)) <= 300
    del kube.objects[("argoproj.io/v1alpha1", "Application", "argocd", "big")]
    assert failures(kube, view) == ["big: the Application no longer exists"]


def test_table_width_is_bounded() -> None:
    long = "Deployment is not ready: " + "".join(f"line {i}\n" for i in range(1000))
    assert len(long) > 5000
    apps = [
        root_app(),
        application("litellm", wave=5, health="Degraded", phase="Failed", op_message=long),
        application("n" * 250, wave=-12345, sync="OutOfSync", health="Missing"),
    ]
    view = overview(StateKube(apps))
    assert len(view.rows[1].message) <= 500  # the row keeps a cut message only
    text = table(view)
    lines = text.splitlines()
    assert len(lines) == 5 and max(map(len, lines)) <= LINE_WIDTH
    assert "line 0 line 1" in text and "\n" not in lines[2] and lines[3].rstrip().endswith("…")
    assert max(map(len, progress_lines(None, view))) <= LINE_WIDTH
    assert len(json.dumps(view.model_dump())) < 3000


# -- progress and the wait -----------------------------------------------------------------------------


def test_a_wave_progressing_then_healthy() -> None:
    done = healthy_platform()
    first = [
        root_app(),
        application("argocd", wave=-10, destination="argocd"),
        progressing("cert-manager", -8, "cert-manager"),
        application(
            "keda",
            wave=-7,
            destination="keda",
            sync="OutOfSync",
            health="Missing",
            phase="Running",
            op_message="waiting for completion of hook and 0 more resources",
        ),
    ]
    second = [*first[:2], progressing("cert-manager", -8, "cert-manager"), done[3]]
    kube = StateKube(script=[first, first, second, done, done])
    clock, seen = run_wait(kube)
    assert len(seen) == 5 and clock.sleeps == [5.0] * 4 and seen[-1].all_done
    changes = [progress_lines(a, b) for a, b in zip([None, *seen], seen, strict=False)]
    assert changes[0] == [
        "argocd (wave -10): Synced/Healthy",
        "cert-manager (wave -8): Synced/Progressing: waiting for healthy state of apps/Deployment/cert-manager",
        "keda (wave -7): OutOfSync/Missing: waiting for completion of hook and 0 more resources",
        "root (wave 0): Synced/Healthy",
    ]
    assert changes[1] == []  # nothing changed
    assert changes[2] == ["keda (wave -7): OutOfSync/Missing -> Synced/Healthy"]
    assert changes[3] == [
        "cert-manager (wave -8): Synced/Progressing -> Synced/Healthy",
        "litellm (wave 5): Synced/Healthy",
    ]
    assert changes[4] == []
    assert progress_lines(seen[-1], overview(StateKube(done[:-1]))) == ["litellm (wave 5): gone"]


def test_done_once_is_not_done_when_a_new_application_appears() -> None:
    done = healthy_platform()
    kube = StateKube(script=[done[:-1], done, done])
    _, seen = run_wait(kube)
    assert len(seen) == 3  # the first done Overview lacked litellm: not stable yet


def test_timeout_carries_the_failing_apps() -> None:
    kube = StateKube([*healthy_platform()[:-1], broken_litellm()])
    clock = Clock()
    seen: list[Overview] = []
    with pytest.raises(WaitTimeout) as err:
        wait(kube, 60, 7, clock, clock.sleep, seen.append)
    exc = err.value
    assert isinstance(exc, PlatformError) and exc.exit_code == 1
    assert clock.now == 1060.0 and clock.sleeps == [7.0] * 8 + [4.0]  # the last poll is at the deadline
    assert len(seen) == 10 and exc.overview == seen[-1]
    assert str(exc) == (
        "timed out after 1m: 1 of 5 Applications not Synced and Healthy: litellm (OutOfSync/Degraded)"
    )
    assert "litellm: Deployment litellm/litellm: SyncFailed: " + SYNC_FAILED in exc.failures
    assert exc.failures[0].startswith("litellm: operation Failed:")


def test_timeout_without_any_application() -> None:
    clock = Clock()
    with pytest.raises(WaitTimeout) as err:
        wait(StateKube(), 10, 5, clock, clock.sleep)
    assert str(err.value) == (
        "timed out after 10s: no Argo CD Applications in namespace argocd: the root Application has not "
        "been applied"
    )
    assert err.value.failures == []


@pytest.mark.parametrize("reason", ["Unauthorized", "Forbidden"])
def test_unauthorized_mid_wait_ends_at_once(reason: str) -> None:
    error = ClusterError(f"list Application: error: You must be logged in to the server ({reason})", reason)
    kube = StateKube([*healthy_platform()[:-1], progressing("litellm", 5, "litellm")], fail_on={2: error})
    clock, seen = Clock(), []
    with pytest.raises(ClusterError) as err:
        wait(kube, 600, 5, clock, clock.sleep, seen.append)
    assert err.value is error and len(seen) == 1 and clock.sleeps == [5.0]


def test_unreachable_and_timeouts_are_retried_until_the_deadline() -> None:
    flaky = {
        2: ClusterError(
            "list Application: dial tcp 10.0.0.1:443: connect: connection refused", "Unreachable"
        ),
        3: ClusterError("list Application: kubectl gave no answer within 120 s", "Timeout"),
    }
    kube = StateKube(healthy_platform(), fail_on=flaky)
    clock, seen = run_wait(kube)
    assert len(seen) == 2 and clock.sleeps == [5.0] * 3
    down = StateKube(
        [*healthy_platform()[:-1], progressing("litellm", 5, "litellm")],
        fail_on=dict.fromkeys(range(2, 100), flaky[2]),
    )
    clock = Clock()
    with pytest.raises(WaitTimeout) as err:
        wait(down, 20, 5, clock, clock.sleep)
    assert "last poll failed: list Application: dial tcp" in str(err.value)
    assert err.value.overview.rows[-1].name == "litellm"  # the last Overview seen
    assert err.value.failures == [
        "(the failing Applications could not be read: list Application: dial tcp 10.0.0.1:443: connect: "
        "connection refused)"
    ]


def test_durations() -> None:
    assert [parse_duration(t) for t in ("30m", "1h30m", "90s", "90", "2h")] == [1800, 5400, 90, 90, 7200]
    assert [format_duration(s) for s in (1800, 5400, 45, 3661, 0)] == ["30m", "1h30m", "45s", "1h1m1s", "0s"]
    for bad in ("", "m", "30 minutes", "-5m", "1.5h"):
        with pytest.raises(InputError, match="--timeout"):
            parse_duration(bad)


# -- the root Application ------------------------------------------------------------------------------


def test_root_application_from_the_tree(repo_root: Path) -> None:
    for env in ("gke", "kind"):
        obj = root_application(repo_root, env, FORK, "v1.2.0")
        assert obj["metadata"] | {"annotations": None} == {
            "name": "root",
            "namespace": "argocd",
            "annotations": None,
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        }
        assert obj["spec"]["source"] == {
            "repoURL": FORK,
            "targetRevision": "v1.2.0",
            "path": f"gitops/apps/{env}",
        }


def test_root_apply_is_idempotent(repo_root: Path) -> None:
    kube = StateKube()
    obj = root_application(repo_root, "kind", FORK, "main")
    first = apply_root(kube, obj)
    assert first == RootResult(
        application="argocd/root",
        repo_url=FORK,
        revision="main",
        created=True,
        changed=True,
        differences=["(new)"],
    )
    # Argo CD writes the status; the live object gains the server's metadata
    live = kube.objects[("argoproj.io/v1alpha1", "Application", "argocd", "root")]
    live["status"] = root_app()["status"]
    live["metadata"] |= {"uid": "u", "resourceVersion": "7", "generation": 1}
    live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    second = apply_root(kube, root_application(repo_root, "kind", FORK, "main"))
    assert (second.created, second.changed, second.differences) == (False, False, [])
    assert len(kube.applied) == 1  # nothing written the second time
    third = apply_root(kube, root_application(repo_root, "kind", FORK, "release-2"))
    assert (third.created, third.changed, third.differences) == (False, True, ["spec.source.targetRevision"])
    assert (
        len(kube.applied) == 2
        and "status" in kube.objects[("argoproj.io/v1alpha1", "Application", "argocd", "root")]
    )


def _tree(tmp_path: Path, text: str, env: str = "kind") -> Path:
    (tmp_path / "gitops" / "bootstrap").mkdir(parents=True, exist_ok=True)
    (tmp_path / "gitops" / "bootstrap" / f"root-{env}.yaml").write_text(text)
    return tmp_path


ROOT_TEXT = (Path(__file__).resolve().parent.parent / "gitops" / "bootstrap" / "root-kind.yaml").read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: root}\n",
            "gitops/bootstrap/root-kind.yaml: expected one argoproj.io/v1alpha1 Application, found v1 ConfigMap",
        ),
        (
            ROOT_TEXT + "---\n" + ROOT_TEXT,
            "gitops/bootstrap/root-kind.yaml:31: not valid YAML: expected one document, found another",
        ),
        (
            "# nothing\n",
            "gitops/bootstrap/root-kind.yaml: expected one Argo CD Application, found no document",
        ),
        ("- a\n", "gitops/bootstrap/root-kind.yaml: expected one Argo CD Application, found a list"),
        (
            ROOT_TEXT.replace("  source:\n", "  sources:\n  -\n"),
            "gitops/bootstrap/root-kind.yaml: the Application has no spec.source (a single source) to point at the fork",
        ),
    ],
)
def test_a_root_file_that_is_not_one_application(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InputError) as err:
        root_application(_tree(tmp_path, text), "kind", FORK, "main")
    assert str(err.value) == expected


@pytest.mark.parametrize(
    ("env", "url", "revision", "expected"),
    [
        (
            "prod",
            FORK,
            "main",
            "gitops/bootstrap/root-prod.yaml: no such file: no root Application for 'prod' "
            "(environments: gke, kind)",
        ),
        ("../x", FORK, "main", "--env: '../x' is not an environment name (gke, kind, ...)"),
        ("kind", "https://me:tok3n@github.com/me/p.git", "main", "--repo-url: the URL carries credentials"),
        ("kind", " ", "main", "--repo-url: empty"),
        ("kind", FORK, "", "--revision: empty"),
    ],
)
def test_root_inputs(repo_root: Path, env: str, url: str, revision: str, expected: str) -> None:
    with pytest.raises(InputError) as err:
        root_application(repo_root, env, url, revision)
    assert str(err.value).startswith(expected) and "tok3n" not in str(err.value)


# -- the fixtures are real Application documents -------------------------------------------------------

ALL_FIXTURES: list[Callable[[], list[dict[str, Any]]]] = [
    healthy_platform,
    lambda: [broken_litellm(), progressing("cert-manager", -8, "cert-manager")],
    lambda: [
        application("keda", with_status=False),
        application("x", sync="Unknown", conditions=[condition("ComparisonError", COMPARISON)]),
        application(
            "kserve",
            health="Progressing",
            resource_health_source="appTree",
            resources=[resource("apps", "Deployment", "kserve", "m", health=None)],
        ),
        application("keda", sync="OutOfSync", health="Missing", phase="Running", op_message="waiting"),
        application(
            "cluster-scoped",
            resources=[resource("rbac.authorization.k8s.io", "ClusterRole", "", "r")],
            sync_results=[sync_result("", "Namespace", "", "ns", status="SyncFailed", message="denied")],
        ),
    ],
]


def test_fixtures_are_valid_applications(crds_dir: Path, repo_root: Path) -> None:
    crd = CrdStore([crds_dir], cache_dir=None).lookup("argoproj.io", "Application")
    assert crd is not None and crd.source.endswith("argo-cd/9.5.21/crds.yaml"), crd and crd.source
    validator = crd.served["v1alpha1"]
    docs = [doc for make in ALL_FIXTURES for doc in make()]
    docs.append(root_application(repo_root, "gke", FORK, "main"))
    assert len(docs) == 13
    for doc in docs:
        result = validator.validate(doc)
        assert result.errors == [], (doc["metadata"]["name"], result.errors)
    # the validator does catch a status of the wrong shape
    wrong = healthy_platform()[0]
    wrong["status"]["operationState"]["syncResult"]["resources"][0].pop("version")
    wrong["status"]["conditions"] = [{"type": "ComparisonError"}]
    wrong["status"]["sync"]["statuss"] = "Synced"
    assert len(validator.validate(wrong).errors) == 3
