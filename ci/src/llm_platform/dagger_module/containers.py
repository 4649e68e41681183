"""The containers the Dagger module's steps run in: the toolbox and the per-step containers built on it.

The toolbox holds Python, uv, tofu, kubectl, git and the package (lint adds helm: `with_helm`), from
images pinned by digest in `llm_platform.images`, with the package installed from this module's own
source and `ci/uv.lock`; cache volumes keep Hugging Face downloads, uv wheels, apt archives and tofu providers warm between
runs. Each step runs one `llm-platform` command (`commands`) in it and reads its JSON result back
through the core's own pydantic models.
"""

import time
from typing import TYPE_CHECKING

import dagger
from dagger import dag

from llm_platform import images
from llm_platform.dagger_module.commands import (
    GIT_TOKEN_ENV,
    GOOGLE_ACCESS_TOKEN_ENV,
    GOOGLE_CREDENTIALS_ENV,
    REGISTRY_PASSWORD_ENV,
    REGISTRY_USERNAME_ENV,
    bump_argv,
    cluster_install_argv,
    crds_sync_argv,
    kind_test_argv,
    lint_argv,
    modelcar_changed_argv,
    tofu_argv,
)
from llm_platform.dagger_module.models import BumpRequest, CloudAccess, RegistryAccess
from llm_platform.errors import InputError

if TYPE_CHECKING:
    from llm_platform.bump.result import BumpResult
    from llm_platform.modelcar.lock import StaleSpecs
    from llm_platform.tofu import PlatformOutputs

# Where things live inside the toolbox container.
WORK = "/work"
PACKAGE_SRC = "/opt/llm-platform/src"
VENV = "/opt/llm-platform/venv"
HF_HOME = "/root/.cache/huggingface"
TOFU_PLUGIN_CACHE = "/root/.cache/tofu-plugins"
LLM_PLATFORM_CACHE = "/root/.cache/llm-platform"
CRD_CACHE = f"{LLM_PLATFORM_CACHE}/crds"
CHARTS_MIRROR = "/work/charts-mirror"  # `lint --charts-mirror`: a directory of packages + INDEX.json

# Set to a fresh value on side-effecting execs so the layer cache never replays them.
CACHE_BUSTER_ENV = "LLM_PLATFORM_CACHE_BUSTER"

# The files of ci/ that make up the installable package (nothing else of ci/ enters the toolbox).
PACKAGE_DEPENDENCY_FILES = ["pyproject.toml", "uv.lock"]
PACKAGE_FILES = [*PACKAGE_DEPENDENCY_FILES, "src/llm_platform/**"]


def cache_buster() -> str:
    # The layer cache keys on an exec's inputs; a fresh value forces a side-effecting command to really run.
    return str(time.time_ns())


def toolbox() -> dagger.Container:
    """The container the tool-needing steps run in: Python, uv, tofu, kubectl, git and the package."""
    package = dag.current_module().source()
    return (
        dag.container()
        .from_(images.PYTHON)
        .with_env_variable("DEBIAN_FRONTEND", "noninteractive")
        .with_mounted_cache(
            "/var/cache/apt/archives",
            dag.cache_volume("llm-platform-apt-archives"),
            sharing=dagger.CacheSharingMode.LOCKED,
        )
        .with_mounted_cache(
            "/var/lib/apt/lists",
            dag.cache_volume("llm-platform-apt-lists"),
            sharing=dagger.CacheSharingMode.LOCKED,
        )
        .with_exec(
            [
                "sh",
                "-c",
                "rm -f /etc/apt/apt.conf.d/docker-clean && apt-get update -qq && "
                "apt-get install -y -qq --no-install-recommends " + " ".join(images.TOOLBOX_APT_PACKAGES),
            ]
        )
        .without_mount("/var/cache/apt/archives")
        .without_mount("/var/lib/apt/lists")
        .with_file("/usr/local/bin/uv", dag.container().from_(images.UV).file(images.UV_BINARY_PATH))
        .with_file(
            "/usr/local/bin/tofu", dag.container().from_(images.OPENTOFU).file(images.OPENTOFU_BINARY_PATH)
        )
        .with_file(
            "/usr/local/bin/kubectl", dag.container().from_(images.KUBECTL).file(images.KUBECTL_BINARY_PATH)
        )
        .with_mounted_cache("/root/.cache/uv", dag.cache_volume("llm-platform-uv"))
        .with_env_variable("UV_LINK_MODE", "copy")
        .with_env_variable("UV_PYTHON_DOWNLOADS", "never")
        .with_env_variable("UV_PROJECT_ENVIRONMENT", VENV)
        .with_workdir(PACKAGE_SRC)
        # Dependencies first (they change rarely), then the package: a code change reuses the deps layer.
        .with_directory(PACKAGE_SRC, package, include=PACKAGE_DEPENDENCY_FILES)
        .with_exec(["uv", "sync", "--frozen", "--no-dev", "--no-install-project"])
        .with_directory(PACKAGE_SRC, package, include=PACKAGE_FILES)
        .with_exec(["uv", "sync", "--frozen", "--no-dev", "--no-editable"])
        .with_env_variable("PATH", f"{VENV}/bin:${{PATH}}", expand=True)
        .with_env_variable("HF_HOME", HF_HOME)
        .with_mounted_cache(HF_HOME, dag.cache_volume("llm-platform-huggingface"))
        # The core's own caches: publish's layer digests (files unchanged since the last push are neither
        # read nor uploaded), lint's schemas and the synced CRDs. Writers replace files atomically.
        .with_mounted_cache(LLM_PLATFORM_CACHE, dag.cache_volume("llm-platform-cache"))
        .with_env_variable("TF_PLUGIN_CACHE_DIR", TOFU_PLUGIN_CACHE)
        .with_mounted_cache(TOFU_PLUGIN_CACHE, dag.cache_volume("llm-platform-tofu-plugins"))
        .with_env_variable("CHECKPOINT_DISABLE", "1")
        .with_workdir(WORK)
    )


def tofu_container(infra: dagger.Directory, cloud: CloudAccess) -> dagger.Container:
    ctr = toolbox().with_directory(f"{WORK}/infra", infra).with_workdir(f"{WORK}/infra")
    if cloud.project_id:
        ctr = ctr.with_env_variable("TF_VAR_project_id", cloud.project_id)
    if cloud.credentials is not None:
        ctr = ctr.with_secret_variable(GOOGLE_CREDENTIALS_ENV, cloud.credentials)
    if cloud.access_token is not None:
        ctr = ctr.with_secret_variable(GOOGLE_ACCESS_TOKEN_ENV, cloud.access_token)
    # Plans and applies read live state: never replay one from the layer cache.
    return ctr.with_env_variable(CACHE_BUSTER_ENV, cache_buster())


async def apply_and_read_outputs(env: str, infra: dagger.Directory, cloud: CloudAccess) -> "PlatformOutputs":
    """Apply, then read the outputs in the same container (where a local state file would still be)."""
    from llm_platform.tofu import PlatformOutputs
    from llm_platform.tofu.environments import environment_root

    root = environment_root(env)
    ctr = tofu_container(infra, cloud).with_exec(tofu_argv("apply", root))
    out = await ctr.with_exec(tofu_argv("output", root)).stdout()
    return PlatformOutputs.model_validate_json(out)


async def changed_modelcars(modelcars: dagger.Directory) -> "StaleSpecs":
    """Run `modelcar changed` on the repository's modelcars/ (at its repository path, so errors name it)."""
    from llm_platform.modelcar.lock import StaleSpecs

    ctr = (
        toolbox().with_directory(f"{WORK}/modelcars", modelcars).with_exec(modelcar_changed_argv("modelcars"))
    )
    return StaleSpecs.model_validate_json(await ctr.stdout())


def with_helm(ctr: dagger.Container) -> dagger.Container:
    """`ctr` with helm at /usr/local/bin/helm, from its pinned image: the Helm 3 that Argo CD v3.4 renders
    charts with (`images.HELM`), for the steps that render charts."""
    return ctr.with_file(
        "/usr/local/bin/helm", dag.container().from_(images.HELM).file(images.HELM_BINARY_PATH)
    )


def lint_container(
    gitops: dagger.Directory, charts_mirror: dagger.Directory | None = None
) -> dagger.Container:
    """Lint from /work so findings name paths as in the repository (gitops/...), rendering every Helm chart
    of the tree with the helm Argo CD v3.4 uses. The chart packages come from their repositories, verified
    against the chart lock's published digests (into the cache volume), or from `charts_mirror` (packages
    and INDEX.json) when given; the CRDs the charts install are rendered from the same packages."""
    ctr = with_helm(toolbox()).with_directory(f"{WORK}/gitops", gitops)
    if charts_mirror is not None:
        # Imported here: importing this module must read no file.
        from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV

        ctr = ctr.with_directory(CHARTS_MIRROR, charts_mirror).with_env_variable(
            CHARTS_MIRROR_ENV, CHARTS_MIRROR
        )
    return ctr.with_exec(crds_sync_argv("gitops/crds.lock.yaml", CRD_CACHE)).with_exec(
        lint_argv("gitops", CRD_CACHE)
    )


KUBECONFIG = f"{WORK}/kubeconfig"


def install_container(
    repo: dagger.Directory, outputs: "PlatformOutputs", cloud: CloudAccess, git_token: dagger.Secret | None
) -> dagger.Container:
    """`cluster install --env gke` against the cluster `tofu apply` created: its kubeconfig from the typed
    outputs, which takes the access token from the environment (as Secret Manager does), $GIT_TOKEN for the
    repository credential. Reads live state: never replayed from the cache."""
    from llm_platform.cluster.kubeconfig import gke_kubeconfig

    if cloud.access_token is None:
        raise InputError("deploy --install: needs --access-token (the cluster and Secret Manager take it)")
    ctr = (
        with_helm(toolbox())
        .with_directory(f"{WORK}/repo", repo)
        .with_new_file(KUBECONFIG, gke_kubeconfig(outputs, GOOGLE_ACCESS_TOKEN_ENV))
        .with_secret_variable(GOOGLE_ACCESS_TOKEN_ENV, cloud.access_token)
    )
    if git_token is not None:
        ctr = ctr.with_secret_variable(GIT_TOKEN_ENV, git_token)
    return ctr.with_env_variable(CACHE_BUSTER_ENV, cache_buster()).with_exec(
        cluster_install_argv("gke", KUBECONFIG, f"{WORK}/repo")
    )


# k3s in a container under the engine: cgroup v2 needs the nesting fix of moby's hack/dind (move the
# container's processes to a child group, then hand every controller down), or k3s fails with "cannot enter
# cgroupv2" (dagger#6364).
K3S_ENTRYPOINT = """#!/bin/sh
set -e
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || :
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers > /sys/fs/cgroup/cgroup.subtree_control
fi
exec "$@"
"""
K3S_ALIAS = "k3s"
K3S_CONFIG = "/etc/rancher/k3s"


def k3s_service(config: dagger.CacheVolume) -> dagger.Service:
    """A fresh single-node k3s (the pinned image) as a privileged service; it writes its kubeconfig into
    `config`. Traefik and metrics-server are off: the platform brings its own gateway and metrics."""
    server = (
        "k3s server --bind-address $(ip route | grep src | awk '{print $NF}') "
        f"--tls-san {K3S_ALIAS} --disable traefik --disable metrics-server --egress-selector-mode=disabled"
    )
    return (
        dag.container()
        .from_(images.K3S)
        .with_new_file("/usr/local/bin/entrypoint.sh", K3S_ENTRYPOINT, permissions=0o755)
        .with_entrypoint(["/usr/local/bin/entrypoint.sh"])
        .with_mounted_cache(K3S_CONFIG, config)
        .with_mounted_temp("/etc/lib/cni")
        .with_mounted_temp("/var/lib/kubelet")
        .with_mounted_temp("/var/lib/rancher/k3s")
        .with_mounted_temp("/var/log")
        .with_exposed_port(6443)
        .as_service(args=["sh", "-c", server], use_entrypoint=True, insecure_root_capabilities=True)
    )


def kind_test_container(
    gitops: dagger.Directory, charts_mirror: dagger.Directory | None, timeout: str
) -> dagger.Container:
    """`cluster kind-test --kubeconfig` against a k3s service made for this run alone (its config volume is
    new each run, so no kubeconfig of an earlier server is read), once its node is Ready."""
    buster = cache_buster()
    config = dag.cache_volume(f"llm-platform-k3s-config-{buster}")
    kubeconfig = f"{WORK}/k3s.yaml"
    ctr = (
        with_helm(toolbox())
        .with_directory(f"{WORK}/repo/gitops", gitops)
        .with_mounted_cache("/k3s", config)
        .with_service_binding(K3S_ALIAS, k3s_service(config))
        .with_env_variable(CACHE_BUSTER_ENV, buster)
    )
    if charts_mirror is not None:
        from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV

        ctr = ctr.with_directory(CHARTS_MIRROR, charts_mirror).with_env_variable(
            CHARTS_MIRROR_ENV, CHARTS_MIRROR
        )
    ready = (
        "i=0; until [ -s /k3s/k3s.yaml ]; do i=$((i+1)); [ $i -lt 180 ] || exit 1; sleep 1; done; "
        f"sed 's#https://127.0.0.1:6443#https://{K3S_ALIAS}:6443#' /k3s/k3s.yaml > {kubeconfig}; "
        f"i=0; until kubectl --kubeconfig {kubeconfig} wait --for=condition=Ready nodes --all --timeout=10s; "
        "do i=$((i+1)); [ $i -lt 30 ] || exit 1; sleep 2; done"
    )
    return ctr.with_exec(["sh", "-c", ready]).with_exec(kind_test_argv(kubeconfig, f"{WORK}/repo", timeout))


def git_container(
    repo: dagger.Directory, git_token: dagger.Secret | None, registry: RegistryAccess | None = None
) -> dagger.Container:
    """The toolbox with the checkout at /work/repo; the bump command hands $GIT_TOKEN to git itself, and reads
    the image from the registry with `registry`'s credentials when the repository names a key to verify
    it with (modelcars/signing.yaml)."""
    ctr = toolbox().with_directory(f"{WORK}/repo", repo).with_workdir(f"{WORK}/repo")
    # The checkout belongs to another uid than the container's root: let git work in it.
    ctr = ctr.with_exec(["git", "config", "--global", "--add", "safe.directory", f"{WORK}/repo"])
    if git_token is not None:
        ctr = ctr.with_secret_variable(GIT_TOKEN_ENV, git_token)
    if registry is not None and registry.username:
        ctr = ctr.with_env_variable(REGISTRY_USERNAME_ENV, registry.username)
    if registry is not None and registry.password is not None:
        ctr = ctr.with_secret_variable(REGISTRY_PASSWORD_ENV, registry.password)
    return ctr


async def run_bumps(ctr: dagger.Container, requests: list[BumpRequest], push: bool) -> list["BumpResult"]:
    """One bump per model in one checkout, each commit on top of the previous; what each reported."""
    from llm_platform.bump.result import BumpResult

    ctr = ctr.with_env_variable(CACHE_BUSTER_ENV, cache_buster())
    results = []
    for request in requests:
        ctr = ctr.with_exec(
            bump_argv(request.model, request.ref, f"{WORK}/repo", hf_commit=request.hf_commit, push=push)
        )
        # stdout() is the last exec's: read it per bump (the earlier execs are not run again).
        results.append(BumpResult.model_validate_json(await ctr.stdout()))
    return results
