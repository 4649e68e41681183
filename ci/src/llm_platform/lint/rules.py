"""The rule registry: every rule the linter can report, with its severity and why it exists.

Silence a rule for one object with the annotation `lint.llm-platform.io/ignore: rule-a,rule-b`,
or for a path (glob) in the config file (`ignore: [{path: "gitops/legacy/**", rules: [rule-a]}]`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from llm_platform.lint.model import Severity

IGNORE_ANNOTATION = "lint.llm-platform.io/ignore"


def silences(annotations: object, rule_id: str) -> bool:
    """Whether an object's annotations silence `rule_id` (`lint.llm-platform.io/ignore: a,b` or `*`)."""
    raw = annotations.get(IGNORE_ANNOTATION) if isinstance(annotations, dict) else None
    return isinstance(raw, str) and bool({rule_id, "*"} & {r.strip() for r in raw.split(",")})


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    category: str
    severity: Severity
    rationale: str


_E, _W = Severity.error, Severity.warning

_RULES: list[Rule] = [
    # YAML
    Rule(
        id="yaml-syntax",
        category="yaml",
        severity=_E,
        rationale="A file that does not parse is not applied at all.",
    ),
    Rule(
        id="yaml-duplicate-key",
        category="yaml",
        severity=_E,
        rationale="Duplicate keys are resolved silently (last wins) by most loaders, hiding one of the values.",
    ),
    Rule(
        id="yaml-tab",
        category="yaml",
        severity=_E,
        rationale="YAML forbids tabs in indentation; parsers disagree on them.",
    ),
    Rule(
        id="yaml-truthy",
        category="yaml",
        severity=_W,
        rationale="yes/no/on/off are booleans for Kubernetes (YAML 1.1) but strings elsewhere; quote them.",
    ),
    Rule(
        id="yaml-limits",
        category="yaml",
        severity=_E,
        rationale="A file over the parser's bounds (size, nesting depth, nodes with aliases expanded, alias "
        "count) is not parsed: an alias bomb or deep nesting would exhaust memory and time.",
    ),
    Rule(
        id="yaml-not-regular-file",
        category="yaml",
        severity=_E,
        rationale="A FIFO, device or socket named like a manifest is never read (reading it could block for "
        "ever); no tool can apply it.",
    ),
    Rule(
        id="yaml-symlink-loop",
        category="yaml",
        severity=_E,
        rationale="A symlink that resolves to itself can be read by no tool; Argo CD fails the manifest "
        "generation of its Application.",
    ),
    Rule(
        id="yaml-symlink-escape",
        category="yaml",
        severity=_E,
        rationale="A symlink pointing outside the repository reads files no review covers; Argo CD refuses "
        "such out-of-bounds symlinks.",
    ),
    Rule(
        id="k8s-object-identity",
        category="yaml",
        severity=_E,
        rationale="A manifest without apiVersion, kind or metadata.name is rejected by the API server.",
    ),
    Rule(
        id="k8s-duplicate-object",
        category="yaml",
        severity=_E,
        rationale="Two manifests for one object fight each other; Argo CD reports it as a shared resource.",
    ),
    # Render
    Rule(
        id="render-kustomize",
        category="render",
        severity=_E,
        rationale="A kustomization that does not build makes its whole Application fail to sync.",
    ),
    Rule(
        id="render-kustomize-cycle",
        category="render",
        severity=_E,
        rationale="Kustomizations that include each other never build (kustomize refuses the cycle), and "
        "none of them is rendered by lint: a cycle would otherwise lint as clean.",
    ),
    Rule(
        id="helm-render-error",
        category="render",
        severity=_E,
        rationale="A chart source that `helm template` cannot render with its values (lint --render-charts) "
        "makes its Application fail to sync.",
    ),
    Rule(
        id="helm-values-unknown",
        category="helm",
        severity=_E,
        rationale="Helm silently ignores values keys that the chart does not define (its values.schema.json, "
        "else its values.yaml defaults and subcharts), so a typo or a key from another chart version "
        "disables the setting without any error (lint --render-charts).",
    ),
    Rule(
        id="helm-render-nondeterministic",
        category="helm",
        severity=_E,
        rationale="A chart whose output differs between two renders of the same inputs (randAlphaNum "
        "passwords, genCA/genSignedCert certificates, `now` timestamps) is OutOfSync for ever, since Argo CD "
        "renders on every refresh; with auto-sync the secret or certificate rotates constantly, breaking "
        "whatever uses it (lint --render-charts).",
    ),
    # Schemas
    Rule(
        id="schema-unknown-field",
        category="schema",
        severity=_E,
        rationale="Unknown fields are dropped or rejected by the API server; usually a typo or wrong indentation.",
    ),
    Rule(
        id="schema-invalid",
        category="schema",
        severity=_E,
        rationale="A value of the wrong type, a missing required field or a value outside its enum is rejected.",
    ),
    Rule(
        id="schema-cel",
        category="schema",
        severity=_E,
        rationale="CRD x-kubernetes-validations (CEL) rules are enforced by the API server at apply time.",
    ),
    Rule(
        id="schema-missing",
        category="schema",
        severity=_E,
        rationale="A custom resource with no known CRD is not validated at all; list it as allowed if intended.",
    ),
    Rule(
        id="schema-version-not-served",
        category="schema",
        severity=_E,
        rationale="The CRD does not serve this apiVersion; the API server rejects the object.",
    ),
    # Argo CD
    Rule(
        id="argocd-sync-wave-not-integer",
        category="argocd",
        severity=_E,
        rationale="Argo CD parses sync waves with strconv.Atoi; anything else silently becomes wave 0.",
    ),
    Rule(
        id="argocd-app-source-invalid",
        category="argocd",
        severity=_E,
        rationale="An Application needs exactly one of source/sources, each with a repoURL and either a path, "
        "a chart or a ref.",
    ),
    Rule(
        id="argocd-app-destination-invalid",
        category="argocd",
        severity=_E,
        rationale="An Application destination needs exactly one of server/name and a namespace.",
    ),
    Rule(
        id="argocd-app-path-missing",
        category="argocd",
        severity=_E,
        rationale="An Application pointing at a path that does not exist in the repository never syncs.",
    ),
    Rule(
        id="argocd-app-orphan",
        category="argocd",
        severity=_E,
        rationale="Manifests that no Application deploys are dead code that looks deployed.",
    ),
    Rule(
        id="argocd-app-reached-twice",
        category="argocd",
        severity=_E,
        rationale="An Application or path deployed twice from one root makes two apps fight over the same objects.",
    ),
    Rule(
        id="argocd-app-project-missing",
        category="argocd",
        severity=_E,
        rationale="An Application in a project that does not exist is never reconciled.",
    ),
    Rule(
        id="argocd-project-scope",
        category="argocd",
        severity=_E,
        rationale="An AppProject that does not allow the Application's repo or destination blocks the sync.",
    ),
    Rule(
        id="argocd-app-health-missing",
        category="argocd",
        severity=_E,
        rationale="Sync waves between Applications gate nothing unless argocd-cm restores the Application health check.",
    ),
    Rule(
        id="argocd-crd-order",
        category="argocd",
        severity=_E,
        rationale="An app using custom resources must sync after the app that installs their CRDs.",
    ),
    Rule(
        id="argocd-chart-not-pinned",
        category="argocd",
        severity=_E,
        rationale="A Helm chart without an exact version changes under you on the next sync.",
    ),
    Rule(
        id="argocd-server-side-apply-missing",
        category="argocd",
        severity=_E,
        rationale="Large CRDs exceed the last-applied annotation limit; those apps need ServerSideApply=true.",
    ),
    Rule(
        id="argocd-sync-option-unknown",
        category="argocd",
        severity=_E,
        rationale="Argo CD ignores sync options it does not know (they are case sensitive).",
    ),
    Rule(
        id="argocd-values-missing",
        category="argocd",
        severity=_E,
        rationale="A Helm value file that does not exist (or a $ref with no ref source) fails manifest generation.",
    ),
    Rule(
        id="argocd-replicas-selfheal",
        category="argocd",
        severity=_E,
        rationale="A workload scaled by KEDA that pins spec.replicas under selfHeal is scaled back on every sync.",
    ),
    # Policy
    Rule(
        id="policy-image-not-digest",
        category="policy",
        severity=_E,
        rationale="Images must be pinned by digest so a deploy is reproducible and cannot change behind a tag. "
        "Checked wherever a rendered object names an image: pod templates, custom resources (image fields, "
        "repository/tag and repository/image/version triples), image flags in args, and JSON config in "
        "ConfigMaps (a disabled KServe runtime is never pulled and is not checked).",
    ),
    Rule(
        id="policy-image-latest",
        category="policy",
        severity=_E,
        rationale="`latest` (or no tag) names no version at all.",
    ),
    Rule(
        id="policy-modelcar-not-digest",
        category="policy",
        severity=_E,
        rationale="Modelcar references (oci:// storageUri, image volumes) must be pinned by @sha256 digest.",
    ),
    Rule(
        id="policy-gpu-limit",
        category="policy",
        severity=_E,
        rationale="nvidia.com/gpu is an extended resource: it must be set as a limit (and equal any request).",
    ),
    Rule(
        id="policy-gpu-toleration",
        category="policy",
        severity=_E,
        rationale="GPU node pools are tainted nvidia.com/gpu; a GPU pod without the toleration never schedules.",
    ),
    Rule(
        id="policy-gpu-queue-label",
        category="policy",
        severity=_E,
        rationale="GPU workloads must carry kueue.x-k8s.io/queue-name so Kueue admits them against the GPU quota.",
    ),
    Rule(
        id="policy-probes",
        category="policy",
        severity=_E,
        rationale="Serving containers need readiness and liveness probes, or traffic reaches a model still loading.",
    ),
    Rule(
        id="policy-non-root",
        category="policy",
        severity=_E,
        rationale="Serving pods must set runAsNonRoot: true.",
    ),
    Rule(
        id="policy-resources",
        category="policy",
        severity=_E,
        rationale="Serving containers must request cpu and memory, or the scheduler packs them blindly.",
    ),
    # Cross-references
    Rule(
        id="xref-httproute-backend",
        category="xref",
        severity=_E,
        rationale="An HTTPRoute backendRef to a pool or Service that does not exist returns 500s.",
    ),
    Rule(
        id="xref-httproute-parent",
        category="xref",
        severity=_E,
        rationale="An HTTPRoute whose parent Gateway does not exist is never programmed.",
    ),
    Rule(
        id="xref-pool-selector",
        category="xref",
        severity=_E,
        rationale="An InferencePool whose selector matches no model-server pods has no endpoints.",
    ),
    Rule(
        id="xref-pool-port",
        category="xref",
        severity=_E,
        rationale="An InferencePool target port that no selected container exposes sends traffic nowhere.",
    ),
    Rule(
        id="xref-pool-endpoint-picker",
        category="xref",
        severity=_E,
        rationale="The InferencePool endpoint picker Service (and port) must exist or every request fails.",
    ),
    Rule(
        id="xref-scaledobject-target",
        category="xref",
        severity=_E,
        rationale="A ScaledObject whose scale target does not exist scales nothing.",
    ),
    Rule(
        id="xref-externalsecret-store",
        category="xref",
        severity=_E,
        rationale="An ExternalSecret whose (Cluster)SecretStore does not exist never produces its Secret.",
    ),
    Rule(
        id="xref-servicemonitor-selector",
        category="xref",
        severity=_E,
        rationale="A ServiceMonitor that selects no Service (or names a port it lacks) scrapes nothing. "
        "The Services a cluster creates itself count: default/kubernetes (the API server) and the kubelet "
        "Service that prometheus-operator maintains (its --kubelet-service).",
    ),
    Rule(
        id="xref-servicemonitor-target",
        category="xref",
        severity=_E,
        rationale="A ServiceMonitor whose Service selects pods that cannot be scraped on the platform's "
        "clusters (kube-controller-manager, kube-scheduler, etcd, kube-proxy: managed and invisible on GKE, "
        "bound to 127.0.0.1 by kubeadm on kind) has targets that are down forever, and the matching "
        "<Component>Down alert of the default rules fires forever on both environments.",
    ),
    Rule(
        id="xref-localqueue",
        category="xref",
        severity=_E,
        rationale="A queue-name label must name a LocalQueue in the namespace whose ClusterQueue exists.",
    ),
    Rule(
        id="xref-litellm-models",
        category="xref",
        severity=_E,
        rationale="Every LiteLLM model_list backend must be a model name some server actually serves.",
    ),
    # Rendered objects: containers, admission webhooks, sync hooks
    Rule(
        id="k8s-env-duplicate",
        category="policy",
        severity=_E,
        rationale="A container that defines one env name twice keeps only the last definition, so one of "
        "them silently loses (often a chart's placeholder default wins or loses unnoticed); and server-side "
        "apply (Argo CD ServerSideApply=true) rejects the whole object, since env is a list keyed by name.",
    ),
    Rule(
        id="k8s-webhook-blocks-platform",
        category="policy",
        severity=_E,
        rationale="A fail-closed admission webhook (failurePolicy Fail, the v1 default) whose "
        "namespaceSelector covers the platform's own namespaces rejects every matching create/update there "
        "while its backend is down (not started yet, crashed, certificate not issued): its own backend's "
        "pods, cert-manager that issues its certificate and Argo CD that would repair it included, so the "
        "cluster deadlocks. A webhook with a non-empty objectSelector only sees labelled objects and is "
        "not reported.",
    ),
    Rule(
        id="argocd-hook-needs-later",
        category="argocd",
        severity=_E,
        rationale="A sync hook whose pod needs a Secret, ConfigMap or Service that its own Application "
        "applies later (PreSync hooks run before every plain object; otherwise a later phase or sync wave) "
        "can never run on the first sync: the pod waits for the Secret (CreateContainerConfigError) or "
        "cannot reach the Service, and Argo CD only creates them after the hook succeeds. Optional "
        "references are not reported.",
    ),
    Rule(
        id="config-placeholder",
        category="config",
        severity=_E,
        rationale="A value still holding the upstream template's placeholder (llm-platform-example: the git "
        "URL, the GCP project, the modelcar registry) points Argo CD, External Secrets and the model pods at "
        "a repository and a project the fork does not own; `llm-platform configure` sets them. Off when the "
        "lint config says `template: true` (the upstream template itself).",
    ),
]

RULES: dict[str, Rule] = {r.id: r for r in _RULES}


def rule(rule_id: str) -> Rule:
    return RULES[rule_id]
