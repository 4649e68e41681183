"""The Dagger module's API: `LlmPlatform`, every pipeline step as a function, and `deploy` chaining them.

Design:
- The module is this file (the object API, the `dagger.mod` entry point in ci/pyproject.toml) and
  the `llm_platform.dagger_module` package it imports: `modelcar` (the `Modelcar` object that
  `build-modelcar` returns), `containers` (the toolbox and the per-step containers), `commands` (the
  `llm-platform` command lines they run) and `models` (the values passed between steps and
  returned). Only this file, `modelcar` and `containers` import dagger; the core never does.
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
  checkout; with `install`, the cluster steps run after lint. `kind-test` installs the tree on a k3s
  service of its own (the one privileged function).
- Functions with side effects (publish, tofu-apply, bump, deploy) and live reads (tofu-plan) are
  `cache="never"`, and their execs carry a cache buster so the layer cache cannot replay them.
- Core modules are imported inside the functions that use them: importing this module stays fast
  and does no I/O (the engine imports it just to register the functions).
"""

# No `from __future__ import annotations` here: dagger-io 0.21.11 reads the descriptions of object
# fields (Annotated[..., Doc(...)]) from the evaluated annotations, and a string annotation loses them.
from typing import Annotated

import anyio
import dagger
from dagger import DefaultPath, Doc, Ignore, check, function, object_type

from llm_platform.dagger_module.commands import tofu_argv
from llm_platform.dagger_module.containers import (
    apply_and_read_outputs,
    changed_modelcars,
    git_container,
    install_container,
    kind_test_container,
    lint_container,
    run_bumps,
    tofu_container,
)

# Modelcar is the one other object type. The SDK registers an object type when its class is defined,
# and the engine imports only this file: importing Modelcar here registers it, and `build_modelcar`
# returning it makes it reachable from the main object (`dagger call build-modelcar ... publish`).
from llm_platform.dagger_module.modelcar import Modelcar, modelcar_from_spec, publish_with_commit
from llm_platform.dagger_module.models import (
    BumpRequest,
    CloudAccess,
    DeploySummary,
    PublishedModelcar,
    RegistryAccess,
    Signing,
)

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
    Doc(
        "Short-lived OAuth access token (Workload Identity Federation), e.g. env://GOOGLE_OAUTH_ACCESS_TOKEN"
    ),
]


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
        max_layers: Annotated[
            int | None,
            Doc(
                "Most layers the image may have, the base image's included (default: the spec's "
                "image.max_layers, else 127); above it the smallest model files share layers"
            ),
        ] = None,
    ) -> Modelcar:
        """A modelcar image from a spec (validated now, built lazily); chain `publish`, `layout` or `digest`."""
        return await modelcar_from_spec(spec, source_dir, hf_token, max_layers)

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
        charts_mirror: Annotated[
            dagger.Directory | None,
            Doc(
                "A directory of chart packages and their INDEX.json to take the pinned charts from, instead "
                "of their chart repositories"
            ),
        ] = None,
    ) -> str:
        """Lint the Argo CD GitOps tree, every Helm chart rendered with the helm Argo CD uses; fails on any
        error finding, returns the report otherwise."""
        return await lint_container(gitops, charts_mirror).stdout()

    @function(cache="never")  # type: ignore[call-overload]  # dagger-io 0.21.11 overloads omit `cache`
    async def kind_test(
        self,
        gitops: Annotated[
            dagger.Directory,
            DefaultPath("/gitops"),
            Ignore(SOURCE_IGNORE),
            Doc("The GitOps tree to test, as it is in the checkout (uncommitted changes included)"),
        ],
        charts_mirror: Annotated[
            dagger.Directory | None,
            Doc("A directory of chart packages and their INDEX.json to render Argo CD's chart from"),
        ] = None,
        timeout: Annotated[str, Doc("How long to wait for every Application, e.g. 30m")] = "30m",
    ) -> str:
        """Install the tree on a throwaway k3s cluster (a privileged service of this run) exactly as
        `cluster install --env kind` does, served to Argo CD from inside the cluster, and wait until every
        Application is Synced and Healthy; returns the result JSON. The cluster goes with the run."""
        return await kind_test_container(gitops, charts_mirror, timeout).stdout()

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
        signing_key: Annotated[
            dagger.Secret | None,
            Doc(
                "Sign every published modelcar with this PEM private key (signature and attestations), e.g. "
                "env://SIGNING_KEY; bumps verify with the key modelcars/signing.yaml names"
            ),
        ] = None,
        signing_key_password: Annotated[
            dagger.Secret | None, Doc("The signing key's password, e.g. env://SIGNING_KEY_PASSWORD")
        ] = None,
        install: Annotated[
            bool,
            Doc(
                "After lint, install what sits below GitOps on the cluster tofu created (Argo CD, repository "
                "credential, secret values, root) and wait until every Application is Synced and Healthy"
            ),
        ] = False,
    ) -> str:
        """The pipeline in order: tofu apply, publish the modelcars whose spec or lock changed, lint, install
        (with --install), bump."""
        from llm_platform.bump.result import BumpResult

        cloud = CloudAccess(project_id=project_id, credentials=credentials, access_token=access_token)
        outputs = await apply_and_read_outputs(env, repo.directory("infra"), cloud)

        modelcars = repo.directory("modelcars")
        stale = await changed_modelcars(modelcars)

        signing = Signing(key=signing_key, password=signing_key_password) if signing_key else None
        # The modelcars are independent: publish them concurrently (the engine runs the execs in parallel).
        results: dict[str, PublishedModelcar] = {}

        async def publish_one(name: str) -> None:
            car = await modelcar_from_spec(modelcars.file(f"{name}.yaml"), None, hf_token)
            results[name] = await publish_with_commit(car, registry_username, registry_password, signing)

        async with anyio.create_task_group() as group:
            for name in stale.changed:
                group.start_soon(publish_one, name)
        published = [results[name] for name in stale.changed]

        report = await lint_container(repo.directory("gitops")).stdout()
        installed = ""
        if install:
            installed = await install_container(repo, outputs, cloud, git_token).stdout()

        bumps: list[BumpResult] = []
        if published:
            requests = [
                BumpRequest(model=car.name, ref=car.image, hf_commit=car.hf_commit) for car in published
            ]
            # The bump verifies each image first when the repository names a key (modelcars/signing.yaml).
            registry = RegistryAccess(username=registry_username, password=registry_password)
            bumps = await run_bumps(git_container(repo, git_token, registry), requests, push)

        summary = DeploySummary(
            env=env,
            tofu_outputs=outputs.model_dump(mode="json"),
            published=published,
            unchanged=stale.unchanged,
            lint=report.strip(),
            install=installed.strip(),
            bump_commits=[bump.summary_line() for bump in bumps],
            pushed=push and bool(published),
        )
        return summary.model_dump_json(indent=2)
