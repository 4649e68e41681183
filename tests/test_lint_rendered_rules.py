"""The rules on rendered objects (lint/rendered.py) on small trees: label-selector semantics and the
platform's namespaces, duplicate env names in every kind of container, fail-closed webhooks (absent
failurePolicy, objectSelector, grouping) and sync hooks that need objects applied later (phases, waves,
Helm hooks, optional references, Service DNS names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_platform.lint import rendered
from llm_platform.lint.argocd import AppGraph
from llm_platform.lint.config import LintConfig
from llm_platform.lint.sources import load_file
from llm_platform.lint.tree import K8sObject, Tree

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools

IMAGE = "ghcr.io/example/app:v1@sha256:" + "0" * 64


def _tree(tmp_path: Path, *files: str) -> Tree:
    """A tree of the documents of `files` (one unit per file, like an un-kustomized directory each)."""
    objects: list[K8sObject] = []
    sources = {}
    for n, text in enumerate(files):
        path = tmp_path / f"m{n}.yaml"
        path.write_text(text)
        sf = load_file(path, path.name)
        assert not sf.findings, [f.text() for f in sf.findings]
        sources[path] = sf
        for doc in sf.docs:
            objects.append(
                K8sObject(
                    data=doc.data,
                    path=path,
                    display=path.name,
                    doc=doc,
                    fallback=doc.locate(),
                    unit=f"dir:{n}",
                )
            )
    return Tree(
        repo_root=tmp_path,
        files=sources,
        kustomizations={},
        objects=objects,
        value_docs=[],
        config=LintConfig(),
        cwd=tmp_path,
    )


def _findings(tmp_path: Path, *files: str, rule: str | None = None) -> list[tuple[str, str, int, str]]:
    tree = _tree(tmp_path, *files)
    rendered.check(tree, AppGraph())
    return [(f.rule_id, f.path, f.line, f.message) for f in tree.findings if rule in (None, f.rule_id)]


# --- label selectors and the platform's namespaces ----------------------------------------------------

LABELS = {"kubernetes.io/metadata.name": "argocd", "team": "platform"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"team": "platform"}}, True),
        ({"matchLabels": {"team": "tenants"}}, False),
        ({"matchLabels": {"missing": "x"}}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "platform"]}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["platform"]}]}, False),
        # NotIn holds when the label is absent: the usual trap of "exclude the labelled namespaces"
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        # every requirement must hold (AND), matchLabels included
        (
            {
                "matchLabels": {"team": "platform"},
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["argocd"]}
                ],
            },
            False,
        ),
        # invalid requirements match nothing (the API server refuses them)
        ({"matchExpressions": [{"key": "team", "operator": "Gt", "values": ["1"]}]}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": []}]}, False),
        ("not-a-selector", False),
    ],
)
def test_selector_semantics(selector: Any, matches: bool) -> None:
    assert rendered.selector_matches(selector, LABELS) is matches


def test_platform_namespaces_come_from_the_tree_and_carry_their_labels(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        """apiVersion: v1
kind: Namespace
metadata:
  name: llm
  labels:
    tier: serving
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: gateway
  namespace: argocd
spec:
  source:
    repoURL: https://example.com/charts
    chart: gateway
    targetRevision: 1.0.0
  destination:
    namespace: gateway
  syncPolicy:
    managedNamespaceMetadata:
      labels:
        tier: edge
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: keda
  namespace: argocd
spec:
  source:
    repoURL: https://example.com/charts
    chart: keda
    targetRevision: 1.0.0
  destination:
    namespace: keda
---
apiVersion: v1
kind: Namespace
metadata:
  name: keda
  labels:
    tier: operators
""",
    )
    ns = rendered.platform_namespaces(tree, AppGraph())
    # a Namespace object alone (llm: serving) is not the platform's; a chart's destination is
    assert set(rendered.PLATFORM_NAMESPACES) | {"gateway"} == set(ns)
    assert ns["kube-system"] == [{"kubernetes.io/metadata.name": "kube-system"}]
    assert ns["keda"] == [{"tier": "operators", "kubernetes.io/metadata.name": "keda"}]
    assert {"tier": "edge", "kubernetes.io/metadata.name": "gateway"} in ns["gateway"]


# --- k8s-env-duplicate ---------------------------------------------------------------------------


def test_env_duplicates_in_init_ephemeral_and_serving_runtime_containers(tmp_path: Path) -> None:
    found = _findings(
        tmp_path,
        f"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          initContainers:
            - name: init
              image: {IMAGE}
              env:
                - name: A
                  value: "1"
                - name: A
                  value: "2"
                - name: B
                  value: x
                - name: A
                  valueFrom:
                    secretKeyRef:
                      name: s
                      key: a
          containers:
            - name: main
              image: {IMAGE}
              env:
                - name: A
                  value: "1"
                - name: B
                  value: "1"
          ephemeralContainers:
            - name: debug
              image: {IMAGE}
              env:
                - name: C
                - name: C
---
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: rt
spec:
  supportedModelFormats:
    - name: huggingface
  containers:
    - name: kserve-container
      image: {IMAGE}
      env:
        - name: HF_HOME
          value: /tmp/a
        - name: HF_HOME
          value: /tmp/b
""",
        rule=rendered.ENV_DUPLICATE,
    )
    assert [(line, msg.split(":")[0]) for _, _, line, msg in found] == [
        (18, "container 'init' defines env A again (first at env[0])"),
        (22, "container 'init' defines env A again (first at env[0])"),
        (40, "container 'debug' defines env C again (first at env[0])"),
        (55, "container 'kserve-container' defines env HF_HOME again (first at env[0])"),
    ]
    # the last definition wins, named with every one it overrides; valueFrom ones named by their source
    assert "env[3] valueFrom secretKeyRef s/a wins over env[0] value '1', env[1] value '2'" in found[0][3]
    assert "so env[1] wins;" in found[2][3]  # no literal value on either side: no values named
    assert "env[1] value '/tmp/b' wins over env[0] value '/tmp/a'" in found[3][3]


# --- k8s-webhook-blocks-platform -------------------------------------------------------------------


def _webhook(name: str, extra: str = "", api: str = "admissionregistration.k8s.io/v1") -> str:
    return f"""apiVersion: {api}
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
  - name: {name}.example.com
{extra}    clientConfig:
      service:
        name: {name}
        namespace: {name}-system
    rules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [pods]
    sideEffects: None
    admissionReviewVersions: [v1]
"""


def test_webhook_failure_policy_and_object_selector(tmp_path: Path) -> None:
    found = _findings(
        tmp_path,
        _webhook("absent"),  # v1: absent failurePolicy is Fail
        _webhook("explicit", "    failurePolicy: Fail\n"),
        _webhook("ignore", "    failurePolicy: Ignore\n"),
        _webhook("legacy", api="admissionregistration.k8s.io/v1beta1"),  # v1beta1 defaulted to Ignore
        _webhook("labelled", "    objectSelector:\n      matchLabels:\n        enforce: 'true'\n"),
        _webhook("emptyobj", "    objectSelector: {}\n"),  # empty: every object
    )
    assert [(path, line) for _, path, line, _ in found] == [
        ("m0.yaml", 6),  # at the webhook's name: no failurePolicy line to point at
        ("m1.yaml", 7),  # at failurePolicy
        ("m5.yaml", 6),
    ]
    assert "has no failurePolicy (v1 defaults to Fail) and no namespaceSelector" in found[0][3]
    # the backend's own namespace comes first: its own pods are the first thing it blocks
    assert "covers the platform's namespaces absent-system, kube-system, argocd, cert-manager" in found[0][3]
    assert "set failurePolicy: Ignore or a namespaceSelector that excludes them" in found[0][3]


def test_webhook_namespace_selector_against_platform_namespace_labels(tmp_path: Path) -> None:
    exclude_all = ", ".join([*rendered.PLATFORM_NAMESPACES, "spares-system"])
    spares = _webhook(
        "spares",
        "    namespaceSelector:\n      matchExpressions:\n        - key: kubernetes.io/metadata.name\n"
        f"          operator: NotIn\n          values: [{exclude_all}]\n",
    )
    assert _findings(tmp_path, spares) == []
    # a namespace the tree installs a chart (a platform component) into is a platform namespace too:
    # the same selector now covers it; one it only deploys its own manifests to (tenants, serving) is not
    app = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: gateway
  namespace: argocd
spec:
  source:
    repoURL: https://example.com/charts
    chart: gateway
    targetRevision: 1.0.0
  destination:
    namespace: gateway
"""
    serving = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: models
  namespace: argocd
spec:
  source:
    repoURL: https://github.com/example/llm-platform.git
    path: gitops/serving
    targetRevision: main
  destination:
    namespace: llm-serving
"""
    assert _findings(tmp_path, spares, serving) == []
    found = _findings(tmp_path, spares, app)
    assert (
        len(found) == 1 and "its namespaceSelector covers the platform's namespaces gateway:" in found[0][3]
    )
    # ...unless the namespace's labels (its Namespace object) take it out of the selector
    tenant = _webhook(
        "tenant",
        "    namespaceSelector:\n      matchLabels:\n        tier: tenant\n",
    )
    ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: gateway\n  labels:\n    tier: tenant\n"
    found = _findings(tmp_path, tenant, app, ns)
    assert len(found) == 1 and "namespaces gateway:" in found[0][3]
    assert _findings(tmp_path, tenant, app) == []


def test_webhooks_of_one_configuration_are_grouped_by_what_they_cover(tmp_path: Path) -> None:
    hooks = "".join(
        f"""  - name: {name}
    failurePolicy: Fail
{selector}    clientConfig:
      url: https://example.com/{name}
    rules:
      - apiGroups: ["*"]
        apiVersions: ["*"]
        operations: [CREATE]
        resources: ["*"]
    sideEffects: None
    admissionReviewVersions: [v1]
"""
        for name, selector in [
            ("a.example.com", ""),
            ("b.example.com", ""),
            (
                "c.example.com",
                "    namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: keda\n",
            ),
            ("d.example.com", ""),
        ]
    )
    found = _findings(
        tmp_path,
        f"apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\n"
        f"metadata:\n  name: many\nwebhooks:\n{hooks}",
    )
    assert [line for _, _, line, _ in found] == [7, 29]
    assert "webhook 'a.example.com' (and 2 more like it: 'b.example.com', 'd.example.com')" in found[0][3]
    assert (
        "webhook 'c.example.com' has failurePolicy: Fail and its namespaceSelector covers the "
        "platform's namespaces keda:" in found[1][3]
    )


# --- argocd-hook-needs-later -------------------------------------------------------------------------


def _job(annotations: str, pod: str, name: str = "hook") -> str:
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: default
  annotations:
{annotations}spec:
  template:
    spec:
      restartPolicy: Never
{pod}"""


_CONTAINER = f"""      containers:
        - name: c
          image: {IMAGE}
"""


def _object(kind: str, name: str, annotations: str = "") -> str:
    meta = f"  annotations:\n{annotations}" if annotations else ""
    body = "spec:\n  ports:\n    - port: 80\n" if kind == "Service" else "data: {}\n"
    return f"---\napiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: default\n{meta}{body}"


def test_presync_hook_references_of_every_kind(tmp_path: Path) -> None:
    pod = (
        _CONTAINER
        + """          env:
            - name: A
              valueFrom:
                secretKeyRef: {name: s-env, key: a}
            - name: B
              valueFrom:
                secretKeyRef: {name: s-optional, key: b, optional: true}
            - name: API
              value: http://api.default.svc:8080/v1
            - name: CACHE_HOST
              value: cache
          envFrom:
            - configMapRef: {name: cm-envfrom}
            - secretRef: {name: s-optional-envfrom, optional: true}
          args:
            - --hosts=cache,api
            - --upstream=db:5432
      volumes:
        - name: a
          secret: {secretName: s-volume}
        - name: b
          configMap: {name: cm-volume, optional: true}
        - name: c
          projected:
            sources:
              - configMap: {name: cm-projected}
              - secret: {name: s-optional-projected, optional: true}
"""
    )
    objects = "".join(
        _object(kind, name)
        for kind, name in [
            ("Secret", "s-env"),
            ("Secret", "s-optional"),
            ("ConfigMap", "cm-envfrom"),
            ("Secret", "s-optional-envfrom"),
            ("Secret", "s-volume"),
            ("ConfigMap", "cm-volume"),
            ("ConfigMap", "cm-projected"),
            ("Secret", "s-optional-projected"),
            ("Service", "api"),
            ("Service", "cache"),
            ("Service", "db"),
        ]
    )
    found = _findings(tmp_path, _job("    argocd.argoproj.io/hook: PreSync\n", pod) + objects)
    needs = [msg.split(" (")[1].split(")")[0] for _, _, _, msg in found]
    assert [msg.split("needs ")[1].split(" (")[0] for _, _, _, msg in found] == [
        "Secret s-env",
        "Service api",
        "Service cache",
        "ConfigMap cm-envfrom",
        "Service db",
        "Secret s-volume",
        "ConfigMap cm-projected",
    ]
    assert needs[0] == "wave 0"
    assert "(env API names api.default.svc)" in found[1][3]
    assert "(args[1] names db)" in found[4][3]  # host:port; --hosts=cache,api is a list, not an address
    assert "PreSync hooks run before any other object of the Application is applied" in found[0][3]
    assert "mark the reference optional: true" in found[0][3]
    assert "optional" not in found[1][3]  # a Service reference cannot be optional


def test_hook_order_phases_waves_and_units(tmp_path: Path) -> None:
    pod = (
        _CONTAINER
        + """          env:
            - name: A
              valueFrom:
                secretKeyRef: {name: creds, key: a}
"""
    )
    later = _object("Secret", "creds", '    argocd.argoproj.io/sync-wave: "1"\n')
    same = _object("Secret", "creds")
    presync_hook = _object("Secret", "creds", "    argocd.argoproj.io/hook: PreSync\n")

    def rules(*files: str) -> list[int]:
        return [line for _, _, line, _ in _findings(tmp_path, *files)]

    sync_hook = _job("    argocd.argoproj.io/hook: Sync\n", pod)
    assert rules(sync_hook + later) == [18]  # a Sync hook of wave 0 before a plain object of wave 1
    assert rules(sync_hook + same) == []  # same phase and wave: applied together
    assert rules(sync_hook + presync_hook) == []  # a PreSync hook exists before the Sync phase
    post = _job("    argocd.argoproj.io/hook: PostSync\n", pod)
    assert rules(post + later) == []  # PostSync runs after every Sync-phase object
    # Helm hooks as Argo CD maps them: pre-install/pre-upgrade are PreSync, post-install PostSync;
    # the Helm hook weight is the wave
    assert rules(_job("    helm.sh/hook: pre-install,pre-upgrade\n", pod) + same) == [18]
    assert rules(_job("    helm.sh/hook: post-install\n", pod) + same) == []
    assert rules(_job("    helm.sh/hook: test\n", pod) + same) == []  # never runs during a sync
    weighted = _object("Secret", "creds", "    helm.sh/hook: pre-install\n    helm.sh/hook-weight: '5'\n")
    assert rules(_job("    helm.sh/hook: pre-install\n", pod) + weighted) == [18]
    # Argo CD's own annotation wins over Helm's
    argo_wins = "    argocd.argoproj.io/hook: PostSync\n    helm.sh/hook: pre-install\n"
    assert rules(_job(argo_wins, pod) + same) == []
    assert rules(_job("    argocd.argoproj.io/hook: Skip\n", pod) + same) == []
    # only objects of the hook's own Application (here: its unit) count
    assert rules(_job("    argocd.argoproj.io/hook: PreSync\n", pod), same.removeprefix("---\n")) == []


def test_hook_needs_secret_produced_later_by_an_external_secret(tmp_path: Path) -> None:
    pod = (
        _CONTAINER
        + """          envFrom:
            - secretRef: {name: db-creds}
"""
    )
    es = """---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: db
  namespace: default
spec:
  secretStoreRef: {kind: ClusterSecretStore, name: gcp}
  target: {name: db-creds}
"""
    found = _findings(tmp_path, _job("    argocd.argoproj.io/hook: PreSync\n", pod) + es)
    assert len(found) == 1 and "Secret db-creds (envFrom secretRef)" in found[0][3]
    assert "a plain object (created by ExternalSecret db), Sync phase, wave 0" in found[0][3]


def test_a_service_name_in_a_list_is_not_an_address(tmp_path: Path) -> None:
    """kube-webhook-certgen's `--host=<svc>,<svc>.<ns>.svc` names the certificate's hosts: the
    hook never connects to the Service, so it does not need it."""
    pod = (
        _CONTAINER
        + """          args:
            - create
            - --host=operator,operator.default.svc
            - --namespace=default
"""
    )
    job = _job("    helm.sh/hook: pre-install,pre-upgrade\n", pod)
    assert _findings(tmp_path, job + _object("Service", "operator")) == []
    connects = job.replace("--namespace=default", "--webhook-url=https://operator.default.svc/validate")
    assert [line for _, _, line, _ in _findings(tmp_path, connects + _object("Service", "operator"))] == [18]


def test_a_fail_closed_webhook_on_its_own_kinds_only_is_not_reported(tmp_path: Path) -> None:
    """An operator validating its own custom resources fails closed on purpose (cert-manager, Kueue's
    ClusterQueue webhook): only webhooks on what the platform's components need to start can deadlock
    it (pods, workloads, services, config, secrets, RBAC, leases), subresources and wildcards included."""
    own = (
        _webhook("own")
        .replace('apiGroups: [""]', "apiGroups: [cert-manager.io]")
        .replace("resources: [pods]", "resources: [certificates, issuers]")
    )
    assert _findings(tmp_path, own) == []
    for group, resource in [
        ("apps", "deployments"),
        ("", "pods/ephemeralcontainers"),
        ("*", "*"),
        ("batch", "*"),
    ]:
        hook = (
            _webhook("w")
            .replace('apiGroups: [""]', f'apiGroups: ["{group}"]')
            .replace("resources: [pods]", f'resources: ["{resource}"]')
        )
        assert len(_findings(tmp_path, hook)) == 1, (group, resource)
