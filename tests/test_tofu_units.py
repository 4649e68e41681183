"""Pure parts of the `tofu` step: binary discovery order, secret scrubbing, flag checks, address matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_platform.errors import InputError, ToolError
from llm_platform.tofu.binary import find_binary
from llm_platform.tofu.options import backend_config_args
from llm_platform.tofu.plan_summary import ResourceChange
from llm_platform.tofu.protection import ProtectionPolicy, address_matches
from llm_platform.tofu.runner import scrub, secret_values
from tests.support.tools import require_tool


def test_tofu_is_preferred_over_terraform(tmp_path: Path) -> None:
    tofu_binary = require_tool("tofu", "terraform")
    both = tmp_path / "both"
    both.mkdir()
    (both / "terraform").symlink_to(tofu_binary)
    (both / "tofu").symlink_to(tofu_binary)
    assert find_binary(search_path=str(both)).path == str(both / "tofu")

    only_terraform = tmp_path / "only"
    only_terraform.mkdir()
    (only_terraform / "terraform").symlink_to(tofu_binary)
    found = find_binary(search_path=str(only_terraform))
    assert found.path == str(only_terraform / "terraform")
    assert found.version[0].isdigit()

    with pytest.raises(ToolError, match="neither `tofu` nor `terraform`"):
        find_binary(search_path=str(tmp_path / "empty"))
    with pytest.raises(ToolError, match="--binary 'no-such-tofu'"):
        find_binary("no-such-tofu")


def test_secret_values_cover_credentials_json_leaves() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEabcdef\n-----END PRIVATE KEY-----\n"
    env = {
        "GOOGLE_CREDENTIALS": json.dumps(
            {"type": "service_account", "private_key": key, "client_email": "a@b"}
        ),
        "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.abcdefgh",
        "TF_VAR_db_password": "hunter2-long",
        "PATH": "/usr/bin:/bin",
        "SHORT_TOKEN": "abc",
    }
    secrets = secret_values(env)
    text = f"token ya29.abcdefgh, key {key!r}, pw hunter2-long, path /usr/bin:/bin, abc"
    scrubbed = scrub(text, secrets)
    assert "ya29.abcdefgh" not in scrubbed and "MIIEabcdef" not in scrubbed and "hunter2-long" not in scrubbed
    assert "/usr/bin:/bin" in scrubbed and scrubbed.endswith("abc")


def test_backend_config_pairs_files_and_refused_credentials(tmp_path: Path) -> None:
    backend = tmp_path / "backend.hcl"
    backend.write_text('bucket = "b"\nprefix = "p"\n')
    assert backend_config_args(["bucket=llm-state", str(backend)]) == [
        "-backend-config=bucket=llm-state",
        f"-backend-config={backend.resolve()}",
    ]
    with pytest.raises(InputError, match="credentials are not accepted"):
        backend_config_args(["credentials={}"])
    with pytest.raises(InputError, match="neither KEY=VALUE nor an existing file"):
        backend_config_args([str(tmp_path / "missing.hcl")])
    with pytest.raises(InputError, match="not a valid backend setting name"):
        backend_config_args(["bad key=1"])


def test_protection_by_type_address_and_pattern() -> None:
    policy = ProtectionPolicy(addresses=["module.state.*", "terraform_data.registry"])
    cluster = ResourceChange(
        address="module.gke.google_container_cluster.this", type="google_container_cluster", action="replace"
    )
    pool = ResourceChange(
        address="module.gpu.google_container_node_pool.this",
        type="google_container_node_pool",
        action="replace",
    )
    assert policy.protects(cluster) and not policy.protects(pool)
    assert policy.protects(ResourceChange(address="module.state.x.y", type="x", action="delete"))
    assert address_matches("terraform_data.registry", 'terraform_data.registry["a"]')
    assert not address_matches("terraform_data.reg", "terraform_data.registry")
    assert address_matches("module.gke.*", "module.gke.google_container_cluster.this")
