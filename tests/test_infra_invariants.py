"""Static checks of infra/: the platform's invariants read from the HCL itself (python-hcl2), plus fmt.

`init`/`validate`/`plan` of infra/ need the google provider, which cannot be downloaded here; these
checks (including the module-interface cross-check) are what can be proven without it. The one
provider-free part, the environment settings type of modules/platform (settings.tf), is run for real
by terraform against each environment's env.auto.tfvars.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from llm_platform.tofu import POLICY_FILE, PlatformOutputs
from llm_platform.tofu.protection import load_policy
from tests.support.tools import require_tool

PROVIDER_VERSION = "7.28.0"  # hashicorp/google and google-beta, as pinned in ../shared/reference/platform.md


def _clean(value: Any) -> Any:
    """python-hcl2 keeps quotes on strings and labels and marks blocks and comments; strip all for comparisons."""
    if isinstance(value, dict):
        return {_unquote(k): _clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
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


def _all_dirs(infra: Path) -> list[Path]:
    """Every root and module: each directory holding *.tf files."""
    return sorted({tf.parent for tf in infra.rglob("*.tf") if ".terraform" not in tf.parts})


def _roots(infra: Path) -> list[Path]:
    """What init/plan run on: the environments and the bootstrap (everything outside modules/)."""
    return [d for d in _all_dirs(infra) if "modules" not in d.relative_to(infra).parts]


def _module_calls(config: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    return _named(config, "module")


def _platform_call(root: Path) -> dict[str, Any]:
    """An environment root is one call of modules/platform and nothing else that creates resources."""
    config = _load_dir(root)
    calls = _module_calls(config)
    assert set(calls) == {"platform"}, (
        f"{root}: expected exactly one module call, platform; found {sorted(calls)}"
    )
    assert calls["platform"]["source"] == "../../modules/platform", root
    assert not config.get("resource") and not config.get("data"), (
        f"{root}: resources belong in modules/platform"
    )
    return calls["platform"]


def _object_attributes(type_expr: str) -> dict[str, bool]:
    """Top-level attributes of an `object({...})` type expression -> whether each is optional()."""
    text = type_expr.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    assert text.startswith("object({") and text.endswith("})"), f"not an object type: {type_expr!r}"
    inner = text[len("object({") : -len("})")]
    fields: list[str] = []
    depth, current = 0, ""
    for char in inner:
        depth += char in "({["
        depth -= char in ")}]"
        if char == "," and depth == 0:
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    attributes = {}
    for field in filter(str.strip, fields):
        name, _, kind = field.partition("=")
        attributes[name.strip()] = kind.strip().startswith("optional(")
    return attributes


def _module_path(root: Path, source: str) -> Path:
    return (root / source).resolve()


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
    gke = _module_calls(modules["platform"])["gke"]
    assert gke["gateway_api_channel"] == "CHANNEL_STANDARD"
    assert gke["release_channel"] == "${var.settings.release_channel}"


def test_modelcars_registry_is_docker_and_protected(modules: dict[str, Any], envs: dict[str, Path]) -> None:
    repos = _resources(modules["artifact-registry"], "google_artifact_registry_repository")
    assert len(repos) == 1
    repo = next(iter(repos.values()))
    assert repo["format"] == "DOCKER"
    assert _one(repo, "lifecycle")["prevent_destroy"] is True
    writers = _resources(modules["artifact-registry"], "google_artifact_registry_repository_iam_member")
    assert writers["writers"]["role"] == "roles/artifactregistry.writer"
    registry = _module_calls(modules["platform"])["registry"]
    assert registry["source"] == "../artifact-registry"
    assert registry["repository_id"] == "modelcars"
    assert registry["writer_members"] == ["serviceAccount:${module.iam.pusher_email}"]
    for root in envs.values():
        _platform_call(root)  # every environment gets the registry through modules/platform


def test_workload_service_accounts_and_secret_manager_access(
    modules: dict[str, Any], envs: dict[str, Path]
) -> None:
    accounts = _resources(modules["iam"], "google_service_account")
    assert {"nodes", "argocd", "external_secrets", "pusher"} <= set(accounts)
    accessor = _resources(modules["iam"], "google_project_iam_member")["external_secrets_accessor"]
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    assert accessor["member"] == "${google_service_account.external_secrets.member}"
    bindings = _module_calls(modules["platform"])["workload_identity"]["bindings"]
    ksas = {(b["namespace"], b["kubernetes_service_account"]) for b in bindings.values()}
    assert ("external-secrets", "external-secrets") in ksas
    assert ("argocd", "argocd-repo-server") in ksas
    for root in envs.values():
        _platform_call(root)


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


def test_environment_roots_differ_only_in_their_values(envs: dict[str, Path]) -> None:
    """The wiring of a root is the same everywhere; what an environment is differs only in its data files
    (backend.hcl, env.auto.tfvars, protected-resources.yaml). Pins (versions.tf) may differ for a staged upgrade."""
    wiring = ("main.tf", "variables.tf", "outputs.tf", "providers.tf", "backend.tf")
    reference_env, reference = next(iter(envs.items()))
    for env, root in envs.items():
        assert {p.name for p in root.glob("*.tf")} == set(wiring) | {"versions.tf"}, env
        for name in wiring:
            text, expected = ((d / name).read_text(encoding="utf-8") for d in (root, reference))
            assert text == expected, (
                f"{env}/{name} differs from {reference_env}/{name}: put environment-specific things in "
                "modules/platform behind a setting, and the value in env.auto.tfvars"
            )


def _required_providers(config: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: spec
        for t in config.get("terraform", [])
        for block in t.get("required_providers", [])
        for name, spec in block.items()
    }


def test_providers_are_pinned_exactly_in_every_root(infra: Path, envs: dict[str, Path]) -> None:
    roots = _roots(infra)
    assert set(envs.values()) | {infra / "bootstrap"} <= set(roots), roots
    for root in roots:
        config = _load_dir(root)
        assert any(t.get("required_version") for t in config.get("terraform", [])), (
            f"{root}: required_version missing"
        )
        providers = _required_providers(config)
        assert "google" in providers, f"{root}: hashicorp/google not declared"
        for name, spec in providers.items():
            assert spec.get("version") == PROVIDER_VERSION, (
                f"{root}: provider {name} pinned to {spec.get('version')!r}"
            )
            assert spec["source"] == f"hashicorp/{name}", f"{root}: provider {name} source {spec['source']!r}"


def test_modules_name_provider_sources_and_leave_versions_to_the_roots(
    infra: Path, modules: dict[str, Any], envs: dict[str, Path]
) -> None:
    """A version in a module could only repeat the roots' pin or contradict it; the roots' pin must cover it."""
    pinned_everywhere = set.intersection(*(set(_required_providers(_load_dir(r))) for r in envs.values()))
    for name, config in modules.items():
        providers = _required_providers(config)
        assert providers, f"modules/{name}: required_providers missing"
        for provider, spec in providers.items():
            assert spec == {"source": f"hashicorp/{provider}"}, f"modules/{name}: provider {provider}: {spec}"
            assert provider in pinned_everywhere, (
                f"modules/{name}: {provider} is not pinned by every env root"
            )


def test_variables_and_outputs_are_typed_and_documented(infra: Path, modules: dict[str, Any]) -> None:
    for root in _all_dirs(infra):
        config = _load_dir(root)
        for name, body in _named(config, "variable").items():
            assert body.get("type"), f"{root}: variable {name} has no type"
            assert body.get("description"), f"{root}: variable {name} has no description"
            if body["type"] in ("any", "${any}"):
                # Only a pass-through is untyped: passed whole to a module that types it as an object.
                passed_to = [
                    (call, arg)
                    for call, spec in _module_calls(config).items()
                    for arg, value in spec.items()
                    if value == f"${{var.{name}}}"
                ]
                assert passed_to, f"{root}: variable {name} is `any` and not passed to a module"
                for call, arg in passed_to:
                    module = _module_path(root, _module_calls(config)[call]["source"]).name
                    target = _named(modules[module], "variable")[arg]["type"]
                    assert _object_attributes(target), f"{root}: {name} -> module.{call}.{arg} is untyped"
        for name, body in _named(config, "output").items():
            assert body.get("description"), f"{root}: output {name} has no description"
        project = _named(config, "variable").get("project_id")
        if project is not None:
            assert "default" not in project, f"{root}: project_id must not be hard-coded (no default)"


def test_module_calls_match_module_interfaces(infra: Path, modules: dict[str, Any]) -> None:
    """What `validate` would catch without a provider: unknown/missing arguments, unknown module outputs,
    and a root output that re-exports a sensitive module output without being sensitive itself."""
    meta = {"source", "depends_on", "providers", "count", "for_each", "version"}
    callers = [d for d in _all_dirs(infra) if _module_calls(_load_dir(d))]
    assert infra / "modules" / "platform" in callers
    for root in callers:
        config = _load_dir(root)
        calls = _module_calls(config)
        for call, body in calls.items():
            target = _module_path(root, body["source"])
            assert target.parent == infra / "modules", f"{root}: module {call} from outside infra/modules"
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
            module = modules[_module_path(root, calls[call]["source"]).name]
            assert output in _named(module, "output"), f"{root}: module.{call}.{output} is not an output"
        for name, body in _named(config, "output").items():
            reexport = re.fullmatch(r"\$\{module\.([a-z_]+)\.([a-z_]+)\}", str(body["value"]))
            if reexport:
                module = modules[_module_path(root, calls[reexport[1]]["source"]).name]
                if _named(module, "output")[reexport[2]].get("sensitive"):
                    assert body.get("sensitive") is True, f"{root}: output {name} must be sensitive"


def _resolved_output(root: Path, modules: dict[str, Any], value: Any) -> Any:
    """Follow `${module.X.Y}` re-exports down to the expression that produces the value."""
    while isinstance(value, str) and (found := re.fullmatch(r"\$\{module\.([a-z_]+)\.([a-z_]+)\}", value)):
        source = _module_calls(_load_dir(root))[found[1]]["source"]
        root = _module_path(root, source)
        value = _named(modules[root.name], "output")[found[2]]["value"]
    return value


def test_env_outputs_cover_the_platform_contract(envs: dict[str, Path], modules: dict[str, Any]) -> None:
    for env, root in envs.items():
        outputs = _named(_load_dir(root), "output")
        missing = set(PlatformOutputs.model_fields) - set(outputs)
        assert not missing, f"{env}: outputs missing for PlatformOutputs: {sorted(missing)}"
        for name in ("cluster_endpoint", "cluster_ca_certificate"):
            assert outputs[name].get("sensitive") is True, f"{env}: {name} must be sensitive"
        accounts = _resolved_output(root, modules, outputs["service_accounts"]["value"])
        assert isinstance(accounts, dict), f"{env}: service_accounts does not resolve to an object"
        assert set(accounts) >= {"argocd", "external_secrets", "pusher", "nodes"}, env


def _resolve_address(root: Path, modules: dict[str, Any], address: str) -> dict[str, Any] | None:
    """The resource body behind `module.a.module.b.TYPE.NAME` in the static tree, or None."""
    parts = address.split(".")
    directory, config = root, _load_dir(root)
    while len(parts) > 2 and parts[0] == "module":
        call = _module_calls(config).get(parts[1])
        if call is None:
            return None
        directory = _module_path(directory, call["source"])
        config, parts = modules[directory.name], parts[2:]
    if len(parts) != 2:
        return None
    return _resources(config, parts[0]).get(parts[1])


def test_protected_resources_are_listed_and_exist(envs: dict[str, Path], modules: dict[str, Any]) -> None:
    for env, root in envs.items():
        assert (root / POLICY_FILE).is_file(), f"{env}: {POLICY_FILE} missing"
        policy = load_policy(root)
        assert "module.platform.module.gke.google_container_cluster.this" in policy.addresses, env
        assert "module.platform.module.registry.google_artifact_registry_repository.this" in policy.addresses
        for address in policy.addresses:
            # A stale address (e.g. after a module move) would silently protect nothing.
            assert "*" in address or _resolve_address(root, modules, address) is not None, (
                f"{env}/{POLICY_FILE}: {address} is not a resource of this root"
            )
    assert _resolve_address(envs["dev"], modules, "module.gke.google_container_cluster.this") is None
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


def test_each_environment_sets_its_settings(envs: dict[str, Path], modules: dict[str, Any]) -> None:
    """Everything but the project id (kept out of git) is set per environment in env.auto.tfvars,
    as attributes modules/platform knows; a misspelt one is also refused at plan time (settings_keys)."""
    attributes = _object_attributes(_named(modules["platform"], "variable")["settings"]["type"])
    required_attributes = {name for name, optional in attributes.items() if not optional}
    assert {"environment", "region", "release_channel", "gpu_zones", "gpu_max_nodes"} <= required_attributes
    for env, root in envs.items():
        with (root / "env.auto.tfvars").open(encoding="utf-8") as handle:
            values = _clean(hcl2.load(handle))
        assert set(values) == {"settings"}, (
            f"{env}/env.auto.tfvars: only `settings` expected, got {sorted(values)}"
        )
        settings = values["settings"]
        unknown = set(settings) - set(attributes)
        assert not unknown, f"{env}/env.auto.tfvars: unknown settings {sorted(unknown)}"
        missing = required_attributes - set(settings)
        assert not missing, f"{env}/env.auto.tfvars: required settings not set: {sorted(missing)}"
        assert settings["environment"] == env
        assert settings["release_channel"] in {"RAPID", "REGULAR", "STABLE", "EXTENDED"}, env
        call = _platform_call(root)
        assert call.get("settings") == "${var.settings}", env
        assert call.get("settings_keys") == "${keys(var.settings)}", env
        required = {n for n, spec in _named(_load_dir(root), "variable").items() if "default" not in spec}
        assert required == {"project_id", "settings"}, f"{env}: unexpected required inputs {sorted(required)}"
    guard = _one(_named(modules["platform"], "output")["settings"], "precondition")
    assert "setsubtract(var.settings_keys, keys(var.settings))" in guard["condition"]


def test_object_attribute_parser() -> None:
    parsed = _object_attributes(
        "${object({a = string, b = optional(list(object({c = string, d = number})), []), e = number})}"
    )
    assert parsed == {"a": False, "b": True, "e": False}
    with pytest.raises(AssertionError, match="not an object type"):
        _object_attributes("${list(string)}")


def _terraform(binary: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = root.parent / "empty.tfrc"
    config.write_text("")
    return subprocess.run(
        [binary, f"-chdir={root}", *args, "-no-color"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": str(config), "CHECKPOINT_DISABLE": "1"},
    )


def _settings_root(infra: Path, tmp_path: Path, tfvars: str) -> Path:
    """modules/platform/settings.tf (needs no provider) called the way an environment root calls the module."""
    module = tmp_path / "settings"
    module.mkdir()
    shutil.copy(infra / "modules" / "platform" / "settings.tf", module / "settings.tf")
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        'variable "settings" {\n  type = any\n}\n\n'
        'module "platform" {\n  source        = "../settings"\n'
        "  settings      = var.settings\n  settings_keys = keys(var.settings)\n}\n\n"
        'output "settings" {\n  value = module.platform.settings\n}\n'
    )
    (root / "env.auto.tfvars").write_text(tfvars)
    return root


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_committed_settings_pass_the_real_type_check(
    env: str, infra: Path, envs: dict[str, Path], tmp_path: Path
) -> None:
    """terraform itself converts env.auto.tfvars to the settings type and fills in the defaults."""
    binary = require_tool("tofu", "terraform")
    root = _settings_root(infra, tmp_path, (envs[env] / "env.auto.tfvars").read_text(encoding="utf-8"))
    for step in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        proc = _terraform(binary, root, *step)
        assert proc.returncode == 0, f"{env}: terraform {step[0]} failed:\n{proc.stdout}{proc.stderr}"
    proc = _terraform(binary, root, "output", "-json", "settings")
    assert proc.returncode == 0, proc.stderr
    settings = json.loads(proc.stdout)
    assert settings["environment"] == env
    assert settings["gpu_accelerator_type"] == "nvidia-l4"  # a default filled in
    assert settings["gpu_max_nodes"] >= 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("gpu_spot ", "gpu_spott"), "unknown attribute(s) gpu_spott"),
        (('region              = "us-east4"\n', ""), 'attribute "region" is required'),
        (("gpu_max_nodes       = 2", 'gpu_max_nodes       = "two"'), "a number is required"),
        (('environment         = "dev"', 'environment         = "Dev-1"'), "settings.environment must be"),
        (("settings = {", 'settings = {\n  pods_cidr = "10.20.0.0"'), "must be CIDR ranges"),
    ],
    ids=["misspelt", "missing", "mistyped", "bad-environment", "bad-cidr"],
)
def test_bad_settings_are_refused_at_plan_time(
    edit: tuple[str, str], message: str, infra: Path, envs: dict[str, Path], tmp_path: Path
) -> None:
    binary = require_tool("tofu", "terraform")
    tfvars = (envs["dev"] / "env.auto.tfvars").read_text(encoding="utf-8")
    assert edit[0] in tfvars
    root = _settings_root(infra, tmp_path, tfvars.replace(*edit))
    proc = _terraform(binary, root, "init", "-input=false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _terraform(binary, root, "plan", "-input=false")
    assert proc.returncode != 0, f"plan accepted bad settings:\n{proc.stdout}"
    assert message in " ".join(proc.stderr.split()), proc.stderr
