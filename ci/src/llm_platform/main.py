"""The Dagger module: `LlmPlatform`, every pipeline step as a function, and `deploy` chaining them.

Design (this is the only file of the package that imports `dagger`):
- Functions are thin wrappers over the same core the `llm-platform` command uses; no pipeline logic
  and no rule lives here. Validating a spec the caller hands over runs the core in the module's own
  process (`load_spec_text`, so a bad spec fails before any container starts); every other step runs
  the SAME `llm-platform` command inside a "toolbox" container, and its JSON result is read back
  through the core's own pydantic models (`modelcar changed`, `modelcar build|publish`, `tofu`,
  `bump`).
- The toolbox is built from images pinned by digest in `llm_platform.images`, with the package
  installed from this module's own source and `ci/uv.lock`; cache volumes keep Hugging Face
  downloads, uv wheels, apt archives and tofu providers warm between runs.
- Credentials are `dagger.Secret` only, handed to containers as the environment variables the core
  reads (HF_TOKEN, LLM_PLATFORM_REGISTRY_PASSWORD, GOOGLE_CREDENTIALS, GOOGLE_OAUTH_ACCESS_TOKEN,
  GIT_TOKEN): never on a command line, never in a file that is kept, never `plaintext()`.
- `build-modelcar` validates the spec at once and builds lazily: `layout`/`digest` write the OCI
  layout, `publish` streams the same image straight to the registry (no layout on disk first).
- `deploy` runs, in order: tofu apply (+ typed outputs), `modelcar changed` (the specs whose lock is
  missing or records another spec hash), their publishes (concurrently; each result carries the
  Hugging Face commit its weights came from), lint, then one bump per published model in one
  checkout. kind-test and the cluster steps (Argo CD bootstrap) belong to a later issue.
- Functions with side effects (publish, tofu-apply, bump, deploy) and live reads (tofu-plan) are
  `cache="never"`, and their execs carry a cache buster so the layer cache cannot replay them.
- Core modules are imported inside the functions that use them: importing this module stays fast
  and does no I/O (the engine imports it just to register the functions).
"""

# No `from __future__ import annotations` here: dagger-io 0.21.11 reads the descriptions of object
# fields (Annotated[..., Doc(...)]) from the evaluated annotations, and a string annotation loses them.
import dataclasses
import time
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, check, dag, field, function, object_type
from pydantic import BaseModel, Field

from llm_platform import images

if TYPE_CHECKING:
    from llm_platform.bump.result import BumpResult
    from llm_platform.modelcar.lock import StaleSpecs
    from llm_platform.modelcar.publish import PublishResult
    from llm_platform.tofu import PlatformOutputs

# Where things live inside the toolbox container.
WORK = "/work"
PACKAGE_SRC = "/opt/llm-platform/src"
VENV = "/opt/llm-platform/venv"
HF_HOME = "/root/.cache/huggingface"
TOFU_PLUGIN_CACHE = "/root/.cache/tofu-plugins"
LLM_PLATFORM_CACHE = "/root/.cache/llm-platform"
CRD_CACHE = f"{LLM_PLATFORM_CACHE}/crds"

# The environment variables the core reads credentials from (never flags). Tests pin them to the core's.
HF_TOKEN_ENV = "HF_TOKEN"
REGISTRY_PASSWORD_ENV = "LLM_PLATFORM_REGISTRY_PASSWORD"
GOOGLE_CREDENTIALS_ENV = "GOOGLE_CREDENTIALS"
GOOGLE_ACCESS_TOKEN_ENV = "GOOGLE_OAUTH_ACCESS_TOKEN"
GIT_TOKEN_ENV = "GIT_TOKEN"
# Set to a fresh value on side-effecting execs so the layer cache never replays them.
CACHE_BUSTER_ENV = "LLM_PLATFORM_CACHE_BUSTER"

# Never uploaded from the host: virtualenvs, caches, the generated SDK, tofu working state.
COMMON_IGNORE = [
    "**/.venv",
    "**/__pycache__",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "ci/sdk",
    "**/.terraform",
    "**/*.tfstate",
    "**/*.tfstate.backup",
    "/out",
]
SOURCE_IGNORE = [".git", *COMMON_IGNORE]
# bump and deploy commit to git: the only inputs that keep `.git`.
GIT_CHECKOUT_IGNORE = COMMON_IGNORE

# The files of ci/ that make up the installable package (nothing else of ci/ enters the toolbox).
PACKAGE_DEPENDENCY_FILES = ["pyproject.toml", "uv.lock"]
PACKAGE_FILES = [*PACKAGE_DEPENDENCY_FILES, "src/llm_platform/**"]


# --- command lines the toolbox runs: plain functions, so tests check them against the real CLI ---


def modelcar_build_argv(spec: str, output: str, source_dir: str | None = None) -> list[str]:
    """`llm-platform modelcar build`: spec -> OCI image layout; prints the build result as JSON.

    The Hugging Face token is read from $HF_TOKEN by the command.
    """
    argv = ["llm-platform", "modelcar", "build", spec, "--output", output, "--json"]
    if source_dir is not None:
        argv += ["--source-dir", source_dir]
    return argv


def modelcar_publish_argv(
    spec: str, address: str, source_dir: str | None = None, username: str | None = None
) -> list[str]:
    """`llm-platform modelcar publish`: spec -> registry (streamed, verified); prints the publish result as JSON.

    The password is read from $LLM_PLATFORM_REGISTRY_PASSWORD, the HF token from $HF_TOKEN.
    """
    argv = ["llm-platform", "modelcar", "publish", spec, "--to", address, "--json"]
    if source_dir is not None:
        argv += ["--source-dir", source_dir]
    if username:
        argv += ["--username", username]
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


# --- results ---


class PublishedModelcar(BaseModel):
    name: str
    image: str = Field(description="REPOSITORY@sha256:<hex> as pushed and verified")
    hf_commit: str = Field(description="Hugging Face commit the weights came from")


@dataclasses.dataclass(frozen=True)
class CloudAccess:
    """How tofu reaches the cloud: the project and one of a credentials JSON or a short-lived token."""

    project_id: str | None = None
    credentials: dagger.Secret | None = None
    access_token: dagger.Secret | None = None


class BumpRequest(BaseModel):
    model: str
    ref: str
    hf_commit: str | None = None


class DeploySummary(BaseModel):
    """What `deploy` did, step by step; returned as JSON."""

    env: str
    tofu_outputs: dict[str, Any]
    published: list[PublishedModelcar]
    unchanged: list[str] = Field(description="modelcars whose lock already matches their spec")
    lint: str = Field(description="the lint report (clean: lint fails the deploy otherwise)")
    bump_commits: list[str] = Field(description="per bump: the commit it made, or `unchanged`")
    pushed: bool


# --- adapters ---


def cache_buster() -> str:
    # The layer cache keys on an exec's inputs; a fresh value forces a side-effecting command to really run.
    return str(time.time_ns())


# --- containers ---


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


def lint_container(gitops: dagger.Directory) -> dagger.Container:
    """Lint from /work so findings name paths as in the repository (gitops/...)."""
    return (
        toolbox()
        .with_directory(f"{WORK}/gitops", gitops)
        .with_exec(crds_sync_argv("gitops/crds.lock.yaml", CRD_CACHE))
        .with_exec(lint_argv("gitops", CRD_CACHE))
    )


def git_container(repo: dagger.Directory, git_token: dagger.Secret | None) -> dagger.Container:
    """The toolbox with the checkout at /work/repo; the bump command hands $GIT_TOKEN to git itself."""
    ctr = toolbox().with_directory(f"{WORK}/repo", repo).with_workdir(f"{WORK}/repo")
    # The checkout belongs to another uid than the container's root: let git work in it.
    ctr = ctr.with_exec(["git", "config", "--global", "--add", "safe.directory", f"{WORK}/repo"])
    if git_token is not None:
        ctr = ctr.with_secret_variable(GIT_TOKEN_ENV, git_token)
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


# --- the Dagger API ---

# Arguments several functions share (tofu-plan, tofu-apply, deploy): one declaration, one doc.
InfraDir = Annotated[
    dagger.Directory, DefaultPath("/infra"), Ignore(SOURCE_IGNORE), Doc("The infra/ tree of the repository")
]
ProjectId = Annotated[
    str | None, Doc("GCP project id (sets TF_VAR_project_id; default: project.tfvars or the environment)")
]
Credentials = Annotated[
    dagger.Secret | None, Doc("Cloud credentials JSON for OpenTofu, e.g. env://GOOGLE_CREDENTIALS")
]
AccessToken = Annotated[
    dagger.Secret | None,
    Doc("Short-lived OAuth access token (Workload Identity Federation), e.g. env://GOOGLE_OAUTH_ACCESS_TOKEN"),
]


@object_type
class Modelcar:
    """A modelcar from one spec: an OCI image with the weights under /models; chain `publish`, `layout`, `digest`."""

    name: Annotated[str, Doc("Spec name (modelcars/<name>.yaml)")] = field()
    repository: Annotated[str, Doc("The spec's image.repository: the default publish target")] = field()
    # State carried between chained calls (serialised as object IDs), not exposed as API fields.
    spec: dagger.File
    source_dir: dagger.Directory | None
    hf_token: dagger.Secret | None
    tools: dagger.Container
    # "" when the spec pins a commit (a build is then a pure function of its inputs and may come from
    # the layer cache); otherwise a value fixed when the object was made, so a branch is re-resolved.
    freshness: str

    if TYPE_CHECKING:
        # object_type generates this __init__ (it makes a dataclass); mypy does not apply the SDK's
        # dataclass_transform, so the signature is spelled out for it. A test keeps the two in step.
        def __init__(
            self,
            *,
            name: str,
            repository: str,
            spec: dagger.File,
            source_dir: dagger.Directory | None,
            hf_token: dagger.Secret | None,
            tools: dagger.Container,
            freshness: str,
        ) -> None: ...

    def with_inputs(self) -> dagger.Container:
        """The toolbox with the spec, the local model files and the HF token in place."""
        ctr = self.tools.with_file(self.spec_path(), self.spec)
        if self.freshness:
            ctr = ctr.with_env_variable(CACHE_BUSTER_ENV, self.freshness)
        if self.source_dir is not None:
            ctr = ctr.with_directory(f"{WORK}/source", self.source_dir)
        if self.hf_token is not None:
            ctr = ctr.with_secret_variable(HF_TOKEN_ENV, self.hf_token)
        return ctr

    def spec_path(self) -> str:
        return f"{WORK}/modelcars/{self.name}.yaml"

    def source_path(self) -> str | None:
        return None if self.source_dir is None else f"{WORK}/source"

    def layout_path(self) -> str:
        return f"{WORK}/out/{self.name}"

    def build_exec(self) -> dagger.Container:
        """The build exec: writes the layout and prints the build result (BuildResult JSON)."""
        argv = modelcar_build_argv(self.spec_path(), self.layout_path(), self.source_path())
        return self.with_inputs().with_exec(argv)

    @function
    def layout(self) -> dagger.Directory:
        """The image as an OCI layout (oci-layout, index.json, blobs/sha256/...), e.g. to `export`."""
        return self.build_exec().directory(self.layout_path())

    @function
    async def digest(self) -> str:
        """The manifest digest (sha256:...) of the image; `publish` pushes exactly this manifest."""
        from llm_platform.modelcar.build import BuildResult

        return BuildResult.model_validate_json(await self.build_exec().stdout()).manifest_digest

    @function(cache="never")  # type: ignore[call-overload]  # dagger-io 0.21.11 overloads omit `cache`
    async def publish(
        self,
        address: Annotated[
            str | None, Doc("Target REGISTRY/REPOSITORY[:TAG] (default: the spec's image.repository)")
        ] = None,
        username: Annotated[str | None, Doc("Registry user, e.g. _json_key or oauth2accesstoken")] = None,
        password: Annotated[
            dagger.Secret | None, Doc("Registry password or token, e.g. env://REGISTRY_PASSWORD")
        ] = None,
    ) -> str:
        """Push the image (blobs the registry has are skipped) and return the verified REPOSITORY@sha256:..."""
        return (await publish_modelcar(self, address, username, password)).reference


@object_type
class LlmPlatform:
    """The llm-platform delivery pipeline: modelcars, OpenTofu, GitOps lint and digest bumps."""

    @function
    async def build_modelcar(
        self,
        spec: Annotated[
            dagger.File, Doc("A modelcar spec, e.g. modelcars/minilm-demo.yaml (name = file stem)")
        ],
        source_dir: Annotated[
            dagger.Directory | None,
            Doc("Directory holding the model files, used instead of downloading them from Hugging Face"),
        ] = None,
        hf_token: Annotated[
            dagger.Secret | None, Doc("Hugging Face token for gated or private repos, e.g. env://HF_TOKEN")
        ] = None,
    ) -> Modelcar:
        """A modelcar image from a spec (validated now, built lazily); chain `publish`, `layout` or `digest`."""
        return await modelcar_from_spec(spec, source_dir, hf_token)

    @function(cache="never")  # type: ignore[call-overload]  # dagger-io 0.21.11 overloads omit `cache`
    async def tofu_plan(
        self,
        env: Annotated[str, Doc("Environment to plan: the OpenTofu root infra/envs/<env>")],
        infra: InfraDir,
        project_id: ProjectId = None,
        credentials: Credentials = None,
        access_token: AccessToken = None,
    ) -> str:
        """Plan one environment without changing it; returns the plan summary as JSON."""
        from llm_platform.tofu import PlanResult
        from llm_platform.tofu.environments import environment_root

        cloud = CloudAccess(project_id=project_id, credentials=credentials, access_token=access_token)
        ctr = tofu_container(infra, cloud).with_exec(tofu_argv("plan", environment_root(env)))
        return PlanResult.model_validate_json(await ctr.stdout()).model_dump_json(indent=2)

    @function(cache="never")  # type: ignore[call-overload]  # dagger-io 0.21.11 overloads omit `cache`
    async def tofu_apply(
        self,
        env: Annotated[str, Doc("Environment to apply: the OpenTofu root infra/envs/<env>")],
        infra: InfraDir,
        project_id: ProjectId = None,
        credentials: Credentials = None,
        access_token: AccessToken = None,
    ) -> str:
        """Apply one environment (refusing to destroy protected resources); returns its typed outputs as JSON."""
        cloud = CloudAccess(project_id=project_id, credentials=credentials, access_token=access_token)
        return (await apply_and_read_outputs(env, infra, cloud)).model_dump_json(indent=2)

    @function
    @check
    async def lint(
        self,
        gitops: Annotated[
            dagger.Directory, DefaultPath("/gitops"), Ignore(SOURCE_IGNORE), Doc("The GitOps tree to lint")
        ],
    ) -> str:
        """Lint the Argo CD GitOps tree; fails on any error finding, returns the report otherwise."""
        return await lint_container(gitops).stdout()

    @function(cache="never")  # type: ignore[call-overload]  # dagger-io 0.21.11 overloads omit `cache`
    async def bump(
        self,
        model: Annotated[str, Doc("Modelcar name: modelcars/<model>.yaml")],
        ref: Annotated[str, Doc("The new image, REPOSITORY@sha256:<64 hex>")],
        repo: Annotated[
            dagger.Directory,
            DefaultPath("/"),
            Ignore(GIT_CHECKOUT_IGNORE),
            Doc("The git checkout to commit in (.git included)"),
        ],
        hf_commit: Annotated[
            str | None,
            Doc("Hugging Face commit the image was built from (needed when the spec tracks a branch)"),
        ] = None,
        git_token: Annotated[
            dagger.Secret | None,
            Doc("Token allowed to push to the repository's origin, e.g. env://GIT_TOKEN"),
        ] = None,
        push: Annotated[bool, Doc("Commit on the fetched tip of origin and push")] = False,
    ) -> str:
        """Point the GitOps tree and the model lock at a new digest and commit (and push); returns the commit
        (`unchanged` when the tree already holds the image)."""
        request = BumpRequest(model=model, ref=ref, hf_commit=hf_commit)
        [result] = await run_bumps(git_container(repo, git_token), [request], push)
        return result.summary_line()

    @function(cache="never")  # type: ignore[call-overload]  # dagger-io 0.21.11 overloads omit `cache`
    async def deploy(
        self,
        env: Annotated[str, Doc("Environment to deploy: the OpenTofu root infra/envs/<env>")],
        repo: Annotated[
            dagger.Directory,
            DefaultPath("/"),
            Ignore(GIT_CHECKOUT_IGNORE),
            Doc("The repository checkout (.git included): infra/, modelcars/, gitops/"),
        ],
        project_id: ProjectId = None,
        credentials: Credentials = None,
        access_token: AccessToken = None,
        hf_token: Annotated[dagger.Secret | None, Doc("Hugging Face token, e.g. env://HF_TOKEN")] = None,
        registry_username: Annotated[
            str | None, Doc("Registry user for the modelcar pushes, e.g. _json_key")
        ] = None,
        registry_password: Annotated[
            dagger.Secret | None, Doc("Registry password, e.g. env://REGISTRY_PASSWORD")
        ] = None,
        git_token: Annotated[
            dagger.Secret | None, Doc("Token to push the bump commits, e.g. env://GIT_TOKEN")
        ] = None,
        push: Annotated[bool, Doc("Push the bump commits to origin")] = False,
    ) -> str:
        """The pipeline in order: tofu apply, publish the modelcars whose spec or lock changed, lint, bump."""
        from llm_platform.bump.result import BumpResult

        cloud = CloudAccess(project_id=project_id, credentials=credentials, access_token=access_token)
        outputs = await apply_and_read_outputs(env, repo.directory("infra"), cloud)

        modelcars = repo.directory("modelcars")
        stale = await changed_modelcars(modelcars)

        # The modelcars are independent: publish them concurrently (the engine runs the execs in parallel).
        results: dict[str, PublishedModelcar] = {}

        async def publish_one(name: str) -> None:
            car = await modelcar_from_spec(modelcars.file(f"{name}.yaml"), None, hf_token)
            results[name] = await publish_with_commit(car, registry_username, registry_password)

        async with anyio.create_task_group() as group:
            for name in stale.changed:
                group.start_soon(publish_one, name)
        published = [results[name] for name in stale.changed]

        report = await lint_container(repo.directory("gitops")).stdout()

        bumps: list[BumpResult] = []
        if published:
            requests = [
                BumpRequest(model=car.name, ref=car.image, hf_commit=car.hf_commit) for car in published
            ]
            bumps = await run_bumps(git_container(repo, git_token), requests, push)

        summary = DeploySummary(
            env=env,
            tofu_outputs=outputs.model_dump(mode="json"),
            published=published,
            unchanged=stale.unchanged,
            lint=report.strip(),
            bump_commits=[bump.summary_line() for bump in bumps],
            pushed=push and bool(published),
        )
        return summary.model_dump_json(indent=2)


# --- steps shared by the functions above and by deploy ---


async def modelcar_from_spec(
    spec: dagger.File, source_dir: dagger.Directory | None, hf_token: dagger.Secret | None
) -> Modelcar:
    from llm_platform.modelcar.spec import load_spec_text

    # Named as in the repository, so errors read `modelcars/<file>:<line>: <field>: ...`.
    source_name = f"modelcars/{PurePosixPath(await spec.name()).name}"
    parsed = load_spec_text(await spec.contents(), source_name=source_name)
    return Modelcar(
        name=parsed.name,
        repository=parsed.image.repository,
        spec=spec,
        source_dir=source_dir,
        hf_token=hf_token,
        tools=toolbox(),
        freshness="" if parsed.huggingface.pins_commit else cache_buster(),
    )


async def publish_modelcar(
    car: Modelcar, address: str | None, username: str | None, password: dagger.Secret | None
) -> "PublishResult":
    """Run the publish in the toolbox; its typed result (reference, digest, tags, bytes uploaded, ...)."""
    from llm_platform.modelcar.publish import PublishResult

    if password is not None and not username:
        from llm_platform.errors import InputError

        raise InputError("publish: --password needs --username (e.g. oauth2accesstoken or _json_key)")
    ctr = car.with_inputs()
    if password is not None:
        ctr = ctr.with_secret_variable(REGISTRY_PASSWORD_ENV, password)
    argv = modelcar_publish_argv(car.spec_path(), address or car.repository, car.source_path(), username)
    out = await ctr.with_env_variable(CACHE_BUSTER_ENV, cache_buster()).with_exec(argv).stdout()
    return PublishResult.model_validate_json(out)


async def publish_with_commit(
    car: Modelcar, username: str | None, password: dagger.Secret | None
) -> PublishedModelcar:
    """Publish to the spec's repository; the result names the image and the HF commit it was built from."""
    result = await publish_modelcar(car, None, username, password)
    return PublishedModelcar(name=car.name, image=result.reference, hf_commit=result.hf_commit)
