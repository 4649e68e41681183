"""The GitHub workflows that run the Dagger module: pinned actions, the Dagger CLI at the module's
engineVersion, secrets only through env:// and the CI secret store, and `dagger call` arguments that
the module really accepts (checked against its registered functions)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import dagger
import pytest
import yaml

from llm_platform.main import LlmPlatform
from llm_platform.tofu.environments import environment_root

WORKFLOWS = Path(".github") / "workflows"
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w.-]+@([0-9a-f]{40}|v\d+\.\d+\.\d+)$")
EXPRESSION = re.compile(
    r"^\$\{\{\s*(secrets\.[A-Z0-9_]+|steps\.[\w-]+\.outputs\.[\w-]+|github\.token)\s*\}\}$"
)


def _load(repo_root: Path, name: str) -> dict[str, Any]:
    document = yaml.safe_load((repo_root / WORKFLOWS / name).read_text())
    assert isinstance(document, dict)
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in document["jobs"].values() for step in job["steps"]]


def _dagger_steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in _steps(document) if step.get("uses", "").startswith("dagger/dagger-for-github@")]


def _engine_version(repo_root: Path) -> str:
    version: str = json.loads((repo_root / "dagger.json").read_text())["engineVersion"]
    return version.removeprefix("v")


@pytest.fixture(params=["pull-request.yml", "deploy.yml"])
def workflow(request: pytest.FixtureRequest, repo_root: Path) -> dict[str, Any]:
    return _load(repo_root, request.param)


def test_every_action_is_pinned(workflow: dict[str, Any]) -> None:
    uses = [step["uses"] for step in _steps(workflow) if "uses" in step]
    assert uses
    for action in uses:
        assert PINNED_ACTION.match(action), f"{action}: pin a commit sha or an exact vX.Y.Z tag"


def test_the_dagger_cli_is_the_engine_version_of_the_module(
    workflow: dict[str, Any], repo_root: Path
) -> None:
    steps = _dagger_steps(workflow)
    assert steps
    for step in steps:
        assert step["with"]["version"] == _engine_version(repo_root) == dagger._engine._version.CLI_VERSION
        assert step["with"]["verb"] == "call"


def test_checkouts_never_persist_the_job_token(workflow: dict[str, Any]) -> None:
    checkouts = [step for step in _steps(workflow) if step.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False


def test_secrets_reach_dagger_only_through_the_environment(workflow: dict[str, Any]) -> None:
    for step in _dagger_steps(workflow):
        args = step["with"]["args"]
        assert "${{ secrets." not in args and "${{ steps." not in args, "a secret on the dagger command line"
        env = step.get("env", {})
        for name, value in env.items():
            assert EXPRESSION.match(value), f"{name}: only secrets/step outputs, no literal values"
        for variable in re.findall(r"env://([A-Z0-9_]+)", args):
            assert variable in env, f"env://{variable} is not set on the step"
        # Every variable the step gets is used by an env:// argument.
        assert set(env) <= set(re.findall(r"env://([A-Z0-9_]+)", args))


def _call(step: dict[str, Any]) -> tuple[str, dict[str, str | bool]]:
    # GitHub expressions (e.g. ${{ vars.GCP_PROJECT_ID }}) are substituted before the shell sees them.
    tokens = shlex.split(re.sub(r"\$\{\{[^}]*\}\}", "EXPRESSION", step["with"]["args"]))
    flags: dict[str, str | bool] = {}
    for token in tokens[1:]:
        assert token.startswith("--"), token
        name, sep, value = token[2:].partition("=")
        flags[name] = value if sep else True
    return tokens[0], flags


def _api_parameters(function: str) -> dict[str, Any]:
    # Importing llm_platform.main (the module's entry point) is what registers its functions.
    mod = dagger.mod.default_module()
    fn = mod.get_object(LlmPlatform.__name__).functions[function.replace("-", "_")]
    return {param.name.replace("_", "-"): param for param in fn.parameters.values()}


def test_pull_requests_run_the_tests_and_dagger_call_lint(repo_root: Path) -> None:
    document = _load(repo_root, "pull-request.yml")
    assert "pull_request" in document["on"]
    assert document["permissions"] == {"contents": "read"}
    runs = [step.get("run", "") for step in _steps(document)]
    assert any(".ci/run" in run for run in runs), "the README's test command runs on pull requests"
    [lint] = _dagger_steps(document)
    function, flags = _call(lint)
    assert (function, flags) == ("lint", {})
    assert all(param.is_optional for param in _api_parameters("lint").values())


def test_pull_requests_run_the_kind_test_with_the_pinned_kind(repo_root: Path) -> None:
    document = _load(repo_root, "pull-request.yml")
    steps = document["jobs"]["kind-test"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    lock = dict(
        line.split("=", 1)
        for line in (repo_root / "scripts/tools.lock").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    # The kind binary is the pinned release, checked against the lock's sha256 before it is installed.
    assert "s/^KIND_VERSION=//p" in runs and "s/^KIND_LINUX_AMD64_SHA256=//p" in runs and lock["KIND_VERSION"]
    assert runs.index("sha256sum -c") < runs.index("install -m 0755 kind")
    assert "llm-platform configure --check --env kind" in runs
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in runs  # the pinned helm renders Argo CD's chart
    assert runs.rstrip().endswith("llm-platform cluster kind-test --timeout 40m")


def test_merges_to_main_run_dagger_call_deploy_with_every_credential_as_a_secret(repo_root: Path) -> None:
    document = _load(repo_root, "deploy.yml")
    assert document["on"]["push"]["branches"] == ["main"]
    assert document["permissions"] == {"contents": "read", "id-token": "write"}
    assert document["concurrency"]["cancel-in-progress"] is False
    [deploy] = _dagger_steps(document)
    function, flags = _call(deploy)
    assert function == "deploy"
    parameters = _api_parameters("deploy")
    assert set(flags) <= set(parameters), f"unknown flags: {set(flags) - set(parameters)}"
    required = {name for name, param in parameters.items() if not param.is_optional}
    assert required <= set(flags)
    for name, value in flags.items():
        is_secret = parameters[name].resolved_type in (dagger.Secret, dagger.Secret | None)
        assert is_secret == str(value).startswith("env://"), f"--{name}={value}"
    assert {"access-token", "hf-token", "registry-password", "git-token"} <= set(flags)
    assert flags["push"] is True
    # a valid environment name, whose root exists
    assert (repo_root / "infra" / environment_root(str(flags["env"]))).is_dir()
