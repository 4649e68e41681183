"""Every failed or unverified publish ends with one clear error, a non-zero exit and nothing on stdout;
and authenticated publishing works (basic auth, the bearer-token flow)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_platform.cli import main
from llm_platform.registry.client import RegistryClient
from tests.support.fault_proxy import FaultProxy
from tests.support.images import BaseLayout
from tests.support.publish_fixtures import GeneratedModel, generated_model, publish_argv
from tests.support.registry import Registry, free_port
from tests.support.token_server import TokenServer

PASSWORD = "s3cret-pass"


@pytest.fixture
def model(tmp_path: Path) -> GeneratedModel:
    return generated_model(
        tmp_path, "fail-model", {"weights.safetensors": 3 * 1024 * 1024 + 5, "config.json": 321}
    )


@pytest.fixture
def proxy_factory(registry: Registry) -> Iterator[list[FaultProxy]]:
    proxies: list[FaultProxy] = []
    yield proxies
    for proxy in proxies:
        proxy.stop()


def publish(
    capsys: pytest.CaptureFixture[str], model: GeneratedModel, base: BaseLayout, to: str, *extra: str
) -> tuple[int, str, str]:
    code = main(publish_argv(model, base.ref, to, "--retries", "1", "--no-cache", *extra))
    out, err = capsys.readouterr()
    return code, out, err


def tags(host: str, repository: str) -> list[str]:
    with RegistryClient(host) as client:
        return client.list_tags(repository)


@pytest.mark.parametrize("how", ["flags", "env"])
def test_wrong_credentials(
    auth_registry: Registry,
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    monkeypatch.setenv("HOME", str(model.source.parent))  # no auth file of the machine's user
    if how == "flags":
        monkeypatch.setattr("sys.stdin", io.StringIO("not-the-password\n"))
        extra = ["--username", "pusher", "--password-stdin"]
    else:
        monkeypatch.setenv("LLM_PLATFORM_REGISTRY_USERNAME", "pusher")
        monkeypatch.setenv("LLM_PLATFORM_REGISTRY_PASSWORD", "not-the-password")
        extra = []
    code, out, err = publish(capsys, model, busybox_layout, f"{auth_registry.host}/m/fail-model", *extra)
    assert (code, out) == (1, "")
    assert "authentication failed" in err and "user 'pusher'" in err
    assert "not-the-password" not in err


def test_basic_auth_publish_with_password_from_stdin(
    auth_registry: Registry,
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = publish(
        capsys,
        model,
        busybox_layout,
        f"{auth_registry.host}/m/fail-model:v1",
        "--username",
        "pusher",
        "--password-stdin",
    )
    assert code == 0, err
    assert out.startswith(f"{auth_registry.host}/m/fail-model@sha256:") and out.count("\n") == 1
    assert PASSWORD not in err


def test_token_flow_publish_and_refusal(
    tmp_path: Path,
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = TokenServer(tmp_path / "tokens").start()
    reg = Registry(tmp_path / "token-registry", extra_config=tokens.registry_config()).start()
    try:
        monkeypatch.setenv("LLM_PLATFORM_REGISTRY_USERNAME", "pusher")
        monkeypatch.setenv("LLM_PLATFORM_REGISTRY_PASSWORD", PASSWORD)
        code, out, err = publish(capsys, model, busybox_layout, f"{reg.host}/team/fail-model")
        assert code == 0, err
        assert out.startswith(f"{reg.host}/team/fail-model@sha256:")
        assert any("repository:team/fail-model:pull,push" in r["scopes"] for r in tokens.requests)

        monkeypatch.setenv("LLM_PLATFORM_REGISTRY_PASSWORD", "wrong")
        code, out, err = publish(capsys, model, busybox_layout, f"{reg.host}/team/fail-model")
        assert (code, out) == (1, "") and "token service" in err and "refused user 'pusher'" in err
    finally:
        reg.stop()
        tokens.stop()


def test_unreachable_registry(
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = publish(capsys, model, busybox_layout, f"127.0.0.1:{free_port()}/m/fail-model")
    assert (code, out) == (1, "")
    assert "unreachable" in err and "Connection refused" in err


@pytest.mark.parametrize(("status", "every_time"), [(400, False), (500, True), (500, False)])
def test_registry_rejecting_a_blob(
    registry: Registry,
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    proxy_factory: list[FaultProxy],
    status: int,
    every_time: bool,
) -> None:
    """A 400 fails at once; a 500 is retried (the upload restarts) and fails only when it persists."""
    proxy = FaultProxy(
        registry.host,
        rule=lambda m, p, n: (
            status if m == "PUT" and "/blobs/uploads/" in p and (every_time or n == 0) else None
        ),
    ).start()
    proxy_factory.append(proxy)
    code, out, err = publish(capsys, model, busybox_layout, f"{proxy.host}/m/fail-model")
    if status == 500 and not every_time:
        assert code == 0 and out.startswith(f"{proxy.host}/m/fail-model@sha256:"), err
        return
    assert (code, out) == (1, "")
    assert f"HTTP {status} INJECTED" in err
    assert tags(registry.host, "m/fail-model") == []  # no manifest, no tag


def test_digest_mismatch_in_transit(
    registry: Registry,
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    proxy_factory: list[FaultProxy],
) -> None:
    proxy = FaultProxy(registry.host, corrupt_uploads=True).start()
    proxy_factory.append(proxy)
    code, out, err = publish(capsys, model, busybox_layout, f"{proxy.host}/m/fail-model")
    assert (code, out) == (1, "")
    assert "DIGEST_INVALID" in err
    assert tags(registry.host, "m/fail-model") == []


def test_served_manifest_not_matching_is_not_verified(
    registry: Registry,
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
    proxy_factory: list[FaultProxy],
) -> None:
    proxy = FaultProxy(registry.host, tamper_manifests=True).start()
    proxy_factory.append(proxy)
    code, out, err = publish(capsys, model, busybox_layout, f"{proxy.host}/m/fail-model")
    assert (code, out) == (1, "")
    assert "hashes to" in err
    assert tags(registry.host, "m/fail-model") == []  # unverified: the human tag was never pushed


def test_bad_target_is_an_input_error(
    model: GeneratedModel,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = publish(capsys, model, busybox_layout, "127.0.0.1:5000/Bad/Repo")
    assert (code, out) == (2, "") and "--to" in err
    code, out, err = publish(capsys, model, busybox_layout, "127.0.0.1:5000/a/b@sha256:" + "0" * 64)
    assert (code, out) == (2, "") and "not a digest" in err
