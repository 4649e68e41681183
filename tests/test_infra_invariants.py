"""Static checks of infra/: the platform's invariants read from the HCL itself (python-hcl2), plus fmt.

`init`/`validate`/`plan` of infra/ need the google provider, which cannot be downloaded here; these
checks (including the module-interface cross-check) are what can be proven without it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
from tests.support.tools import require_tool

from llm_platform.tofu import POLICY_FILE, PlatformOutputs
from llm_platform.tofu.protection import load_policy

PROVIDER_VERSION = "7.28.0"  # hashicorp/google and google-beta, as pinned in ../shared/reference/platform.md


def _clean(value: Any) -> Any:
    """python-hcl2 keeps quotes on strings and labels and marks blocks; strip both for plain comparisons."""
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return _unquote(value) if isinstance(value, str) else value


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _load_dir(directory: Path) -> dict[str, list[Any]]:
    """All top-level blocks of the *.tf files of one module/root, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for tf in sorted(directory.glob("*.tf")):
        with tf.open(encoding="utf-8") as handle:
            for kind, blocks in _clean(hcl2.load(handle)).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def _resources(config: dict[str, list[Any]], rtype: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in config.get("resource", []):
        for name, body in block.get(rtype, {}).items():
            found[name] = body
    return found


def _named(config: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for block in config.get(kind, []) for name, body in block.items()}


def _one(body: dict[str, Any], block: str) -> dict[str, Any]:
    items = body.get(block)
    assert isinstance(items, list) and len(items) == 1, f"expected exactly one {block} block"
    return items[0]


@pytest.fixture(scope="module")
def infra(repo_root: Path) -> Path:
    path = repo_root / "infra"
    assert path.is_dir(), "infra/ is missing"
    return path


@pytest.fixture(scope="module")
def modules(infra: Path) -> dict[str, dict[str, list[Any]]]:
    return {d.name: _load_dir(d) for d in sorted((infra / "modules").iterdir()) if d.is_dir()}


@pytest.fixture(scope="module")
def envs(infra: Path) -> dict[str, Path]:
    found = {d.name: d for d in sorted((infra / "envs").iterdir()) if d.is_dir()}
    assert {"dev", "prod"} <= set(found), f"expected envs dev and prod, found {sorted(found)}"
    return found


def _all_roots(infra: Path) -> list[Path]:
    return sorted({tf.parent for tf in infra.rglob("*.tf") if ".terraform" not in tf.parts})


def test_fmt_check_is_clean(infra: Path, tmp_path: Path) -> None:
    binary = require_tool("tofu", "terraform")
    config = tmp_path / "empty.tfrc"
    config.write_text("")
    proc = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(infra)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": str(config), "CHECKPOINT_DISABLE": "1"},
    )
    assert proc.returncode == 0, f"fmt -check found unformatted files:\n{proc.stdout}{proc.stderr}"


def test_gpu_pool_scales_to_zero_with_taint_and_managed_driver(modules: dict[str, Any]) -> None:
    pools = [
        (module, name, body)
        for module, config in modules.items()
        for name, body in _resources(config, "google_container_node_pool").items()
        if "guest_accelerator" in _one(body, "node_config")
    ]
    assert pools, "no GPU node pool (google_container_node_pool with guest_accelerator) in infra/modules"
    for module, name, body in pools:
        where = f"{module}: google_container_node_pool.{name}"
        autoscaling = _one(body, "autoscaling")
        assert autoscaling.get("total_min_node_count") == 0, (
            f"{where}: total_min_node_count must be literally 0"
        )
        assert "min_node_count" not in autoscaling, f"{where}: per-zone and total limits cannot be mixed"
        node_config = _one(body, "node_config")
        taints = node_config.get("taint", [])
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"} in taints, where
        accelerator = _one(node_config, "guest_accelerator")
        driver = _one(accelerator, "gpu_driver_installation_config")
        assert driver.get("gpu_driver_version"), f"{where}: GKE-managed driver installation must be set"
        assert _one(node_config, "workload_metadata_config") == {"mode": "GKE_METADATA"}, where

    variables = _named(modules["gpu-pool"], "variable")
    assert variables["gpu_driver_version"]["default"] == "LATEST"


def test_cluster_has_workload_identity_gateway_api_release_channel(modules: dict[str, Any]) -> None:
    clusters = _resources(modules["gke"], "google_container_cluster")
    assert len(clusters) == 1
    cluster = next(iter(clusters.values()))
    assert _one(cluster, "workload_identity_config")["workload_pool"] == "${var.project_id}.svc.id.goog"
    assert cluster["remove_default_node_pool"] is True
    assert _one(cluster, "gateway_api_config")["channel"] == "${var.gateway_api_channel}"
    assert _one(cluster, "release_channel")["channel"] == "${var.release_channel}"
    assert _one(cluster, "lifecycle")["prevent_destroy"] is True
    # The variable behind the Gateway API channel cannot switch it off.
    validation = _one(_named(modules["gke"], "variable")["gateway_api_channel"], "validation")
    assert "CHANNEL_DISABLED" not in validation["condition"]


def test_modelcars_registry_is_docker_and_protected(modules: dict[str, Any], envs: dict[str, Path]) -> None:
    repos = _resources(modules["artifact-registry"], "google_artifact_registry_repository")
    assert len(repos) == 1
    repo = next(iter(repos.values()))
    assert repo["format"] == "DOCKER"
    assert _one(repo, "lifecycle")["prevent_destroy"] is True
    writers = _resources(modules["artifact-registry"], "google_artifact_registry_repository_iam_member")
    assert writers["writers"]["role"] == "roles/artifactregistry.writer"
    for env, root in envs.items():
        registry = _named(_load_dir(root), "module")["registry"]
        assert registry["repository_id"] == "modelcars", env
        assert registry["writer_members"] == ["serviceAccount:${module.iam.pusher_email}"], env


def test_workload_service_accounts_and_secret_manager_access(
    modules: dict[str, Any], envs: dict[str, Path]
) -> None:
    accounts = _resources(modules["iam"], "google_service_account")
    assert {"nodes", "argocd", "external_secrets", "pusher"} <= set(accounts)
    accessor = _resources(modules["iam"], "google_project_iam_member")["external_secrets_accessor"]
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    assert accessor["member"] == "${google_service_account.external_secrets.member}"
    for env, root in envs.items():
        bindings = _named(_load_dir(root), "module")["workload_identity"]["bindings"]
        ksas = {(b["namespace"], b["kubernetes_service_account"]) for b in bindings.values()}
        assert ("external-secrets", "external-secrets") in ksas, env
        assert ("argocd", "argocd-repo-server") in ksas, env


def test_each_environment_has_its_own_gcs_backend(envs: dict[str, Path]) -> None:
    prefixes: dict[str, str] = {}
    for env, root in envs.items():
        terraform_blocks = _load_dir(root)["terraform"]
        backends = [b for t in terraform_blocks for b in t.get("backend", [])]
        assert backends == [{"gcs": {}}], (
            f'{env}: expected one empty backend "gcs" block (settings in backend.hcl)'
        )
        with (root / "backend.hcl").open(encoding="utf-8") as handle:
            settings = _clean(hcl2.load(handle))
        assert settings.get("bucket"), f"{env}/backend.hcl: bucket missing"
        assert settings.get("prefix"), f"{env}/backend.hcl: prefix missing"
        assert env in settings["prefix"], f"{env}/backend.hcl: prefix should name the environment"
        prefixes[env] = f"{settings['bucket']}/{settings['prefix']}"
    assert len(set(prefixes.values())) == len(prefixes), f"environments share a state location: {prefixes}"


def test_providers_are_pinned_exactly(infra: Path) -> None:
    roots = _all_roots(infra)
    assert roots
    for root in roots:
        config = _load_dir(root)
        terraform_blocks = config.get("terraform", [])
        assert any(t.get("required_version") for t in terraform_blocks), f"{root}: required_version missing"
        providers = {
            name: spec
            for t in terraform_blocks
            for block in t.get("required_providers", [])
            for name, spec in block.items()
        }
        assert "google" in providers, f"{root}: hashicorp/google not declared"
        for name, spec in providers.items():
            assert spec["version"] == PROVIDER_VERSION, (
                f"{root}: provider {name} pinned to {spec['version']!r}"
            )
            assert spec["source"] == f"hashicorp/{name}", f"{root}: provider {name} source {spec['source']!r}"


def test_variables_and_outputs_are_typed_and_documented(infra: Path) -> None:
    for root in _all_roots(infra):
        config = _load_dir(root)
        for name, body in _named(config, "variable").items():
            assert body.get("type"), f"{root}: variable {name} has no type"
            assert body.get("description"), f"{root}: variable {name} has no description"
        for name, body in _named(config, "output").items():
            assert body.get("description"), f"{root}: output {name} has no description"
        project = _named(config, "variable").get("project_id")
        if project is not None:
            assert "default" not in project, f"{root}: project_id must not be hard-coded (no default)"


def test_module_calls_match_module_interfaces(infra: Path, modules: dict[str, Any]) -> None:
    """What `validate` would catch without a provider: unknown/missing arguments and unknown module outputs."""
    meta = {"source", "depends_on", "providers", "count", "for_each", "version"}
    for root in _all_roots(infra / "envs"):
        config = _load_dir(root)
        calls = _named(config, "module")
        for call, body in calls.items():
            target = (root / body["source"]).resolve()
            module = modules[target.name]
            declared = _named(module, "variable")
            passed = set(body) - meta
            assert passed <= set(declared), (
                f"{root}: module {call} gets unknown arguments {passed - set(declared)}"
            )
            required = {v for v, spec in declared.items() if "default" not in spec}
            assert required <= passed, f"{root}: module {call} misses required {required - passed}"
        text = "\n".join(tf.read_text(encoding="utf-8") for tf in root.glob("*.tf"))
        for call, output in set(re.findall(r"module\.([a-z_]+)\.([a-z_]+)", text)):
            assert call in calls, f"{root}: reference to undeclared module.{call}"
            module = modules[(root / calls[call]["source"]).resolve().name]
            assert output in _named(module, "output"), f"{root}: module.{call}.{output} is not an output"


def test_env_outputs_cover_the_platform_contract(envs: dict[str, Path]) -> None:
    for env, root in envs.items():
        outputs = _named(_load_dir(root), "output")
        missing = set(PlatformOutputs.model_fields) - set(outputs)
        assert not missing, f"{env}: outputs missing for PlatformOutputs: {sorted(missing)}"
        accounts = outputs["service_accounts"]["value"]
        assert set(accounts) >= {"argocd", "external_secrets", "pusher", "nodes"}, env


def test_protected_resources_are_listed_and_load(envs: dict[str, Path]) -> None:
    for env, root in envs.items():
        assert (root / POLICY_FILE).is_file(), f"{env}: {POLICY_FILE} missing"
        policy = load_policy(root)
        assert "module.gke.google_container_cluster.this" in policy.addresses, env
    bootstrap = _resources(_load_dir(root.parent.parent / "bootstrap"), "google_storage_bucket")
    assert _one(bootstrap["state"], "lifecycle")["prevent_destroy"] is True
    assert _one(bootstrap["state"], "versioning")["enabled"] is True


_SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "service-account key file": re.compile(r'"type"\s*:\s*"service_account"'),
    "private_key field": re.compile(r'"private_key(_id)?"\s*:'),
    "Google OAuth access token": re.compile(r"ya29\.[0-9A-Za-z_-]{10,}"),
    "Google API key": re.compile(r"AIza[0-9A-Za-z_-]{35}"),
    "AWS access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "GitHub token": re.compile(r"gh[pousr]_[0-9A-Za-z]{30,}"),
    "credentials setting": re.compile(r"^\s*(credentials|access_token)\s*=", re.MULTILINE),
    "service account key resource": re.compile(r'resource\s+"google_service_account_key"'),
}


def test_no_credentials_or_state_in_the_tree(infra: Path) -> None:
    files = [p for p in infra.rglob("*") if p.is_file() and ".terraform" not in p.parts]
    assert files
    for path in files:
        assert not path.name.endswith((".tfstate", ".tfstate.backup", ".tfplan")), (
            f"{path}: state/plan committed"
        )
        assert path.suffix != ".json" or "key" not in path.name.lower(), f"{path}: looks like a key file"
        text = path.read_text(encoding="utf-8", errors="replace")
        for what, pattern in _SECRET_PATTERNS.items():
            assert not pattern.search(text), f"{path}: contains a {what}"


def test_the_secret_scan_catches_a_planted_key(tmp_path: Path) -> None:
    planted = tmp_path / "infra"
    planted.mkdir()
    (planted / "providers.tf").write_text('provider "google" {\n  credentials = file("sa.json")\n}\n')
    with pytest.raises(AssertionError, match="credentials setting"):
        test_no_credentials_or_state_in_the_tree(planted)


def test_each_environment_sets_its_required_inputs(envs: dict[str, Path]) -> None:
    """Everything but the project id (kept out of git) is set per environment in env.auto.tfvars."""
    for env, root in envs.items():
        with (root / "env.auto.tfvars").open(encoding="utf-8") as handle:
            values = _clean(hcl2.load(handle))
        assert values["environment"] == env
        required = {n for n, spec in _named(_load_dir(root), "variable").items() if "default" not in spec}
        missing = required - set(values) - {"project_id"}
        assert not missing, f"{env}: required inputs not set in env.auto.tfvars: {sorted(missing)}"
        assert values["release_channel"] in {"RAPID", "REGULAR", "STABLE", "EXTENDED"}, env
