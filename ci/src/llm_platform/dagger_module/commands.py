"""The `llm-platform` command lines the Dagger module runs in its toolbox container.

Plain functions and constants, no dagger: tests parse each command line with the real CLI and run
it for real. Credentials never appear in an argv; the commands read them from the environment
variables named here.
"""

from __future__ import annotations

# The environment variables the core reads credentials from (never flags). Tests pin them to the core's.
HF_TOKEN_ENV = "HF_TOKEN"
REGISTRY_USERNAME_ENV = "LLM_PLATFORM_REGISTRY_USERNAME"
REGISTRY_PASSWORD_ENV = "LLM_PLATFORM_REGISTRY_PASSWORD"
GOOGLE_CREDENTIALS_ENV = "GOOGLE_CREDENTIALS"
GOOGLE_ACCESS_TOKEN_ENV = "GOOGLE_OAUTH_ACCESS_TOKEN"
GIT_TOKEN_ENV = "GIT_TOKEN"


def modelcar_build_argv(
    spec: str, output: str, source_dir: str | None = None, max_layers: int | None = None
) -> list[str]:
    """`llm-platform modelcar build`: spec -> OCI image layout; prints the build result as JSON.

    The Hugging Face token is read from $HF_TOKEN by the command.
    """
    argv = ["llm-platform", "modelcar", "build", spec, "--output", output, "--json"]
    if source_dir is not None:
        argv += ["--source-dir", source_dir]
    if max_layers is not None:
        argv += ["--max-layers", str(max_layers)]
    return argv


def modelcar_publish_argv(
    spec: str,
    address: str,
    source_dir: str | None = None,
    username: str | None = None,
    max_layers: int | None = None,
) -> list[str]:
    """`llm-platform modelcar publish`: spec -> registry (streamed, verified); prints the publish result as JSON.

    The password is read from $LLM_PLATFORM_REGISTRY_PASSWORD, the HF token from $HF_TOKEN.
    """
    argv = ["llm-platform", "modelcar", "publish", spec, "--to", address, "--json"]
    if source_dir is not None:
        argv += ["--source-dir", source_dir]
    if username:
        argv += ["--username", username]
    if max_layers is not None:
        argv += ["--max-layers", str(max_layers)]
    return argv


def modelcar_changed_argv(modelcars: str) -> list[str]:
    """`llm-platform modelcar changed`: which specs of modelcars/ need publishing, as JSON (StaleSpecs)."""
    return ["llm-platform", "modelcar", "changed", "--modelcars", modelcars]


def tofu_argv(action: str, root: str) -> list[str]:
    """`llm-platform tofu plan|apply|output` on one environment root (envs/<env> under infra/); prints JSON.

    Cloud credentials reach tofu's providers through $GOOGLE_CREDENTIALS.
    """
    return ["llm-platform", "tofu", action, root]


def crds_sync_argv(lock: str, cache: str) -> list[str]:
    """`llm-platform crds sync`: fetch the CRDs pinned in gitops/crds.lock.yaml (sha256-verified) into a cache."""
    return ["llm-platform", "crds", "sync", "--lock", lock, "--cache", cache]


def lint_argv(gitops: str, crds: str) -> list[str]:
    """`llm-platform lint` on the GitOps tree with the synced CRDs: findings on stdout, non-zero exit on errors."""
    return ["llm-platform", "lint", gitops, "--crds", crds]


def bump_argv(
    model: str, ref: str, repo: str, *, hf_commit: str | None = None, push: bool = False
) -> list[str]:
    """`llm-platform bump`: point the GitOps tree and the model lock at a new digest and commit; prints the result.

    With push the command commits on the fetched tip of origin and pushes, handing $GIT_TOKEN to git
    through a credential helper (never in a URL or an argument).
    """
    argv = ["llm-platform", "bump", "--model", model, "--ref", ref, "--repo", repo, "--commit", "--json"]
    if hf_commit:
        argv += ["--hf-commit", hf_commit]
    if push:
        argv += ["--push", "origin"]
    return argv


def cluster_install_argv(env: str, kubeconfig: str, root: str) -> list[str]:
    """`llm-platform cluster install`: configure --check, Argo CD, the repository credential ($GIT_TOKEN),
    the secret values ($GOOGLE_OAUTH_ACCESS_TOKEN), the root, followed until Synced and Healthy."""
    return ["llm-platform", "cluster", "install", "--env", env, "--kubeconfig", kubeconfig, "--root", root]


def kind_test_argv(kubeconfig: str, root: str, timeout: str) -> list[str]:
    """`llm-platform cluster kind-test` on a throwaway cluster made by the caller (the k3s service): the
    checkout's gitops/ served from inside it, `install --env kind`, the GPU objects dry-run."""
    return [
        "llm-platform",
        "cluster",
        "kind-test",
        "--kubeconfig",
        kubeconfig,
        "--root",
        root,
        "--timeout",
        timeout,
    ]
