"""How the module's functions compose their containers, checked with a recording stand-in for the
Dagger API (there is no engine on this machine, so no container here ever runs).

The recorder answers the few leaf calls the functions await (stdout, entries, contents) with canned
command results and keeps every container's chain of operations, so the tests can assert what the
engine would be asked to do: which command runs in which order, where each secret goes (only into
environment variables), which execs are cache-busted, what reaches the toolbox. The commands themselves
are run for real in test_dagger_toolbox.py; what the engine does with the chains is not tested here.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from pydantic import ValidationError

from llm_platform import images
from llm_platform.bump.result import BumpResult
from llm_platform.dagger_module import commands, containers
from llm_platform.errors import InputError
from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV
from llm_platform.main import LlmPlatform
from llm_platform.modelcar.lock import ModelLock, render_lock
from llm_platform.modelcar.spec import load_spec, spec_sha256
from llm_platform.tofu import PlanResult, PlanSummary, PlatformOutputs, ServiceAccounts, TofuBinary

Op = tuple[str, tuple[Any, ...], dict[str, Any]]
COMMIT = "c" * 40
CLI = str(Path(sys.executable).parent / "llm-platform")
OUTPUTS = PlatformOutputs(
    project_id="my-project",
    region="us-east4",
    cluster_name="llm",
    cluster_location="us-east4",
    cluster_endpoint="10.0.0.2",
    cluster_ca_certificate=base64.b64encode(
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    ).decode(),
    registry_url="us-east4-docker.pkg.dev/my-project/modelcars",
    workload_identity_pool="my-project.svc.id.goog",
    service_accounts=ServiceAccounts(
        argocd="argocd-sa@my-project.iam.gserviceaccount.com",
        external_secrets="eso-sa@my-project.iam.gserviceaccount.com",
        pusher="pusher-sa@my-project.iam.gserviceaccount.com",
        nodes="nodes-sa@my-project.iam.gserviceaccount.com",
    ),
)
PLAN = PlanResult(
    root="envs/dev",
    binary=TofuBinary(path="/usr/local/bin/tofu", product="OpenTofu", version="1.9.1"),
    changes=True,
    summary=PlanSummary(add=1),
)


class Secret:
    """A secret handle: what a function receives for `--x env://VAR`; its value never exists here."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Secret({self.name})"


class Recorder:
    def __init__(self, answer: Callable[[list[str]], str]) -> None:
        self.answer = answer
        self.evaluated: list[tuple[Op, ...]] = []


class Container:
    def __init__(self, recorder: Recorder, ops: tuple[Op, ...] = ()) -> None:
        self.recorder, self.ops = recorder, ops

    def __getattr__(self, name: str) -> Callable[..., Container]:
        if not (name.startswith(("with_", "without_")) or name == "from_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: Container(self.recorder, (*self.ops, (name, args, kwargs)))

    def execs(self) -> list[list[str]]:
        return [list(args[0]) for name, args, _ in self.ops if name == "with_exec"]

    async def stdout(self) -> str:
        self.recorder.evaluated.append(self.ops)
        return self.recorder.answer(self.execs()[-1])

    def directory(self, path: str) -> tuple[str, Container, str]:
        return ("directory-of", self, path)

    def as_service(self, **kwargs: Any) -> tuple[str, tuple[Op, ...], dict[str, Any]]:
        return ("service", self.ops, kwargs)

    def file(self, path: str) -> tuple[str, Container, str]:
        return ("file-of", self, path)


class HostFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def name(self) -> str:
        return self.path.name

    async def contents(self) -> str:
        return self.path.read_text()


class HostDirectory:
    """A directory argument backed by a real directory of the repository."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def directory(self, path: str) -> HostDirectory:
        return HostDirectory(self.path / path)

    def file(self, path: str) -> HostFile:
        return HostFile(self.path / path)

    async def entries(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir())


class Dag:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def container(self) -> Container:
        return Container(self.recorder)

    def cache_volume(self, key: str) -> tuple[str, str]:
        return ("cache", key)

    def current_module(self) -> Dag:
        return self

    def source(self) -> str:
        return "module-source"


def answers(work: Path) -> Callable[[list[str]], str]:
    """Stdout of the toolbox commands: `modelcar changed` runs for real on `work` (the toolbox's /work);
    the others answer with results built from the core's own models (their real output is tested in
    test_dagger_toolbox.py and the core's tests)."""

    def answer(argv: list[str]) -> str:
        if argv[:3] == ["llm-platform", "modelcar", "changed"]:
            proc = subprocess.run([CLI, *argv[1:]], cwd=work, capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr
            return proc.stdout
        if argv[:3] == ["llm-platform", "tofu", "output"]:
            return OUTPUTS.model_dump_json(indent=2)
        if argv[:3] == ["llm-platform", "tofu", "plan"]:
            return PLAN.model_dump_json(indent=2)
        if argv[:3] == ["llm-platform", "modelcar", "publish"]:
            name = Path(argv[3]).stem
            return json.dumps(
                {
                    "reference": f"{argv[5]}@sha256:{'d' * 64}",
                    "digest": "sha256:" + "d" * 64,
                    "hf_commit": COMMIT,
                    "tags": [f"{name}-{COMMIT[:12]}"],
                    "bytes_uploaded": 1,
                    "blobs_uploaded": 1,
                    "blobs_present": 0,
                    "blobs_mounted": 0,
                    "layers_known_without_reading": 0,
                    "previous_images": [],
                    "seconds": 1.0,
                }
            )
        if argv[:2] == ["llm-platform", "lint"]:
            return "lint: clean\n"
        if argv[:3] == ["llm-platform", "cluster", "install"]:
            return '{"step": "root", "changed": false}\n'
        if argv[:3] == ["llm-platform", "cluster", "kind-test"]:
            return '{"step": "kind-test", "passed": true}\n'

        if argv[:2] == ["llm-platform", "bump"]:
            model, ref = argv[argv.index("--model") + 1], argv[argv.index("--ref") + 1]
            commit = f"{'e' * 39}{len(argv) % 10}"
            return BumpResult(model=model, image=ref, status="pushed", commit=commit).model_dump_json()
        raise AssertionError(f"unexpected evaluation of {argv}")

    return answer


@pytest.fixture
def work(tmp_path: Path, repo_root: Path) -> Path:
    """The repository's modelcars/ with a lock matching minilm-demo: the other specs are the changed ones."""
    shutil.copytree(repo_root / "modelcars", tmp_path / "modelcars")
    for lock in (tmp_path / "modelcars").glob("*.lock.json"):
        lock.unlink()
    sha = spec_sha256(load_spec(tmp_path / "modelcars" / "minilm-demo.yaml"))
    lock = ModelLock(spec_sha256=sha, hf_commit=COMMIT, image=f"registry.example/m@sha256:{'1' * 64}")
    (tmp_path / "modelcars" / "minilm-demo.lock.json").write_bytes(render_lock(lock))
    return tmp_path


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, work: Path) -> Recorder:
    recorder = Recorder(answers(work))
    monkeypatch.setattr(containers, "dag", Dag(recorder))
    return recorder


def _execs(chain: tuple[Op, ...]) -> list[list[str]]:
    return [list(args[0]) for name, args, _ in chain if name == "with_exec"]


def _secret_env(chain: tuple[Op, ...]) -> dict[str, str]:
    return {args[0]: args[1].name for name, args, _ in chain if name == "with_secret_variable"}


def _assert_secrets_only_in_env(chain: tuple[Op, ...]) -> None:
    for name, args, kwargs in chain:
        values = [*args, *kwargs.values()]
        if name == "with_secret_variable":
            assert isinstance(values[1], Secret) and len(values) == 2
            continue
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        assert not any(isinstance(v, Secret) for v in flat), f"a secret reached {name}{args}"


def _busted(chain: tuple[Op, ...]) -> bool:
    return any(
        name == "with_env_variable" and args[0] == containers.CACHE_BUSTER_ENV for name, args, _ in chain
    )


def test_deploy_runs_the_pipeline_in_order_with_secrets_only_in_the_environment(
    recorder: Recorder, repo_root: Path, work: Path
) -> None:
    specs = sorted(p.stem for p in (repo_root / "modelcars").glob("*.yaml"))
    expected = [name for name in specs if name != "minilm-demo"]  # minilm-demo's lock matches
    assert expected
    repo = HostDirectory(repo_root)
    secrets = {name: Secret(name) for name in ("ACCESS", "HF", "REGISTRY", "GIT")}

    summary = json.loads(
        anyio.run(
            lambda: LlmPlatform().deploy(
                "dev",
                repo,
                project_id="my-project",
                access_token=secrets["ACCESS"],
                hf_token=secrets["HF"],
                registry_username="oauth2accesstoken",
                registry_password=secrets["REGISTRY"],
                git_token=secrets["GIT"],
                push=True,
            )
        )
    )

    chains = recorder.evaluated
    for chain in chains:
        _assert_secrets_only_in_env(chain)
        assert chain[0] == ("from_", (images.PYTHON,), {}), "every step runs in the pinned toolbox"
    kinds = [_execs(chain)[-1][:3] for chain in chains]
    # 1. tofu apply then output, in one container (a local state file would survive), with the token.
    assert _execs(chains[0])[-2:] == [
        commands.tofu_argv("apply", "envs/dev"),
        commands.tofu_argv("output", "envs/dev"),
    ]
    assert _secret_env(chains[0]) == {"GOOGLE_OAUTH_ACCESS_TOKEN": "ACCESS"} and _busted(chains[0])
    assert ("with_env_variable", ("TF_VAR_project_id", "my-project"), {}) in chains[0]
    # No inline programs: every step is an `llm-platform` command.
    assert all(argv[0] in ("llm-platform", "sh", "uv", "git") for chain in chains for argv in _execs(chain))
    # 2. which modelcars changed: the CLI on modelcars/ at its repository path, no secret, cacheable.
    [changed] = [
        c for c, k in zip(chains, kinds, strict=True) if k == ["llm-platform", "modelcar", "changed"]
    ]
    assert _execs(changed)[-1] == commands.modelcar_changed_argv("modelcars")
    assert ("with_workdir", (containers.WORK,), {}) in changed
    assert [args[0] for name, args, _ in changed if name == "with_directory"][
        -1
    ] == f"{containers.WORK}/modelcars"
    assert _secret_env(changed) == {} and not _busted(changed)
    # 3. one fresh publish per changed modelcar (and only those), HF token and password in the env.
    publishes = [
        c for c, k in zip(chains, kinds, strict=True) if k[:3] == ["llm-platform", "modelcar", "publish"]
    ]
    assert sorted(Path(_execs(c)[-1][3]).stem for c in publishes) == expected
    assert kinds.index(["llm-platform", "modelcar", "changed"]) < min(chains.index(c) for c in publishes)
    for chain in publishes:
        assert _busted(chain)
        assert _secret_env(chain) == {"HF_TOKEN": "HF", "LLM_PLATFORM_REGISTRY_PASSWORD": "REGISTRY"}
        assert _execs(chain)[-1][-2:] == ["--username", "oauth2accesstoken"]
    # 4. lint after the publishes, 5. the bumps last, one checkout, in order, each with the HF commit
    # its publish reported.
    assert kinds.index(["llm-platform", "lint", "gitops"]) > max(chains.index(c) for c in publishes)
    bumps = [c for c, k in zip(chains, kinds, strict=True) if k[:2] == ["llm-platform", "bump"]]
    assert bumps and all(chain[: len(bumps[0])] == bumps[0] for chain in bumps)  # one growing chain
    final = _execs(bumps[-1])
    bump_execs = [argv for argv in final if argv[:2] == ["llm-platform", "bump"]]
    assert [argv[argv.index("--model") + 1] for argv in bump_execs] == expected
    assert all(
        argv[argv.index("--hf-commit") + 1] == COMMIT and argv[-2:] == ["--push", "origin"]
        for argv in bump_execs
    )
    # The registry credentials too: the bump verifies each image when the repository names a key.
    assert _secret_env(bumps[-1]) == {"GIT_TOKEN": "GIT", "LLM_PLATFORM_REGISTRY_PASSWORD": "REGISTRY"}
    assert ("with_env_variable", ("LLM_PLATFORM_REGISTRY_USERNAME", "oauth2accesstoken"), {}) in bumps[-1]
    assert _busted(bumps[-1])
    assert kinds.index(["llm-platform", "bump", "--model"]) > kinds.index(["llm-platform", "lint", "gitops"])

    assert summary["env"] == "dev" and summary["tofu_outputs"] == OUTPUTS.model_dump(mode="json")
    assert [p["name"] for p in summary["published"]] == expected and summary["unchanged"] == ["minilm-demo"]
    assert all(p["hf_commit"] == COMMIT and "@sha256:" in p["image"] for p in summary["published"])
    assert summary["bump_commits"] == [f"{'e' * 39}{len(argv) % 10}" for argv in bump_execs]
    assert summary["pushed"] is True
    assert summary["lint"] == "lint: clean"


def test_deploy_with_a_signing_key_signs_every_publish_through_the_environment_only(
    recorder: Recorder, repo_root: Path
) -> None:
    key, password = Secret("SIGNING"), Secret("SIGNING_PASSWORD")
    anyio.run(
        lambda: LlmPlatform().deploy(
            "dev",
            HostDirectory(repo_root),
            project_id="my-project",
            access_token=Secret("ACCESS"),
            registry_username="oauth2accesstoken",
            registry_password=Secret("REGISTRY"),
            signing_key=key,
            signing_key_password=password,
        )
    )
    publishes = [
        c for c in recorder.evaluated if _execs(c)[-1][:3] == ["llm-platform", "modelcar", "publish"]
    ]
    assert publishes
    for chain in publishes:
        _assert_secrets_only_in_env(chain)
        env = _secret_env(chain)
        assert env["LLM_PLATFORM_SIGNING_KEY"] == "SIGNING"
        assert env["LLM_PLATFORM_SIGNING_KEY_PASSWORD"] == "SIGNING_PASSWORD"
    recorder.evaluated.clear()
    anyio.run(
        lambda: LlmPlatform().deploy(
            "dev", HostDirectory(repo_root), project_id="p", access_token=Secret("A")
        )
    )
    unsigned = [c for c in recorder.evaluated if _execs(c)[-1][:3] == ["llm-platform", "modelcar", "publish"]]
    assert unsigned and all("LLM_PLATFORM_SIGNING_KEY" not in _secret_env(c) for c in unsigned)


def test_lint_syncs_the_pinned_crds_then_lints_the_tree_at_its_repository_path(
    recorder: Recorder, repo_root: Path
) -> None:
    report = anyio.run(LlmPlatform().lint, HostDirectory(repo_root / "gitops"))
    assert report == "lint: clean\n"
    [chain] = recorder.evaluated
    assert _execs(chain)[-2:] == [
        commands.crds_sync_argv("gitops/crds.lock.yaml", containers.CRD_CACHE),
        commands.lint_argv("gitops", containers.CRD_CACHE),
    ]
    assert ("with_workdir", (containers.WORK,), {}) in chain
    assert _secret_env(chain) == {} and not _busted(chain)  # a pure check: cacheable


def test_deploy_with_install_installs_on_the_cluster_tofu_created_after_lint_and_before_bump(
    recorder: Recorder, repo_root: Path
) -> None:
    """--install: `cluster install --env gke` with a kubeconfig built from tofu's outputs, whose exec plugin
    prints the token from the environment (never in the kubeconfig, a file or an argument), after lint,
    before the bumps."""
    access, git = Secret("ACCESS"), Secret("GIT")
    summary = json.loads(
        anyio.run(
            lambda: LlmPlatform().deploy(
                "dev",
                HostDirectory(repo_root),
                project_id="my-project",
                access_token=access,
                hf_token=Secret("HF"),
                registry_username="oauth2accesstoken",
                registry_password=Secret("REG"),
                git_token=git,
                push=True,
                install=True,
            )
        )
    )
    kinds = [_execs(chain)[-1][:3] for chain in recorder.evaluated]
    assert kinds.index(["llm-platform", "cluster", "install"]) > kinds.index(
        ["llm-platform", "lint", "gitops"]
    )
    assert kinds.index(["llm-platform", "cluster", "install"]) < kinds.index(
        ["llm-platform", "bump", "--model"]
    )
    [chain] = [c for c in recorder.evaluated if _execs(c)[-1][:3] == ["llm-platform", "cluster", "install"]]
    _assert_secrets_only_in_env(chain)
    assert _execs(chain)[-1] == commands.cluster_install_argv(
        "gke", containers.KUBECONFIG, f"{containers.WORK}/repo"
    )
    [(path, text)] = [args[:2] for name, args, _ in chain if name == "with_new_file"]
    kubeconfig = yaml.safe_load(text)
    assert path == containers.KUBECONFIG
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{OUTPUTS.cluster_endpoint}"
    assert (
        kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] == OUTPUTS.cluster_ca_certificate
    )
    plugin = kubeconfig["users"][0]["user"]["exec"]
    assert plugin["command"] == "sh" and '"$GOOGLE_OAUTH_ACCESS_TOKEN"' in plugin["args"][1]
    assert _secret_env(chain) == {"GOOGLE_OAUTH_ACCESS_TOKEN": "ACCESS", "GIT_TOKEN": "GIT"} and _busted(
        chain
    )
    assert summary["install"] == '{"step": "root", "changed": false}'
    with pytest.raises(InputError, match="--access-token"):
        anyio.run(
            lambda: LlmPlatform().deploy(
                "dev", HostDirectory(repo_root), project_id="p", credentials=Secret("C"), install=True
            )
        )


def test_kind_test_runs_the_cli_s_kind_test_against_a_fresh_privileged_k3s_service(
    recorder: Recorder, repo_root: Path
) -> None:
    """One k3s service per run (pinned image, privileged, the cgroup v2 nesting fix as its entrypoint), whose
    kubeconfig reaches the toolbox through a cache volume named for that run alone; then the same
    `cluster kind-test` a host runs, with --kubeconfig (a cluster it must not delete)."""
    out = anyio.run(lambda: LlmPlatform().kind_test(HostDirectory(repo_root / "gitops"), timeout="20m"))
    assert json.loads(out) == {"step": "kind-test", "passed": True}
    anyio.run(lambda: LlmPlatform().kind_test(HostDirectory(repo_root / "gitops")))
    first, second = recorder.evaluated
    kubeconfig = f"{containers.WORK}/k3s.yaml"
    assert _execs(first)[-1] == commands.kind_test_argv(kubeconfig, f"{containers.WORK}/repo", "20m")
    assert _execs(first)[-1][3:5] == ["--kubeconfig", kubeconfig] and _busted(first)
    assert "kubectl --kubeconfig" in _execs(first)[-2][2]  # waits for a Ready node first
    [(alias, service)] = [args for name, args, _ in first if name == "with_service_binding"]
    assert alias == containers.K3S_ALIAS and service[0] == "service"
    _, ops, kwargs = service
    assert ("from_", (images.K3S,), {}) in ops
    assert kwargs["insecure_root_capabilities"] is True and kwargs["use_entrypoint"] is True
    assert "--tls-san k3s" in kwargs["args"][2]
    assert ("with_entrypoint", (["/usr/local/bin/entrypoint.sh"],), {}) in ops

    def config_volume(chain: tuple[Op, ...]) -> Any:
        return next(args[1] for name, args, _ in chain if name == "with_mounted_cache" and args[0] == "/k3s")

    assert config_volume(first) != config_volume(second)  # never an earlier server's kubeconfig
    assert ("with_mounted_cache", (containers.K3S_CONFIG, config_volume(first)), {}) in ops
    assert _secret_env(first) == {}


def test_lint_takes_the_charts_from_a_mirror_directory_when_given_one(
    recorder: Recorder, repo_root: Path
) -> None:
    """With `--charts-mirror DIR`, the packages are mounted and named by $LLM_PLATFORM_CHARTS_MIRROR, which
    both `crds sync` (the CRDs the charts install) and `lint` (the renders) read; without it neither is set."""
    mirror = HostDirectory(repo_root / "gitops")  # any directory: only where it lands is checked here
    anyio.run(lambda: LlmPlatform().lint(HostDirectory(repo_root / "gitops"), charts_mirror=mirror))
    [chain] = recorder.evaluated
    mounted = [
        args for name, args, _ in chain if name == "with_directory" and args[0] == containers.CHARTS_MIRROR
    ]
    assert mounted and mounted[0][1] is mirror
    env = [args for name, args, _ in chain if name == "with_env_variable" and args[0] == CHARTS_MIRROR_ENV]
    assert env == [(CHARTS_MIRROR_ENV, containers.CHARTS_MIRROR)]
    names = [name for name, _, _ in chain]
    assert names.index("with_env_variable", names.index("with_directory")) < names.index(
        "with_exec", len(names) - 3
    )
    recorder.evaluated.clear()
    anyio.run(LlmPlatform().lint, HostDirectory(repo_root / "gitops"))
    [plain] = recorder.evaluated
    assert not [a for n, a, _ in plain if n == "with_env_variable" and a[0] == CHARTS_MIRROR_ENV]


def test_tofu_plan_reads_live_state_so_it_is_never_replayed(recorder: Recorder, repo_root: Path) -> None:
    token = Secret("ACCESS")
    plan = anyio.run(
        lambda: LlmPlatform().tofu_plan("dev", HostDirectory(repo_root / "infra"), access_token=token)
    )
    assert PlanResult.model_validate_json(plan) == PLAN
    [chain] = recorder.evaluated
    assert _execs(chain)[-1] == commands.tofu_argv("plan", "envs/dev") and _busted(chain)
    _assert_secrets_only_in_env(chain)
    with pytest.raises(InputError, match="--env"):
        anyio.run(lambda: LlmPlatform().tofu_plan("../prod", HostDirectory(repo_root / "infra")))


def test_a_bad_spec_fails_before_any_container_is_evaluated(recorder: Recorder, tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("huggingface:\n  repo: not a repo\n")
    with pytest.raises(InputError, match=r"^modelcars/broken\.yaml:\d+: "):
        anyio.run(LlmPlatform().build_modelcar, HostFile(spec))
    assert recorder.evaluated == []


def test_publish_without_a_user_for_the_password_is_refused(recorder: Recorder, repo_root: Path) -> None:
    car = anyio.run(LlmPlatform().build_modelcar, HostFile(repo_root / "modelcars" / "minilm-demo.yaml"))
    assert (car.name, car.repository, car.freshness) == (
        "minilm-demo",
        "us-central1-docker.pkg.dev/llm-platform-example/modelcars/minilm-demo",
        "",
    )
    with pytest.raises(InputError, match="--username"):
        anyio.run(lambda: car.publish(password=Secret("REGISTRY")))
    assert recorder.evaluated == []


def test_the_toolbox_is_pinned_installs_from_the_lock_and_keeps_its_caches(recorder: Recorder) -> None:
    chain = containers.toolbox().ops
    pulls = [args[0] for name, args, _ in chain if name == "from_"]
    files = [args for name, args, _ in chain if name == "with_file"]
    assert pulls == [images.PYTHON]
    # The tools come out of the other pinned images, binary by binary.
    assert [path for path, _ in files] == [
        "/usr/local/bin/uv",
        "/usr/local/bin/tofu",
        "/usr/local/bin/kubectl",
    ]
    assert [source[1].ops[0][1][0] for _, source in files] == [
        images.UV,
        images.OPENTOFU,
        images.KUBECTL,
    ]
    caches = {args[0]: args[1][1] for name, args, _ in chain if name == "with_mounted_cache"}
    assert caches == {
        "/var/cache/apt/archives": "llm-platform-apt-archives",
        "/var/lib/apt/lists": "llm-platform-apt-lists",
        "/root/.cache/uv": "llm-platform-uv",
        containers.HF_HOME: "llm-platform-huggingface",
        containers.LLM_PLATFORM_CACHE: "llm-platform-cache",
        containers.TOFU_PLUGIN_CACHE: "llm-platform-tofu-plugins",
    }
    # The package comes from the module's own source, dependencies first, exactly as ci/uv.lock pins them.
    sources = [(args[1], kwargs.get("include")) for name, args, kwargs in chain if name == "with_directory"]
    assert sources == [
        ("module-source", ["pyproject.toml", "uv.lock"]),
        ("module-source", ["pyproject.toml", "uv.lock", "src/llm_platform/**"]),
    ]
    syncs = [argv for argv in _execs(chain) if argv[:2] == ["uv", "sync"]]
    assert syncs and all("--frozen" in argv and "--no-dev" in argv for argv in syncs)
    assert _execs(chain)[0][-1].endswith(" ".join(images.TOOLBOX_APT_PACKAGES))


def test_builds_of_branches_are_never_replayed_but_pinned_commits_are(
    recorder: Recorder, repo_root: Path, tmp_path: Path
) -> None:
    pinned = repo_root / "modelcars" / "minilm-demo.yaml"
    assert load_spec(pinned).huggingface.pins_commit
    branch = tmp_path / "minilm-demo.yaml"
    branch.write_text(pinned.read_text().replace(load_spec(pinned).huggingface.revision, "main"))

    def freshness(spec: Path) -> str:
        car = anyio.run(LlmPlatform().build_modelcar, HostFile(spec))
        ops = car.with_inputs().ops
        assert _busted(ops) == bool(car.freshness)
        return str(car.freshness)

    assert freshness(pinned) == ""
    first = freshness(branch)
    assert first and first != freshness(branch)
    assert recorder.evaluated == []


def test_digest_reads_the_build_result_of_the_exec_that_writes_the_layout(
    recorder: Recorder, repo_root: Path
) -> None:
    digest = "sha256:" + "f" * 64
    recorder.answer = lambda argv: json.dumps(
        {
            "spec": argv[3],
            "reference": f"registry.example/m@{digest}",
            "manifest_digest": digest,
            "layout": argv[argv.index("--output") + 1],
            "revision": COMMIT,
            "base": "docker.io/library/busybox:1.37.0",
            "base_digest": "sha256:" + "0" * 64,
            "files": [],
        }
    )
    car = anyio.run(LlmPlatform().build_modelcar, HostFile(repo_root / "modelcars" / "minilm-demo.yaml"))
    assert anyio.run(car.digest) == digest
    [chain] = recorder.evaluated
    kind, layout_chain, path = car.layout()
    assert kind == "directory-of" and layout_chain.ops == chain
    assert _execs(chain)[-1] == commands.modelcar_build_argv(car.spec_path(), path, None)


def test_results_read_back_from_the_toolbox_fail_loudly_when_malformed(
    recorder: Recorder, repo_root: Path
) -> None:
    recorder.answer = lambda argv: "Apply complete!\n"
    with pytest.raises(ValidationError):
        anyio.run(lambda: LlmPlatform().tofu_plan("dev", HostDirectory(repo_root / "infra")))
    recorder.answer = lambda argv: "\n"
    with pytest.raises(ValidationError):
        anyio.run(
            lambda: LlmPlatform().bump(
                "minilm-demo", f"registry.example/m@sha256:{'a' * 64}", HostDirectory(repo_root)
            )
        )
    recorder.answer = lambda argv: json.dumps({"registry": "us-east4-docker.pkg.dev/p/modelcars"})
    with pytest.raises(ValidationError, match="cluster_endpoint"):
        anyio.run(lambda: LlmPlatform().tofu_apply("dev", HostDirectory(repo_root / "infra")))


def test_bump_returns_the_commit_the_command_reported(recorder: Recorder, repo_root: Path) -> None:
    ref = f"registry.example/m@sha256:{'a' * 64}"
    commit = anyio.run(lambda: LlmPlatform().bump("minilm-demo", ref, HostDirectory(repo_root)))
    [chain] = recorder.evaluated
    argv = _execs(chain)[-1]
    assert commit == f"{'e' * 39}{len(argv) % 10}"
    assert argv == commands.bump_argv("minilm-demo", ref, f"{containers.WORK}/repo")
