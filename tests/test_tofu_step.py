"""The `tofu` step against the real terraform/tofu binary on provider-free fixture roots (local state)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel

from llm_platform import tofu
from llm_platform.errors import InputError, ToolError
from tests.support.tools import require_tool

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tofu"
Root = Callable[[str], Path]


@pytest.fixture
def tofu_binary() -> str:
    """The real binary (tofu, else terraform); missing is a failure, never a skip."""
    return require_tool("tofu", "terraform")


@pytest.fixture
def tofu_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tofu_binary: str) -> Path:
    """No user CLI config (no mirrors, no credential helpers), no upgrade check: runs stay offline."""
    config = tmp_path / "empty.tfrc"
    config.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(config))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    for name in ("TF_DATA_DIR", "TF_WORKSPACE", "TF_PLUGIN_CACHE_DIR", "TF_CLI_ARGS"):
        monkeypatch.delenv(name, raising=False)
    return config


@pytest.fixture
def fixture_root(tmp_path: Path, tofu_env: Path) -> Root:
    """Copy a root from tests/fixtures/tofu into tmp_path; its state and .terraform stay there."""

    copies = itertools.count()

    def copy(name: str) -> Path:
        target = tmp_path / "roots" / f"{next(copies)}" / name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


def _serial(root: Path) -> int:
    return int(json.loads((root / "terraform.tfstate").read_text())["serial"])


def _vars(tmp_path: Path, name: str, body: str) -> tofu.TofuOptions:
    var_file = tmp_path / f"{name}.tfvars"
    var_file.write_text(body)
    return tofu.TofuOptions(var_files=[var_file])


class PoolOutputs(BaseModel):
    cpu_nodes: int
    cluster_name: str


def test_plan_apply_output_round_trip(fixture_root: Root) -> None:
    root = fixture_root("platform")
    planned = tofu.plan(root)
    assert planned.changes is True
    assert (planned.summary.add, planned.summary.change, planned.summary.destroy) == (3, 0, 0)
    assert {c.address for c in planned.summary.resources} == {
        "terraform_data.cluster",
        "terraform_data.registry[0]",
        "terraform_data.cpu_pool",
    }
    assert not (root / "terraform.tfstate").exists(), "plan must not change state"

    applied = tofu.apply(root)
    assert applied.applied is True
    assert (applied.applied_changes.add, applied.applied_changes.remove) == (3, 0)

    out = tofu.outputs(root)
    assert isinstance(out, tofu.PlatformOutputs)
    assert out.cluster_endpoint == "203.0.113.10"
    assert out.registry_url == "europe-west4-docker.pkg.dev/llm-fixture/modelcars"
    assert out.workload_identity_pool == "llm-fixture.svc.id.goog"
    assert out.service_accounts.pusher == "llm-dev-pusher@llm-fixture.iam.gserviceaccount.com"


def test_second_run_is_a_noop_and_applies_nothing(fixture_root: Root) -> None:
    root = fixture_root("platform")
    tofu.apply(root)
    serial = _serial(root)
    again = tofu.apply(root)
    assert again.applied is False
    assert again.plan.changes is False and again.plan.summary.empty
    assert "nothing was applied" in again.message
    assert _serial(root) == serial, "a no-op must not write state"


def test_a_change_shows_in_the_summary_and_applies(fixture_root: Root, tmp_path: Path) -> None:
    root = fixture_root("platform")
    tofu.apply(root)
    options = _vars(tmp_path, "pool", "cpu_nodes = 3\n")
    planned = tofu.plan(root, options)
    assert planned.changes is True
    assert (
        planned.summary.add,
        planned.summary.change,
        planned.summary.replace,
        planned.summary.destroy,
    ) == (
        0,
        1,
        0,
        0,
    )
    assert [(c.address, c.action) for c in planned.summary.resources] == [
        ("terraform_data.cpu_pool", "update")
    ]
    assert planned.summary.output_changes == ["cpu_nodes"]
    assert planned.protected_destroys == []

    applied = tofu.apply(root, options)
    assert applied.applied_changes.change == 1
    assert tofu.read_outputs(root, PoolOutputs).cpu_nodes == 3


def test_replacing_a_protected_resource_is_refused_until_allowed(fixture_root: Root, tmp_path: Path) -> None:
    root = fixture_root("platform")
    tofu.apply(root)
    serial = _serial(root)
    options = _vars(tmp_path, "rename", 'cluster_name = "llm-renamed"\n')

    planned = tofu.plan(root, options)
    assert [(c.address, c.action) for c in planned.protected_destroys] == [
        ("terraform_data.cluster", "replace")
    ]

    with pytest.raises(tofu.DestroyRefusedError) as refused:
        tofu.apply(root, options)
    assert "terraform_data.cluster (replace" in refused.value.message
    assert "--allow-destroy" in refused.value.message
    assert _serial(root) == serial
    assert tofu.outputs(root).cluster_name == "llm-dev"

    with pytest.raises(tofu.DestroyRefusedError):
        tofu.apply(root, options, allow_destroy=["terraform_data.cpu_pool"])

    applied = tofu.apply(root, options, allow_destroy=["terraform_data.cluster"])
    assert applied.applied is True
    assert tofu.outputs(root).cluster_name == "llm-renamed"


def test_destroying_a_protected_resource_is_refused(fixture_root: Root, tmp_path: Path) -> None:
    root = fixture_root("platform")
    tofu.apply(root)
    options = _vars(tmp_path, "drop", "keep_registry = false\n")
    with pytest.raises(tofu.DestroyRefusedError) as refused:
        tofu.apply(root, options)
    assert "terraform_data.registry[0] (delete" in refused.value.message
    assert tofu.outputs(root).registry_url.endswith("/modelcars")


def test_apply_of_a_saved_plan_applies_exactly_that_plan(fixture_root: Root, tmp_path: Path) -> None:
    root = fixture_root("platform")
    tofu.apply(root)
    plan_file = tmp_path / "pool.tfplan"
    planned = tofu.plan(root, _vars(tmp_path, "pool", "cpu_nodes = 5\n"), out=plan_file)
    assert planned.plan_file == str(plan_file)
    assert plan_file.stat().st_mode & 0o077 == 0, "saved plans may hold secrets: private to the user"

    # No var file here: the values come from the saved plan, not from the current configuration.
    applied = tofu.apply(root, plan_file=plan_file)
    assert applied.applied is True and applied.plan.summary.change == 1
    assert tofu.read_outputs(root, PoolOutputs).cpu_nodes == 5

    with pytest.raises(ToolError) as stale:
        tofu.apply(root, plan_file=plan_file)
    assert "stale" in stale.value.message.lower()

    with pytest.raises(InputError, match="--var-file cannot be combined with --plan-file"):
        tofu.apply(root, _vars(tmp_path, "pool", "cpu_nodes = 6\n"), plan_file=plan_file)


def test_failing_precondition_surfaces_its_message(fixture_root: Root, tmp_path: Path) -> None:
    root = fixture_root("platform")
    with pytest.raises(ToolError) as failed:
        tofu.apply(root, _vars(tmp_path, "gpu", "gpu_min_nodes = 2\n"))
    message = failed.value.message
    assert "plan failed" in message
    assert "Resource precondition failed (main.tf:" in message
    assert "gpu_min_nodes is 2, expected 0" in message
    assert not (root / "terraform.tfstate").exists()


def test_secrets_from_the_environment_are_scrubbed_from_tool_errors(
    fixture_root: Root, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fixture_root("platform")
    token = "revoked-9f8e7d6c5b4a"
    monkeypatch.setenv("TF_VAR_api_token", token)
    with pytest.raises(ToolError) as failed:
        tofu.plan(root)
    assert "The API token *** has been revoked" in failed.value.message
    assert token not in failed.value.message


def test_held_state_lock_is_a_clear_error(fixture_root: Root, tofu_binary: str) -> None:
    root = fixture_root("platform")
    tofu.apply(root)
    # A real second writer: an interactive apply holds the lock while it waits for its "yes".
    holder = subprocess.Popen(
        [tofu_binary, "apply", "-var", "cpu_nodes=9"],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (root / ".terraform.tfstate.lock.info").exists():
            assert holder.poll() is None and time.monotonic() < deadline, "lock holder did not take the lock"
            time.sleep(0.05)
        with pytest.raises(ToolError) as locked:
            tofu.plan(root)
        assert "Error acquiring the state lock" in locked.value.message
        assert "OperationTypeApply" in locked.value.message
    finally:
        assert holder.stdin is not None
        holder.stdin.write("no\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert tofu.plan(root).changes is False


def test_provider_failure_with_an_air_gapped_plugin_dir(fixture_root: Root, tmp_path: Path) -> None:
    root = fixture_root("needs-provider")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    with pytest.raises(ToolError) as failed:
        tofu.plan(root, tofu.TofuOptions(plugin_dir=plugins))
    assert "init failed" in failed.value.message
    assert "hashicorp/null" in failed.value.message


def test_plugin_dir_is_enough_for_builtin_resources(fixture_root: Root, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    assert tofu.plan(fixture_root("platform"), tofu.TofuOptions(plugin_dir=plugins)).summary.add == 3


def test_output_types_are_enforced(fixture_root: Root) -> None:
    root = fixture_root("bad-outputs")
    tofu.apply(root)
    with pytest.raises(InputError) as bad:
        tofu.outputs(root)
    message = bad.value.message
    assert "outputs do not match PlatformOutputs" in message
    assert "output 'registry_url': Input should be a valid string (got 42)" in message
    assert "output 'service_accounts' is missing" in message


def test_outputs_of_an_unapplied_root_say_so(fixture_root: Root) -> None:
    with pytest.raises(InputError) as bad:
        tofu.outputs(fixture_root("platform"))
    assert "has it been applied?" in bad.value.message


def test_bad_protection_file_names_the_field(fixture_root: Root) -> None:
    root = fixture_root("platform")
    (root / tofu.POLICY_FILE).write_text("adresses:\n  - terraform_data.cluster\n")
    with pytest.raises(InputError) as bad:
        tofu.apply(root)
    assert tofu.POLICY_FILE in bad.value.message and "field adresses" in bad.value.message
    assert not (root / "terraform.tfstate").exists(), "a bad policy must stop the step before anything runs"


# --- the CLI, as a real process -------------------------------------------------------------------

CLI = str(Path(sys.executable).with_name("llm-platform"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], check=False, capture_output=True, text=True, env=os.environ.copy(), timeout=300
    )


def test_cli_apply_then_output_prints_json(fixture_root: Root) -> None:
    root = fixture_root("platform")
    applied = _cli("tofu", "apply", str(root))
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["applied"] is True
    assert "Plan: 3 to add" in applied.stderr
    assert "terraform_data.cluster: Creation complete" in applied.stderr, "apply progress streams to stderr"

    again = _cli("tofu", "apply", str(root))
    assert again.returncode == 0 and json.loads(again.stdout)["applied"] is False

    out = _cli("tofu", "output", str(root))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["service_accounts"]["argocd"].startswith("llm-dev-argocd@")
    assert "fixture-password-1234" not in out.stdout, "outputs outside the contract are not printed"

    raw = _cli("tofu", "output", str(root), "--raw")
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["bootstrap_password"] == "(sensitive)"
    assert json.loads(raw.stdout)["cpu_nodes"] == 1
    revealed = _cli("tofu", "output", str(root), "--raw", "--show-sensitive")
    assert json.loads(revealed.stdout)["bootstrap_password"] == "fixture-password-1234"


def test_cli_refusal_and_allow_destroy(fixture_root: Root, tmp_path: Path) -> None:
    root = fixture_root("platform")
    assert _cli("tofu", "apply", str(root)).returncode == 0
    var_file = tmp_path / "rename.tfvars"
    var_file.write_text('cluster_name = "llm-other"\n')
    refused = _cli("tofu", "apply", str(root), "--var-file", str(var_file))
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "llm-platform: error: refusing to apply" in refused.stderr
    allowed = _cli(
        "tofu", "apply", str(root), "--var-file", str(var_file), "--allow-destroy", "terraform_data.cluster"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["plan"]["summary"]["replace"] == 1


def test_cli_refuses_credentials_on_the_command_line(fixture_root: Root) -> None:
    secret = "ya29.not-a-real-token-123456"
    result = _cli("tofu", "plan", str(fixture_root("platform")), "--backend-config", f"access_token={secret}")
    assert result.returncode == 2
    assert "credentials are not accepted on the command line" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_cli_bad_root_and_binary(tmp_path: Path, tofu_env: Path) -> None:
    missing = _cli("tofu", "plan", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "main.tf").write_text("")
    wrong = _cli("tofu", "plan", str(tmp_path / "root"), "--binary", "/bin/true")
    assert wrong.returncode == 1 and "does not look like tofu/terraform" in wrong.stderr


def test_root_backend_hcl_is_used_and_flags_override_it(fixture_root: Root) -> None:
    root = fixture_root("local-backend")
    tofu.apply(root)
    assert (root / "state" / "from-backend-hcl.tfstate").is_file()
    assert not (root / "terraform.tfstate").exists()

    other = fixture_root("local-backend")
    tofu.apply(other, tofu.TofuOptions(backend_config=["path=state/override.tfstate"]))
    assert (other / "state" / "override.tfstate").is_file()
    assert not (other / "state" / "from-backend-hcl.tfstate").exists()
