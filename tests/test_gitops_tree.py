"""The reference GitOps tree (gitops/): it parses, renders (validation: tests/test_lint_reference_tree.py),
forms one consistent Argo CD app-of-apps per environment, and the environments differ only where
they must. Everything runs offline: `kubectl kustomize` renders our manifests, Helm charts are
checked by their pins and values files (they cannot be rendered without their registries).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from llm_platform.lint.crds_lock import load_lock
from tests.support.gitops import (
    CLUSTER_PROVIDES,
    DIGEST_REF,
    ENVIRONMENTS,
    EXACT_VERSION,
    GITOPS_REPO_URL,
    PROVIDES,
    REQUIRES,
    SYNC_WAVE,
    WAVE_PATTERN,
    ChildApp,
    api_group,
    container_images,
    flatten,
    is_component,
    kustomization_file,
    kustomize_build,
    load_yaml_documents,
    object_id,
    value_files,
    walk_environment,
)

MODELCAR_REPOSITORY = "us-central1-docker.pkg.dev/llm-platform-example/modelcars/"
# The modelcar specs the platform ships (modelcars/<name>.yaml): one serving entry each.
SHIPPED_MODELS = {
    "minilm-demo",
    "qwen2.5-coder-1.5b-instruct",
    "qwen2.5-coder-7b-instruct",
    "qwen2.5-coder-14b-instruct",
}
GPU_MODELS = SHIPPED_MODELS - {"minilm-demo"}


@pytest.fixture(scope="module")
def gitops(repo_root: Path) -> Path:
    return repo_root / "gitops"


@pytest.fixture(scope="module")
def crd_groups(repo_root: Path) -> set[str]:
    """API groups defined by the upstream CRDs the tree is validated against (the `kinds` of
    gitops/crds.lock.yaml, `group/Kind` each)."""
    lock = load_lock(repo_root / "gitops" / "crds.lock.yaml")
    return {kind.partition("/")[0] for entry in lock.crds for kind in entry.kinds}


@pytest.fixture(scope="module")
def environments(repo_root: Path) -> dict[str, tuple[dict[str, Any], list[ChildApp]]]:
    return {env: walk_environment(repo_root, env) for env in ENVIRONMENTS}


@pytest.fixture(scope="module")
def kustomizations(gitops: Path) -> dict[Path, list[dict[str, Any]]]:
    """Every buildable kustomization in the tree, rendered (components build only inside one)."""
    directories = sorted({f.parent for f in gitops.rglob("kustomization.yaml")}, key=lambda p: p.as_posix())
    return {d: kustomize_build(d) for d in directories if not is_component(d)}


def _yaml_files(gitops: Path) -> list[Path]:
    return sorted([*gitops.rglob("*.yaml"), *gitops.rglob("*.yml")])


def _manifest_files(gitops: Path) -> list[Path]:
    """YAML that is deployed; files at the top of gitops/ describe the tree (e.g. the linter's
    crds.lock.yaml) and are not reconciled by any Application."""
    return [p for p in _yaml_files(gitops) if p.parent != gitops]


def test_every_yaml_file_parses_without_duplicate_keys(gitops: Path) -> None:
    files = _yaml_files(gitops)
    assert len(files) > 40, f"the tree looks empty: {len(files)} YAML files"
    for path in files:
        documents = load_yaml_documents(path)
        assert documents, f"{path}: no YAML document"
        # Inline kustomize patches are YAML too.
        for doc in documents:
            if isinstance(doc, dict) and doc.get("kind") in ("Kustomization", "Component"):
                for patch in doc.get("patches") or []:
                    if isinstance(patch.get("patch"), str):
                        assert yaml.safe_load(patch["patch"]) is not None, f"{path}: empty inline patch"


def test_every_kustomization_renders(kustomizations: dict[Path, list[dict[str, Any]]]) -> None:
    # Schema, CRD (with CEL) and policy validation of every rendered object is the linter's job:
    # tests/test_lint_reference_tree.py requires `llm-platform lint gitops` to be clean.
    assert len(kustomizations) >= 15
    for directory, objects in kustomizations.items():
        assert objects, f"{directory}: renders nothing"


def test_app_of_apps_paths_exist_and_every_directory_is_reached_once(
    gitops: Path, environments: dict[str, tuple[dict[str, Any], list[ChildApp]]]
) -> None:
    reached_anywhere: set[Path] = set()
    for env, (_root, apps) in environments.items():
        owners: dict[Path, set[str]] = defaultdict(set)
        for app in apps:
            for directory in app.local_dirs:
                owners[directory].add(app.name)
            for value_file in value_files(app.manifest):
                assert (gitops.parent / value_file).is_file(), f"{env}: {app.name}: missing {value_file}"
        shared = {d: names for d, names in owners.items() if len(names) > 1}
        assert not shared, f"{env}: directories reached by more than one Application: {shared}"
        reached_anywhere |= set(owners)
    content_dirs = {p.parent.resolve() for p in _manifest_files(gitops) if p.parent.name != "bootstrap"}
    unreached = sorted(str(d.relative_to(gitops.resolve())) for d in content_dirs - reached_anywhere)
    assert not unreached, f"directories no environment's Application reaches: {unreached}"


def test_every_child_application_is_well_formed(
    environments: dict[str, tuple[dict[str, Any], list[ChildApp]]],
) -> None:
    for env, (_root, apps) in environments.items():
        children = [a for a in apps if a.name != "root"]
        assert len(children) >= 15, f"{env}: only {len(children)} Applications"
        names = [a.name for a in children]
        assert len(names) == len(set(names)), f"{env}: duplicate Application names"
        for app in children:
            where = f"{env}: Application {app.name}"
            assert app.wave is not None, f"{where}: no {SYNC_WAVE} annotation"
            assert WAVE_PATTERN.match(app.wave), f"{where}: sync wave {app.wave!r} is not an integer"
            spec = app.manifest["spec"]
            assert spec.get("project") == "platform", f"{where}: project"
            assert spec["destination"].get("server") and spec["destination"].get("namespace"), where
            assert "resources-finalizer.argocd.argoproj.io" in app.manifest["metadata"].get("finalizers", [])
            refs = {s["ref"] for s in app.sources if "ref" in s}
            for source in app.sources:
                if "chart" in source:
                    assert EXACT_VERSION.match(str(source["targetRevision"])), (
                        f"{where}: chart {source['chart']} version {source['targetRevision']!r} is not exact"
                    )
                    assert not str(source["repoURL"]).startswith("oci://"), (
                        f"{where}: OCI repoURL without oci://"
                    )
                    for value_file in (source.get("helm") or {}).get("valueFiles", []):
                        assert value_file.startswith("$values/") and "values" in refs, (
                            f"{where}: {value_file}"
                        )
                elif source.get("repoURL") == GITOPS_REPO_URL:
                    assert "path" in source or "ref" in source, where
                    assert source["targetRevision"] == "main", f"{where}: our repo is tracked at main"
                else:
                    # Upstream manifests straight from git (CRDs): an exact release tag.
                    assert EXACT_VERSION.match(str(source["targetRevision"])), (
                        f"{where}: {source['repoURL']} at {source['targetRevision']!r} is not a release tag"
                    )


def test_crd_providers_sync_before_their_users(
    environments: dict[str, tuple[dict[str, Any], list[ChildApp]]], crd_groups: set[str]
) -> None:
    for env, (root, apps) in environments.items():
        cluster = {g.strip() for g in root["metadata"]["annotations"][CLUSTER_PROVIDES].split(",")}
        provider_wave: dict[str, int] = {}
        for app in apps:
            for group in app.groups(PROVIDES):
                assert group not in provider_wave and group not in cluster, f"{env}: {group} provided twice"
                provider_wave[group] = int(app.wave or 0)
        # The root itself creates the AppProject and Applications: CRDs from the bootstrap install.
        for app in apps:
            used = set(app.groups(REQUIRES))
            used |= {api_group(o) for o in app.rendered if "." in api_group(o) and api_group(o) in crd_groups}
            for group in sorted(used):
                if group in cluster:
                    continue
                assert group in provider_wave, (
                    f"{env}: {app.name} uses {group}, which no Application provides"
                )
                if app.name == "root":
                    continue
                assert provider_wave[group] < int(app.wave or 0), (
                    f"{env}: {app.name} (wave {app.wave}) uses {group}, provided at wave {provider_wave[group]}"
                )
        # GKE manages the Gateway API and Inference Extension CRDs; managing them too would conflict.
        if env == "gke":
            assert "gateway.networking.k8s.io" in cluster and "gateway.networking.k8s.io" not in provider_wave


def test_every_deployed_image_is_pinned_by_digest(
    environments: dict[str, tuple[dict[str, Any], list[ChildApp]]],
) -> None:
    """Every container image and image volume an environment deploys from our manifests."""
    seen = 0
    for env, (_root, apps) in environments.items():
        for app in apps:
            for obj in app.rendered:
                for where, ref in container_images(obj):
                    seen += 1
                    assert DIGEST_REF.match(ref), (
                        f"{env}: {app.name}: {object_id(obj)} {where}: {ref!r} is not pinned by digest"
                    )
    assert seen >= 15


def test_one_serving_entry_per_modelcar_spec(repo_root: Path, gitops: Path) -> None:
    models_dir = gitops / "serving" / "models"
    listed = yaml.safe_load((models_dir / "kustomization.yaml").read_text())["resources"]
    assert set(listed) == SHIPPED_MODELS
    assert {p.name for p in models_dir.iterdir() if p.is_dir()} == SHIPPED_MODELS
    specs = {p.stem for p in (repo_root / "modelcars").glob("*.yaml")}
    assert specs <= set(listed), f"modelcar specs without a serving entry: {sorted(specs - set(listed))}"
    for name in specs:
        spec = yaml.safe_load((repo_root / "modelcars" / f"{name}.yaml").read_text())
        assert spec["image"]["repository"] == MODELCAR_REPOSITORY + name
        assert spec["serving"]["served_model_name"] == name


def test_serving_entries_are_wired_together(
    gitops: Path, kustomizations: dict[Path, list[dict[str, Any]]]
) -> None:
    """Per model: the modelcar reference, served name, route, pool, picker and autoscaler agree."""
    objects = kustomizations[gitops / "serving" / "models"]
    by_kind: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for obj in objects:
        assert obj["metadata"].get("namespace") == "llm-serving", object_id(obj)
        by_kind[obj["kind"]][obj["metadata"]["name"]] = obj
    config_map = yaml.safe_load((gitops / "tenants" / "litellm" / "configmap.yaml").read_text())
    litellm = yaml.safe_load(config_map["data"]["config.yaml"])
    upstreams = {m["model_name"]: m["litellm_params"] for m in litellm["model_list"]}
    assert set(upstreams) == SHIPPED_MODELS
    for name in SHIPPED_MODELS:
        route = next(
            r
            for r in by_kind["HTTPRoute"].values()
            if r["metadata"]["labels"]["llm-platform.io/model"] == name
        )
        prefix = route["spec"]["rules"][0]["matches"][0]["path"]["value"]
        assert prefix == f"/{name}"
        assert (
            upstreams[name]["api_base"] == f"http://inference-gateway.llm-gateway.svc.cluster.local/{name}/v1"
        )
    isvc = by_kind["InferenceService"]["minilm-demo"]
    assert re.fullmatch(
        rf"oci://{re.escape(MODELCAR_REPOSITORY)}minilm-demo@sha256:[0-9a-f]{{64}}",
        isvc["spec"]["predictor"]["model"]["storageUri"],
    )
    for name in GPU_MODELS:
        suffix = name.replace(".", "-")
        deployment = by_kind["Deployment"][f"vllm-{suffix}"]
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["llm-platform.io/model"] == name
        assert upstreams[name]["model"] == f"hosted_vllm/{name}"
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "model")
        assert re.fullmatch(
            rf"{re.escape(MODELCAR_REPOSITORY + name)}@sha256:[0-9a-f]{{64}}", volume["image"]["reference"]
        )
        pool = by_kind["InferencePool"][f"vllm-pool-{suffix}"]
        selector = pool["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert (
            not selector.items()
            <= by_kind["Deployment"][f"epp-{suffix}"]["spec"]["template"]["metadata"]["labels"].items()
        )
        ports = {p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
        assert {p["number"] for p in pool["spec"]["targetPorts"]} <= ports
        picker = pool["spec"]["endpointPickerRef"]
        assert picker["name"] in by_kind["Service"] and picker.get("group", "") == ""
        epp_args = by_kind["Deployment"][picker["name"]]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert epp_args[epp_args.index("--pool-name") + 1] == pool["metadata"]["name"]
        route = by_kind["HTTPRoute"][f"vllm-{suffix}"]
        assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == pool["metadata"]["name"]
        scaled = by_kind["ScaledObject"][f"vllm-{suffix}"]
        assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert scaled["spec"]["minReplicaCount"] == 0
        queries = {t["name"]: t["metadata"]["query"] for t in scaled["spec"]["triggers"]}
        assert f'model_name="{name}"' in queries["vllm-waiting"]
        assert f'service="{picker["name"]}"' in queries["epp-queue"]
        assert deployment["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "serving"


# The cache locations vLLM and the libraries under it write to; each must be a writable volume.
VLLM_WRITABLE_ENV = (
    "HOME",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "HF_HOME",
    "VLLM_CACHE_ROOT",
    "VLLM_CONFIG_ROOT",
    "TRITON_CACHE_DIR",
    "TORCHINDUCTOR_CACHE_DIR",
)
TAINT_EFFECTS = {
    "NO_SCHEDULE": "NoSchedule",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
    "NO_EXECUTE": "NoExecute",
}


def _gpu_pool_taints(repo_root: Path) -> list[dict[str, str]]:
    """The taints infra/ puts on the GPU node pool, as Kubernetes spells them."""
    with (repo_root / "infra" / "modules" / "gpu-pool" / "main.tf").open() as f:
        module = hcl2.load(f)
    taints = [
        {k: str(t[k]).strip('"') for k in ("key", "value", "effect")}
        for resource in module["resource"]
        for pools in resource.values()
        for pool in pools.values()
        for config in pool.get("node_config", [])
        for t in config.get("taint", [])
    ]
    assert taints, "infra/modules/gpu-pool declares no taint"
    return [{**t, "effect": TAINT_EFFECTS[t["effect"]]} for t in taints]


def _writable_dirs(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    return [
        m["mountPath"]
        for m in container.get("volumeMounts", [])
        if m["name"] in empty_dirs and not m.get("readOnly")
    ]


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    return any(
        t.get("key") == taint["key"]
        and t.get("effect") in (None, taint["effect"])
        and (t.get("operator") == "Exists" or t.get("value") == taint["value"])
        for t in tolerations
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_model_servers_run_as_non_root_with_writable_caches(repo_root: Path, gitops: Path, env: str) -> None:
    """vLLM (and the kind simulator in its place) runs as a numeric non-root uid, tolerates the
    GPU pool's taint, leaves the replica count to KEDA, and has every cache dir on an emptyDir."""
    taints = _gpu_pool_taints(repo_root)
    objects = _objects(gitops / "serving" / "overlays" / env)
    for name in GPU_MODELS:
        deployment = objects[f"Deployment/llm-serving/vllm-{name.replace('.', '-')}"]
        assert "replicas" not in deployment["spec"], "KEDA owns replicas; the models app self-heals"
        pod = deployment["spec"]["template"]["spec"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True
        assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0
        for taint in taints:
            assert _tolerates(pod.get("tolerations", []), taint), f"{name}: does not tolerate {taint}"
        container = pod["containers"][0]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"readinessProbe", "livenessProbe"} <= container.keys()
        writable = _writable_dirs(pod, container)
        env_vars = {e["name"]: e.get("value") for e in container["env"]}
        for var in VLLM_WRITABLE_ENV:
            path = env_vars[var]
            assert any(path == d or path.startswith(d.rstrip("/") + "/") for d in writable), (
                f"{env} {name}: {var}={path} is not on a writable volume {writable}"
            )


def test_kserve_model_runs_as_the_modelcar_uid_with_probes(gitops: Path) -> None:
    """KServe overwrites kserve-container's securityContext with uidModelcar and gives the
    modelcar containers none: the predictor's pod-level uid must be non-root and equal it."""
    kserve = yaml.safe_load((gitops / "charts" / "kserve" / "values.yaml").read_text())
    uid = kserve["kserve"]["storage"]["uidModelcar"]
    for env in ENVIRONMENTS:
        isvc = _objects(gitops / "serving" / "overlays" / env)["InferenceService/llm-serving/minilm-demo"]
        predictor = isvc["spec"]["predictor"]
        assert predictor["securityContext"]["runAsNonRoot"] is True
        assert predictor["securityContext"]["runAsUser"] == uid
        model = predictor["model"]
        assert {"readinessProbe", "livenessProbe", "startupProbe"} <= model.keys()
        home = {e["name"]: e.get("value") for e in model["env"]}["HOME"]
        assert home in _writable_dirs(predictor, model)


def _objects(directory: Path) -> dict[str, dict[str, Any]]:
    return {object_id(o): o for o in kustomize_build(directory)}


def _field_diff(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    fa, fb = flatten(a), flatten(b)
    return {k for k in fa.keys() | fb.keys() if fa.get(k, object()) != fb.get(k, object())}


def test_environments_differ_only_where_the_environments_differ(gitops: Path) -> None:
    # The app-of-apps: GKE adds DCGM + OpenCost; kind installs the CRDs GKE manages and the GPU
    # Operator; both point the platform and models Applications at their own overlays.
    gke, kind = _objects(gitops / "apps" / "gke"), _objects(gitops / "apps" / "kind")
    assert gke.keys() - kind.keys() == {"Application/argocd/dcgm-exporter", "Application/argocd/opencost"}
    assert kind.keys() - gke.keys() == {
        "Application/argocd/gateway-api-crds",
        "Application/argocd/inference-extension-crds",
        "Application/argocd/gpu-operator",
    }
    changed = {k: _field_diff(gke[k], kind[k]) for k in gke.keys() & kind.keys() if gke[k] != kind[k]}
    assert changed == {
        "Application/argocd/platform": {"spec.sources[0].path"},
        "Application/argocd/models": {"spec.sources[0].path"},
    }

    # Platform: the secret backend, the gateways' Service shape and the GPU node label.
    gke, kind = (
        _objects(gitops / "platform" / "overlays" / "gke"),
        _objects(gitops / "platform" / "overlays" / "kind"),
    )
    assert gke.keys() == kind.keys()
    changed = {k for k in gke if gke[k] != kind[k]}
    assert changed == {
        "ClusterSecretStore/cloud-secrets",
        "AgentgatewayParameters/llm-gateway/inference-gateway",
        "AgentgatewayParameters/llm-gateway/edge",
        "ResourceFlavor/gpu",
    }
    assert gke["ClusterSecretStore/cloud-secrets"]["spec"]["provider"].keys() == {"gcpsm"}
    assert kind["ClusterSecretStore/cloud-secrets"]["spec"]["provider"].keys() == {"fake"}

    # Serving: only the GPU model servers differ (simulator vs vLLM on L4 nodes), only in the pod.
    gke, kind = (
        _objects(gitops / "serving" / "overlays" / "gke"),
        _objects(gitops / "serving" / "overlays" / "kind"),
    )
    assert gke.keys() == kind.keys()
    changed_ids = {k for k in gke if gke[k] != kind[k]}
    assert changed_ids == {f"Deployment/llm-serving/vllm-{m.replace('.', '-')}" for m in GPU_MODELS}
    allowed = re.compile(
        r"^spec\.template\.spec\.(nodeSelector\..*|volumes.*|containers\[0\]\.(image|command.*|args.*|resources\..*|volumeMounts.*))$"
    )
    for object_key in changed_ids:
        fields = _field_diff(gke[object_key], kind[object_key])
        assert fields and all(allowed.match(f) for f in fields), (
            f"{object_key}: unexpected differences {fields}"
        )
        kind_pod = kind[object_key]["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in str(kind_pod["containers"][0]["resources"])
        assert "llm-d-inference-sim" in kind_pod["containers"][0]["image"]
        assert gke[object_key]["spec"]["template"]["spec"]["nodeSelector"] == {
            "cloud.google.com/gke-accelerator": "nvidia-l4"
        }


def test_argocd_waits_for_child_application_health(gitops: Path) -> None:
    values = yaml.safe_load((gitops / "charts" / "argocd" / "values.yaml").read_text())
    lua = values["configs"]["cm"]["resource.customizations.health.argoproj.io_Application"]
    assert "obj.status.health.status" in lua and "return hs" in lua


def test_server_side_apply_where_crds_are_too_big_for_client_side(
    environments: dict[str, tuple[dict[str, Any], list[ChildApp]]],
) -> None:
    for env, (_root, apps) in environments.items():
        by_name = {a.name: a for a in apps}
        for name in ("kube-prometheus-stack", "kserve-crd", "argocd"):
            options = by_name[name].manifest["spec"]["syncPolicy"].get("syncOptions", [])
            assert "ServerSideApply=true" in options, f"{env}: {name} needs ServerSideApply=true"


def test_kustomization_files_are_found_where_apps_point(gitops: Path) -> None:
    for env in ENVIRONMENTS:
        for sub in ("platform/overlays", "serving/overlays"):
            assert kustomization_file(gitops / sub / env) is not None, f"{sub}/{env}"
