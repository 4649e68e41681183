"""Base images: from a local OCI layout or a real registry (anonymous and basic auth), with the
platform's manifest picked from an image index."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from llm_platform.errors import InputError, PlatformError, RegistryError
from llm_platform.modelcar.base_image import load_base
from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.registry.reference import parse_reference
from tests.support.images import BaseLayout, push_layout, skopeo_copy
from tests.support.registry import Registry
from tests.support.tools import require_tool, run

SPEC = """\
huggingface:
  repo: example/tiny
  revision: v1.0
image:
  repository: registry.example.com/modelcars/tiny
serving:
  served_model_name: tiny
"""


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    source = tmp_path / "weights"
    source.mkdir()
    (source / "config.json").write_text('{"hidden_size": 8}')
    (source / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    return spec, source


def _config(layout: Path, digest: str) -> dict:
    manifest = json.loads((layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes())
    return json.loads(
        (layout / "blobs/sha256" / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes()
    )


def test_registry_base_gives_the_same_image_as_the_layout(
    tmp_path: Path,
    tiny: tuple[Path, Path],
    busybox_layout: BaseLayout,
    registry: Registry,
) -> None:
    spec, source = tiny
    ref = push_layout(busybox_layout, registry.host, "mirror/busybox")
    assert ref.endswith(busybox_layout.manifest_digest())
    from_layout = build_layout(
        SourceOptions(spec=spec, source_dir=source, base=busybox_layout.ref), output=tmp_path / "a"
    )
    from_registry = build_layout(SourceOptions(spec=spec, source_dir=source, base=ref), output=tmp_path / "b")
    assert from_registry.manifest_digest == from_layout.manifest_digest
    assert from_registry.base_digest == busybox_layout.manifest_digest()
    # The base layer was pulled byte for byte.
    assert sorted(p.name for p in (tmp_path / "b/blobs/sha256").iterdir()) == sorted(
        p.name for p in (tmp_path / "a/blobs/sha256").iterdir()
    )


def test_registry_with_basic_auth_uses_the_auth_file(
    tmp_path: Path,
    tiny: tuple[Path, Path],
    busybox_layout: BaseLayout,
    auth_registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec, source = tiny
    skopeo_copy(
        busybox_layout.ref,
        f"docker://{auth_registry.host}/private/busybox:base",
        "--dest-tls-verify=false",
        "--dest-creds",
        "pusher:s3cret-pass",
    )
    digest = busybox_layout.manifest_digest()
    ref = f"{auth_registry.host}/private/busybox@{digest}"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    with pytest.raises(RegistryError, match="registry requires credentials and none were found") as anonymous:
        load_base(ref)
    assert auth_registry.host in str(anonymous.value)
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": base64.b64encode(b"pusher:wrong").decode()}}})
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    with pytest.raises(RegistryError, match="authentication failed") as refused:
        load_base(ref)
    assert "'pusher'" in str(refused.value) and str(auth_file) in str(refused.value)
    assert "wrong" not in str(refused.value)
    auth_file.write_text(
        json.dumps(
            {"auths": {auth_registry.host: {"auth": base64.b64encode(b"pusher:s3cret-pass").decode()}}}
        )
    )
    result = build_layout(SourceOptions(spec=spec, source_dir=source, base=ref), output=tmp_path / "out")
    assert result.base_digest == digest
    assert "s3cret" not in json.dumps(result.model_dump())


def test_registry_errors_are_clear(tmp_path: Path, busybox_layout: BaseLayout, registry: Registry) -> None:
    missing = f"{registry.host}/nothing/here@sha256:{'0' * 64}"
    with pytest.raises(
        RegistryError, match=rf"{re.escape(registry.host)}/nothing/here: manifest sha256:0{{64}} not found"
    ):
        load_base(missing)
    registry.stop()
    # The shared client retries a refused connection a few times before giving up (the push relies on it).
    with pytest.raises(RegistryError, match=rf"{re.escape(registry.host)}.* unreachable \(ConnectError"):
        load_base(missing)
    registry.start()
    with pytest.raises(InputError, match=r"--base .*must be pinned by digest"):
        load_base(f"{registry.host}/nothing/here:latest")
    with pytest.raises(InputError, match=r"--base: .*has an invalid digest"):
        load_base(f"{registry.host}/nothing/here@sha256:short")


def test_platform_is_picked_from_an_image_index(
    tmp_path: Path,
    tiny: tuple[Path, Path],
    multiplatform_layout: Path,
    busybox_layout: BaseLayout,
) -> None:
    spec, source = tiny
    amd = build_layout(
        SourceOptions(spec=spec, source_dir=source, base=f"oci:{multiplatform_layout}:multi"),
        output=tmp_path / "amd",
    )
    arm = build_layout(
        SourceOptions(
            spec=spec, source_dir=source, base=f"oci:{multiplatform_layout}:multi", platform="linux/arm64"
        ),
        output=tmp_path / "arm",
    )
    assert amd.base_digest == busybox_layout.manifest_digest()
    assert arm.base_digest != amd.base_digest and arm.manifest_digest != amd.manifest_digest
    assert _config(tmp_path / "amd", amd.manifest_digest)["architecture"] == "amd64"
    assert _config(tmp_path / "arm", arm.manifest_digest)["architecture"] == "arm64"
    with pytest.raises(
        InputError, match=r"no manifest for platform linux/s390x \(available: linux/amd64, linux/arm64/v8\)"
    ):
        load_base(f"oci:{multiplatform_layout}:multi", "linux/s390x")


def test_platform_mismatch_and_bad_layout_refs(tmp_path: Path, busybox_layout: BaseLayout) -> None:
    with pytest.raises(InputError, match="base image is linux/amd64, not the requested linux/arm64"):
        load_base(busybox_layout.ref, "linux/arm64")
    with pytest.raises(InputError, match="no image tagged 'nope'"):
        load_base(f"oci:{busybox_layout.path}:nope")
    with pytest.raises(InputError, match="not an OCI layout"):
        load_base(f"oci:{tmp_path}")
    # Untagged: a layout with a single image is unambiguous.
    assert load_base(f"oci:{busybox_layout.path}").manifest_digest == busybox_layout.manifest_digest()


def test_a_corrupt_base_blob_is_detected(
    tmp_path: Path, tiny: tuple[Path, Path], busybox_layout: BaseLayout
) -> None:
    spec, source = tiny
    copy = tmp_path / "base"
    shutil.copytree(busybox_layout.path, copy)
    manifest = json.loads(
        (copy / "blobs/sha256" / busybox_layout.manifest_digest().removeprefix("sha256:")).read_bytes()
    )
    layer = copy / "blobs/sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    data = bytearray(layer.read_bytes())
    data[100] ^= 0xFF
    layer.write_bytes(bytes(data))
    with pytest.raises(PlatformError, match="does not match its digest"):
        build_layout(
            SourceOptions(spec=spec, source_dir=source, base=f"oci:{copy}:base"), output=tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()


def test_a_corrupt_registry_layer_is_detected_while_it_streams(
    tmp_path: Path, tiny: tuple[Path, Path], busybox_layout: BaseLayout, registry: Registry
) -> None:
    spec, source = tiny
    ref = push_layout(busybox_layout, registry.host, "mirror/busybox")
    manifest = json.loads(
        (
            busybox_layout.path / "blobs/sha256" / busybox_layout.manifest_digest().removeprefix("sha256:")
        ).read_bytes()
    )
    layer_digest = manifest["layers"][0]["digest"]
    hex_digest = layer_digest.removeprefix("sha256:")
    # The registry serves what its storage holds: flip one byte of the layer there (same size, wrong bytes).
    stored = registry.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF
    stored.write_bytes(bytes(data))
    base = load_base(ref)  # manifest and config are intact; layers are only checked as they stream
    with pytest.raises(RegistryError, match=rf"{re.escape(layer_digest[:19])}.*does not match its digest"):
        b"".join(base.layers[0].open())
    with pytest.raises(RegistryError, match="does not match its digest"):
        build_layout(SourceOptions(spec=spec, source_dir=source, base=ref), output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", None, None),
        (
            "docker.io/library/busybox:1.37.0@sha256:" + "a" * 64,
            "docker.io",
            "library/busybox",
            "1.37.0",
            "sha256:" + "a" * 64,
        ),
        ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", None),
        (
            "us-central1-docker.pkg.dev/p/modelcars/qwen2.5-coder-7b-instruct",
            "us-central1-docker.pkg.dev",
            "p/modelcars/qwen2.5-coder-7b-instruct",
            None,
            None,
        ),
    ],
)
def test_reference_parsing(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("UPPER/case", "invalid repository"),
        ("a//b", "invalid repository"),
        ("host:5000/x@sha256:short", "invalid digest"),
        ("x:bad tag", "invalid tag"),
        ("", "empty image reference"),
        (" busybox", "surrounding whitespace"),
        ("reg.io/" + "a" * 300, "longer than 255 characters"),
    ],
)
def test_bad_references(text: str, problem: str) -> None:
    # An InputError (exit 2) for the CLI, and a ValueError so spec validators report it per field.
    with pytest.raises(InputError, match=f"--base: .*{problem}") as bad:
        parse_reference(text, what="--base")
    assert isinstance(bad.value, ValueError)


def test_registry_index_and_docker_media_types(
    tmp_path: Path,
    tiny: tuple[Path, Path],
    multiplatform_layout: Path,
    busybox_layout: BaseLayout,
    registry: Registry,
) -> None:
    spec, source = tiny
    skopeo = require_tool("skopeo")
    # A multi-platform index in the registry: the platform's manifest is picked remotely.
    skopeo_copy(
        f"oci:{multiplatform_layout}:multi",
        f"docker://{registry.host}/mirror/multi:1",
        "--all",
        "--dest-tls-verify=false",
    )
    index_digest = run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/mirror/multi:1"]
    ).stdout
    ref = f"{registry.host}/mirror/multi@sha256:{hashlib.sha256(index_digest.encode()).hexdigest()}"
    arm = load_base(ref, "linux/arm64")
    amd = load_base(ref)
    assert amd.manifest_digest == busybox_layout.manifest_digest()
    assert arm.config["architecture"] == "arm64" and amd.config["architecture"] == "amd64"

    # A Docker v2 schema 2 base: layers keep their bytes and digests, media types become OCI ones.
    skopeo_copy(
        busybox_layout.ref,
        f"docker://{registry.host}/mirror/docker:1",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
    )
    raw = run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/mirror/docker:1"]
    ).stdout
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    docker_ref = f"{registry.host}/mirror/docker@sha256:{hashlib.sha256(raw.encode()).hexdigest()}"
    result = build_layout(
        SourceOptions(spec=spec, source_dir=source, base=docker_ref), output=tmp_path / "out"
    )
    manifest = json.loads(
        (tmp_path / "out/blobs/sha256" / result.manifest_digest.removeprefix("sha256:")).read_bytes()
    )
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert manifest["layers"][0]["digest"] == json.loads(raw)["layers"][0]["digest"]
    bundle = tmp_path / "bundle"
    subprocess.run(
        [require_tool("umoci"), "unpack", "--image", f"{tmp_path / 'out'}:tiny", str(bundle)],
        check=True,
        capture_output=True,
    )
    assert (bundle / "rootfs/models/model.safetensors").read_bytes() == (
        source / "model.safetensors"
    ).read_bytes()
    assert (bundle / "rootfs/bin/busybox").is_file()
