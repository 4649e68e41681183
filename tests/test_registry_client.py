"""The registry client against a real docker-registry on 127.0.0.1: skip, mount, chunked/monolithic, resume."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path

import pytest

from llm_platform.errors import RegistryError
from llm_platform.oci import OCI_MANIFEST
from llm_platform.registry.client import RegistryClient
from llm_platform.registry.policy import MiB, UploadMode, policy_for
from llm_platform.registry.progress import UploadProgress
from tests.support.blobs import FileBlob, MemoryBlob, random_blob
from tests.support.fault_proxy import FaultProxy
from tests.support.registry import Registry


def access_log(reg: Registry) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request the registry logged."""
    entries = []
    for line in reg.log_path.read_text(errors="replace").splitlines():
        match = re.search(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})', line)
        if match:
            entries.append((match.group(1), match.group(2), int(match.group(3))))
    return entries


def stored_blob(reg: Registry, digest: str) -> bytes:
    return reg.blob_path(digest).read_bytes()


def client_for(reg: Registry, **policy: object) -> RegistryClient:
    return RegistryClient(reg.host, policy=policy_for(reg.host, **policy), retries=2, backoff=0.05)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [UploadMode.CHUNKED, UploadMode.MONOLITHIC])
def test_upload_stores_exact_bytes_and_head_skips_after(registry: Registry, mode: UploadMode) -> None:
    blob = random_blob(3 * MiB + 123, chunk=100_000)
    with client_for(registry, upload_mode=mode, chunk_size=1 * MiB) as client:
        assert client.blob_size("demo/a", blob.digest) is None
        sent = client.upload_blob("demo/a", blob)
        assert sent == blob.size
        assert client.blob_size("demo/a", blob.digest) == blob.size
    assert stored_blob(registry, blob.digest) == blob.data
    patches = [e for e in access_log(registry) if e[0] == "PATCH"]
    if mode is UploadMode.CHUNKED:
        assert len(patches) == 4 and all(status == 202 for _, _, status in patches)  # 3 MiB + tail
    else:
        assert patches == []


def test_empty_blob_and_manifest_roundtrip(registry: Registry) -> None:
    config = MemoryBlob(
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
    )
    empty = MemoryBlob(b"")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.digest,
            "size": config.size,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": empty.digest, "size": 0}
        ],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    with client_for(registry) as client:
        client.upload_blob("demo/m", config)
        assert client.upload_blob("demo/m", empty) == 0
        digest = client.put_manifest("demo/m", "v1", body, OCI_MANIFEST)
        assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
        assert client.manifest_digest("demo/m", "v1") == digest
        got, got_digest, media_type = client.get_manifest("demo/m", digest)
        assert (got, got_digest, media_type) == (body, digest, OCI_MANIFEST)
        assert client.get_blob("demo/m", config.digest) == config.data
        client.put_manifest("demo/m", "v2", body, OCI_MANIFEST)
        assert sorted(client.list_tags("demo/m")) == ["v1", "v2"]
        assert client.list_tags("demo/none") == []
        assert client.manifest_digest("demo/m", "missing") is None


def test_cross_repository_mount_moves_no_bytes(registry: Registry) -> None:
    blob = random_blob(2 * MiB)
    with client_for(registry) as client:
        client.upload_blob("team/source", blob)
        before = len(access_log(registry))
        assert client.mount_blob("team/target", blob.digest, "team/source") is True
        assert client.blob_size("team/target", blob.digest) == blob.size
        assert not client.mount_blob("team/other", random_blob(10).digest, "team/source")
    new = access_log(registry)[before:]
    assert not [e for e in new if e[0] in ("PATCH", "PUT")]
    assert any(e[0] == "POST" and "mount=" in e[1] and e[2] == 201 for e in new)


def test_digest_mismatch_is_rejected_with_a_clear_error(registry: Registry) -> None:
    class LyingBlob(MemoryBlob):
        @property
        def digest(self) -> str:
            return "sha256:" + "0" * 64

    with client_for(registry) as client, pytest.raises(RegistryError) as err:
        client.upload_blob("demo/bad", LyingBlob(b"actual content"))
    assert "DIGEST_INVALID" in str(err.value)
    assert client_for(registry).blob_size("demo/bad", "sha256:" + "0" * 64) is None


def test_layer_over_the_registry_limit_is_refused_before_any_request(registry: Registry) -> None:
    before = len(access_log(registry))
    with client_for(registry, max_layer_size=1 * MiB) as client, pytest.raises(RegistryError) as err:
        client.upload_blob("demo/big", random_blob(MiB + 1), label="models/big.safetensors")
    assert "models/big.safetensors" in str(err.value) and "layer limit" in str(err.value)
    assert len(access_log(registry)) == before


def test_builtin_policies() -> None:
    assert policy_for("ghcr.io").upload_mode is UploadMode.MONOLITHIC
    assert policy_for("us-central1-docker.pkg.dev").upload_mode is UploadMode.MONOLITHIC
    ecr = policy_for("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    assert ecr.upload_mode is UploadMode.MONOLITHIC and ecr.max_layer_size == 52_000 * MiB
    assert policy_for("quay.io").upload_mode is UploadMode.CHUNKED
    assert policy_for("127.0.0.1:5000").upload_mode is UploadMode.CHUNKED


def test_unreachable_registry_fails_clearly() -> None:
    from tests.support.registry import free_port

    client = RegistryClient(f"127.0.0.1:{free_port()}", retries=1, backoff=0.01)
    with pytest.raises(RegistryError) as err:
        client.ping()
    assert "unreachable" in str(err.value) and "ConnectError" in str(err.value)


def test_chunked_upload_survives_a_registry_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the registry once 20 MiB moved: retries wait for it, ask the session for its offset (GET → 204
    Range) and resume, or restart the blob when the registry no longer accepts the session; either way the
    stored blob is exact. A fixed `http.secret` keeps upload state valid across the restart."""
    monkeypatch.setenv("REGISTRY_HTTP_SECRET", "test-secret-kept-across-restarts")
    reg = Registry(tmp_path / "reg").start()
    try:
        blob = FileBlob.create(tmp_path / "blob.bin", 48 * MiB, seed=7)
        killed = threading.Event()
        total = [0]

        class KillAt20MiB(UploadProgress):
            def advance(self, key: str, count: int) -> None:
                super().advance(key, count)
                total[0] += count
                if total[0] >= 20 * MiB and not killed.is_set():
                    killed.set()
                    reg.stop(kill=True)
                    threading.Thread(target=lambda: (time.sleep(0.5), reg.start()), daemon=True).start()

        client = RegistryClient(
            reg.host,
            policy=policy_for(reg.host, chunk_size=8 * MiB),
            retries=8,
            backoff=0.3,
            progress=KillAt20MiB(tty=False, interval=999),
        )
        with client:
            sent = client.upload_blob("demo/resume", blob)
            assert client.blob_size("demo/resume", blob.digest) == blob.size
        assert killed.is_set()
        assert blob.size < sent < 2 * blob.size
        data = stored_blob(reg, blob.digest)
        assert hashlib.sha256(data).hexdigest() == blob.digest[7:]
        print(f"sent {sent} bytes for a {blob.size}-byte blob")
    finally:
        reg.stop()


def test_broken_chunk_resumes_at_the_offset_the_registry_reports(registry: Registry) -> None:
    """The third PATCH is lost (connection dropped, nothing forwarded): GET on the session says 0-(2 chunks - 1),
    the client resumes there instead of restarting the blob."""
    chunk = 1 * MiB
    proxy = FaultProxy(
        registry.host, rule=lambda method, path, n: 0 if method == "PATCH" and n == 2 else None
    )
    proxy.start()
    try:
        blob = random_blob(5 * chunk + 17)
        with RegistryClient(
            proxy.host, policy=policy_for(proxy.host, chunk_size=chunk), retries=3, backoff=0.05
        ) as client:
            sent = client.upload_blob("demo/resume", blob)
        assert stored_blob(registry, blob.digest) == blob.data
        assert sent == blob.size + chunk  # only the lost chunk twice
        assert [m for m, _, _ in proxy.seen].count("POST") == 1
        assert any(m == "GET" and "/blobs/uploads/" in p and s == 204 for m, p, s in proxy.seen)
    finally:
        proxy.stop()


@pytest.mark.parametrize("status", [400, 500])
def test_a_registry_that_rejects_the_blob_ends_with_a_clear_error(registry: Registry, status: int) -> None:
    proxy = FaultProxy(
        registry.host,
        rule=lambda method, path, n: status if method == "PUT" and "/blobs/uploads/" in path else None,
    )
    proxy.start()
    try:
        blob = random_blob(300_000)
        with (
            RegistryClient(proxy.host, retries=2, backoff=0.01) as client,
            pytest.raises(RegistryError) as err,
        ):
            client.upload_blob("demo/rejected", blob, label="models/x.safetensors")
        message = str(err.value)
        assert f"HTTP {status} INJECTED" in message
        assert ("gave up after 3 attempts" in message) == (status == 500)
        assert client_for(registry).blob_size("demo/rejected", blob.digest) is None
    finally:
        proxy.stop()


def test_progress_is_live_on_a_tty_and_periodic_lines_otherwise() -> None:
    import io

    tty, plain = io.StringIO(), io.StringIO()
    for stream, is_tty in ((tty, True), (plain, False)):
        progress = UploadProgress(stream, tty=is_tty, interval=0.0)
        progress.start("k", "models/a.safetensors", 4 * MiB)
        for _ in range(4):
            progress.advance("k", MiB)
        progress.finish("k", "pushed")
    assert "\r" in tty.getvalue() and "iB/s" in tty.getvalue() and "(100%)" in tty.getvalue()
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue()
    assert lines[0].startswith("uploading models/a.safetensors 1.0 MiB/4.0 MiB (25%)")
    assert lines[-1].startswith("pushed models/a.safetensors (4.0 MiB, ")


def test_scheme_https_by_default_http_for_insecure_and_loopback() -> None:
    assert RegistryClient("registry.example:5000").base_url == "https://registry.example:5000"
    assert RegistryClient("registry.example:5000", insecure=True).base_url == "http://registry.example:5000"
    assert RegistryClient("localhost:5000").base_url == "http://localhost:5000"
    assert RegistryClient("127.0.0.1:5000").base_url == "http://127.0.0.1:5000"


class _WrongDigest(MemoryBlob):
    """Bytes that do not hash to the digest they claim."""

    @property
    def digest(self) -> str:
        return "sha256:" + "0" * 64


@pytest.mark.parametrize("mode", [UploadMode.CHUNKED, UploadMode.MONOLITHIC])
def test_a_refusal_is_a_structured_error(registry: Registry, mode: UploadMode) -> None:
    """Callers decide on the OCI error code the registry sent, not on the message text."""
    with (
        client_for(registry, upload_mode=mode, chunk_size=1 * MiB) as client,
        pytest.raises(RegistryError) as refused,
    ):
        client.upload_blob("demo/wrong", _WrongDigest(b"x" * 1000))
    error = refused.value
    assert (error.method, error.status, error.codes) == ("PUT", 400, ("DIGEST_INVALID",))
    assert error.url is not None and error.url.startswith(
        f"http://{registry.host}/v2/demo/wrong/blobs/uploads/"
    )
    with client_for(registry) as client, pytest.raises(RegistryError) as missing:
        client.get_manifest("demo/wrong", "no-such-tag")
    assert (missing.value.method, missing.value.status) == ("GET", 404)
    assert "MANIFEST_UNKNOWN" in missing.value.codes or "NAME_UNKNOWN" in missing.value.codes


def test_error_urls_never_carry_credentials() -> None:
    error = RegistryError(
        "x", url="https://user:s3cret@registry.example:5000/v2/a/manifests/b?digest=sha256:1"
    )
    assert error.url == "https://registry.example:5000/v2/a/manifests/b?digest=sha256:1"
    assert RegistryError("x", url="http://[::1]:5000/v2/").url == "http://[::1]:5000/v2/"
