"""Credentials and the auth flows against real registries: htpasswd basic auth and a bearer-token service."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_platform.errors import InputError, RegistryError
from llm_platform.registry.auth import PASSWORD_ENV, USERNAME_ENV, check_credential_pair, resolve_credentials
from llm_platform.registry.client import RegistryClient
from llm_platform.registry.reference import parse_reference
from tests.support.blobs import random_blob
from tests.support.registry import Registry
from tests.support.token_server import TokenServer

PASSWORD = "s3cret-pass"


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenServer]]:
    tokens = TokenServer(tmp_path / "token").start()
    reg = Registry(tmp_path / "token-registry", extra_config=tokens.registry_config()).start()
    yield reg, tokens
    reg.stop()
    tokens.stop()


def creds(user: str = "pusher", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return resolve_credentials("x", username=user, password=password, environ={})


def test_basic_auth_push(auth_registry: Registry) -> None:
    blob = random_blob(200_000)
    with RegistryClient(auth_registry.host, credentials=creds()) as client:
        client.ping()
        client.upload_blob("team/model", blob)
        assert client.blob_size("team/model", blob.digest) == blob.size


@pytest.mark.parametrize("password", ["wrong-pass", None])
def test_basic_auth_rejected_or_missing_is_a_clear_error_without_the_secret(
    auth_registry: Registry, password: str | None
) -> None:
    credentials = creds(password=password) if password else None
    with (
        RegistryClient(auth_registry.host, credentials=credentials, retries=0) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.ping()
    message = str(err.value)
    assert "authentication failed" in message and auth_registry.host in message
    assert ("user 'pusher'" in message) == bool(password) and ("anonymous" in message) == (not password)
    assert "wrong-pass" not in message and "wrong-pass" not in repr(credentials)


def test_token_flow_push_and_mount_get_scoped_tokens(token_registry: tuple[Registry, TokenServer]) -> None:
    reg, tokens = token_registry
    blob = random_blob(500_000)
    with RegistryClient(reg.host, credentials=creds()) as client:
        client.ping()
        assert client.blob_size("team/source", blob.digest) is None
        client.upload_blob("team/source", blob)
        assert client.mount_blob("team/target", blob.digest, "team/source")
        assert client.blob_size("team/target", blob.digest) == blob.size
    scopes = [s for r in tokens.requests for s in r["scopes"]]  # type: ignore[attr-defined]
    assert "repository:team/source:pull,push" in scopes
    assert {"repository:team/source:pull", "repository:team/target:pull,push"} <= set(scopes)
    assert all(r["user"] == "pusher" for r in tokens.requests)
    # the pull,push token of team/source also covered the later HEAD: no token request per call
    assert len(tokens.requests) <= 4


def test_token_flow_wrong_password_and_anonymous(token_registry: tuple[Registry, TokenServer]) -> None:
    reg, _ = token_registry
    blob = random_blob(1000)
    with (
        RegistryClient(reg.host, credentials=creds(password="nope-nope"), retries=0) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.upload_blob("team/model", blob)
    assert "token service" in str(err.value) and "refused user 'pusher'" in str(err.value)
    assert "nope-nope" not in str(err.value)
    with RegistryClient(reg.host, retries=0) as anonymous, pytest.raises(RegistryError) as err:
        anonymous.upload_blob("team/model", blob)
    assert "authentication failed" in str(err.value) and "anonymous" in str(err.value)


def test_credentials_sources(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"fileuser:file-secret").decode()
    docker_dir = tmp_path / "docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {"reg.example:5000": {"auth": encoded}}}))
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hub-secret").decode()}
                }
            }
        )
    )

    env = {"DOCKER_CONFIG": str(docker_dir), "HOME": str(tmp_path)}
    found = resolve_credentials("reg.example:5000", environ=env)
    assert found and found.username == "fileuser" and found.password.get_secret_value() == "file-secret"
    assert found.source == str(docker_dir / "config.json")
    assert "file-secret" not in repr(found) and "file-secret" not in str(found)
    assert resolve_credentials("other.example", environ=env) is None

    hub = resolve_credentials("docker.io", environ={**env, "REGISTRY_AUTH_FILE": str(auth_file)})
    assert hub and hub.username == "hubuser"

    from_env = resolve_credentials("reg.example:5000", environ={**env, USERNAME_ENV: "u", PASSWORD_ENV: "p"})
    assert from_env and (from_env.username, from_env.source) == ("u", "environment")
    flags = resolve_credentials("reg.example:5000", username="f", password="pw", environ=env)
    assert flags and flags.source == "command line"
    with pytest.raises(InputError, match="--username f: give the password with --password-stdin"):
        resolve_credentials("reg.example:5000", username="f", environ=env)
    taken = resolve_credentials("reg.example:5000", username="f", environ={**env, PASSWORD_ENV: "from-env"})
    assert taken and taken.password.get_secret_value() == "from-env"
    with pytest.raises(InputError, match=r"--password-stdin or .* needs --username"):
        resolve_credentials("reg.example:5000", password="pw", environ=env)

    (docker_dir / "config.json").write_text('{"auths": {\n  "x": }')
    with pytest.raises(InputError) as err:
        resolve_credentials("reg.example:5000", environ=env)
    assert str(docker_dir / "config.json") in str(err.value) and "line 2" in str(err.value)


def test_one_credential_rule_for_every_front_door() -> None:
    """The CLI and the Dagger function apply the same rule, naming their own flag."""
    check_credential_pair("u", True, password_flag="--password")
    check_credential_pair(None, False, password_flag="--password")
    with pytest.raises(InputError, match=r"^--password needs --username"):
        check_credential_pair(None, True, password_flag="--password")
    with pytest.raises(InputError, match=r"^--username u: give the password with --password$"):
        check_credential_pair("u", False, password_flag="--password")
    with pytest.raises(InputError, match="empty user name"):
        check_credential_pair("", True, password_flag="--password")


def test_reference_parsing_and_normalisation() -> None:
    ref = parse_reference("busybox")
    assert (ref.registry, ref.repository, ref.tag, ref.api_host) == (
        "docker.io",
        "library/busybox",
        None,
        "registry-1.docker.io",
    )
    full = parse_reference("us-central1-docker.pkg.dev/proj/modelcars/qwen:v1@sha256:" + "a" * 64)
    assert (full.registry, full.repository, full.tag) == (
        "us-central1-docker.pkg.dev",
        "proj/modelcars/qwen",
        "v1",
    )
    assert (
        str(full.with_digest("sha256:" + "b" * 64))
        == "us-central1-docker.pkg.dev/proj/modelcars/qwen@sha256:" + "b" * 64
    )
    assert parse_reference("localhost:5000/a/b").registry == "localhost:5000"
    assert parse_reference("127.0.0.1:5000/a:tag").tag == "tag"
    for bad in ["", "http://x/y", "Reg.io/UPPER", "reg.io/a@sha256:short", "reg.io/a:bad tag"]:
        with pytest.raises(InputError):
            parse_reference(bad, what="--to")
