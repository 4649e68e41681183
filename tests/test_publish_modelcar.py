"""`modelcar publish` end to end against a real docker-registry: pull with skopeo, run with podman as a KServe
modelcar, incremental re-publish, one changed file, a registry killed mid-push."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from llm_platform.cli import main
from llm_platform.errors import RegistryError
from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.modelcar.publish import PushOptions, publish_modelcar
from llm_platform.modelcar.tar_layer import layer_size
from llm_platform.registry.policy import MiB
from llm_platform.registry.progress import UploadProgress
from tests.support.images import BaseLayout, Podman, skopeo_copy
from tests.support.publish_fixtures import AccessLog, demo_model_dir, generated_model
from tests.support.registry import Registry
from tests.support.tools import require_tool, run


def publish_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["modelcar", "publish", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_publish_pulls_with_skopeo_runs_as_kserve_modelcar_and_republishes_nothing(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    podman: Podman,
    capsys: pytest.CaptureFixture[str],
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_PLATFORM_CACHE_DIR", str(tmp_path / "cache"))
    spec = repo_root / "modelcars" / "minilm-demo.yaml"
    model = demo_model_dir()
    target = f"{registry.host}/modelcars/minilm-demo"
    log = AccessLog(registry)

    code, out, err = publish_cli(
        capsys, str(spec), "--source-dir", str(model), "--base", busybox_layout.ref, "--to", target
    )
    assert code == 0, err
    built = build_layout(
        SourceOptions(spec=spec, source_dir=model, base=busybox_layout.ref), output=tmp_path / "built"
    )
    assert out == f"{target}@{built.manifest_digest}\n"  # exactly one line: the build's digest, pinned
    reference = out.strip()
    assert "pushed models/model.safetensors" in err

    # The default human tag points at the same manifest.
    tag_ref = f"docker://{target}:minilm-demo-1110a243fdf4"
    pulled = tmp_path / "pulled"
    skopeo_copy(
        f"docker://{reference}", f"oci:{pulled}:modelcar", "--src-tls-verify=false", "--preserve-digests"
    )
    assert json.loads((pulled / "index.json").read_text())["manifests"][0]["digest"] == built.manifest_digest
    by_tag = run(
        [require_tool("skopeo"), "inspect", "--tls-verify=false", "--format", "{{.Digest}}", tag_ref]
    )
    assert by_tag.stdout.strip() == built.manifest_digest

    # KServe's modelcar contract: the init container checks /models, the sidecar links /proc/$$/root/models
    # to /mnt/models (shareProcessNamespace) and the runtime reads the weights through that link.
    image = podman.pull_layout(pulled, "modelcar")
    expected = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    init = podman(
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        '[ -d /models ] && [ "$(ls -A /models)" ] && echo OK || echo "NOK modelcar is invalid"',
    )
    assert init.stdout.strip() == "OK"
    emptydir = tmp_path / "emptydir"  # /mnt in the pod: an emptyDir, mode 0777 as the kubelet makes it
    emptydir.mkdir()
    emptydir.chmod(0o777)
    sidecar = podman(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{emptydir}:/mnt",
        image,
        "sh",
        "-c",
        "ln -sf /proc/$$/root/models /mnt/models && readlink /mnt/models && "
        "sha256sum /mnt/models/model.safetensors",
    )
    link, checksum = sidecar.stdout.strip().splitlines()
    assert link.startswith("/proc/") and link.endswith("/root/models")
    assert checksum.split()[0] == expected

    # Second publish: nothing uploaded (the registry's own log says so), same reference printed.
    log.mark()
    code, out, err = publish_cli(
        capsys, str(spec), "--source-dir", str(model), "--base", busybox_layout.ref, "--to", target, "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["reference"] == reference
    assert result["bytes_uploaded"] == 0 and result["blobs_uploaded"] == 0
    assert result["layers_known_without_reading"] == 11
    assert log.blob_uploads() == []


@pytest.mark.parametrize("use_cache", [True, False], ids=["digest-cache", "fresh-runner-no-cache"])
def test_one_changed_file_uploads_only_its_layer(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    use_cache: bool,
) -> None:
    """With the digest cache unchanged files are not even read; without it (a fresh CI runner) they are
    hashed and found in the registry. Either way only the changed file's layer and the config move."""
    files = {f"model-0000{i}-of-00005.safetensors": (i + 1) * 700_000 for i in range(5)}
    files["config.json"] = 1234
    model = generated_model(tmp_path, "tiny-model", files)
    target = f"{registry.host}/modelcars/tiny-model"
    source = SourceOptions(
        spec=model.spec,
        source_dir=model.source,
        base=busybox_layout.ref,
        cache_dir=tmp_path / "cache" if use_cache else None,
    )
    first = publish_modelcar(source, PushOptions(target=target))
    assert first.blobs_uploaded == 8  # base layer, 6 files, config

    changed = "model-00003-of-00005.safetensors"
    model.rewrite(changed, seed=99)
    log = AccessLog(registry)
    log.mark()
    second = publish_modelcar(source, PushOptions(target=target))
    built = build_layout(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref),
        output=tmp_path / "built",
    )
    assert second.digest == built.manifest_digest != first.digest
    manifest = json.loads((tmp_path / "built" / "blobs" / "sha256" / built.manifest_digest[7:]).read_bytes())
    new_layer = next(
        layer
        for layer in manifest["layers"]
        if layer.get("annotations", {}).get("io.llm-platform.modelcar.file.path") == changed
    )
    # Only the changed file's layer and the new config moved; the registry committed exactly those two.
    assert sorted(log.committed_digests()) == sorted([new_layer["digest"], manifest["config"]["digest"]])
    assert second.bytes_uploaded == layer_size([(changed, files[changed])]) + manifest["config"]["size"]
    assert second.layers_known_without_reading == (5 if use_cache else 0)  # with the cache: not even read
    assert second.blobs_present == 6  # base layer and five unchanged files


def test_registry_killed_mid_push_then_republish_uploads_only_what_was_missing(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    files = {"a.safetensors": 6 * MiB, "b.safetensors": 5 * MiB, "c.safetensors": 4 * MiB, "config.json": 777}
    model = generated_model(tmp_path, "kill-test", files)
    target = f"{registry.host}/modelcars/kill-test"
    source = SourceOptions(
        spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=tmp_path / "cache"
    )
    push = PushOptions(target=target, concurrency=1, chunk_size=1 * MiB)
    moved = [0]
    killed = threading.Event()

    class KillAfter8MiB(UploadProgress):
        def advance(self, key: str, count: int) -> None:
            super().advance(key, count)
            moved[0] += count
            if moved[0] >= 8 * MiB and not killed.is_set():
                killed.set()
                registry.stop(kill=True)

    with pytest.raises(RegistryError) as err:
        publish_modelcar(
            source,
            push.model_copy(update={"retries": 2, "backoff": 0.05}),
            progress=KillAfter8MiB(tty=False, interval=999),
        )
    assert killed.is_set() and "unreachable" in str(err.value)

    registry.start()
    built = build_layout(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref),
        output=tmp_path / "built",
    )
    manifest = json.loads((tmp_path / "built" / "blobs" / "sha256" / built.manifest_digest[7:]).read_bytes())
    from llm_platform.registry.client import RegistryClient

    with RegistryClient(registry.host) as client:
        missing = [
            d
            for d in [manifest["config"], *manifest["layers"]]
            if client.blob_size("modelcars/kill-test", d["digest"]) is None
        ]
    assert 0 < len(missing) < len(manifest["layers"]) + 1  # the first layer made it, the rest did not

    log = AccessLog(registry)
    log.mark()
    result = publish_modelcar(source, push)
    assert result.digest == built.manifest_digest
    assert sorted(log.committed_digests()) == sorted(d["digest"] for d in missing)
    assert result.bytes_uploaded == sum(d["size"] for d in missing)


def test_layer_over_the_limit_is_refused_before_any_upload(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = generated_model(tmp_path, "too-big", {"big.safetensors": 2 * MiB + 1, "config.json": 10})
    log = AccessLog(registry)
    log.mark()
    code, out, err = publish_cli(
        capsys,
        str(model.spec),
        "--source-dir",
        str(model.source),
        "--base",
        busybox_layout.ref,
        "--to",
        f"{registry.host}/m/too-big",
        "--max-layer-size-mib",
        "2",
    )
    assert code == 1 and out == ""
    assert "models/big.safetensors" in err and "layer limit" in err and "nothing was uploaded" in err
    assert log.since_mark() == []


def test_mount_from_another_repository_moves_no_layer_bytes(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    model = generated_model(tmp_path, "mounted", {"w.safetensors": 2 * MiB, "config.json": 99})
    source = SourceOptions(
        spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=tmp_path / "cache"
    )
    first = publish_modelcar(source, PushOptions(target=f"{registry.host}/team-a/mounted"))
    log = AccessLog(registry)
    log.mark()
    second = publish_modelcar(
        source,
        PushOptions(target=f"{registry.host}/team-b/mounted", mount_from=[f"{registry.host}/team-a/mounted"]),
    )
    assert second.digest == first.digest
    assert second.blobs_mounted == 4 and second.blobs_uploaded == 0 and second.bytes_uploaded == 0
    assert not [e for e in log.since_mark() if e[0] in ("PATCH", "PUT") and "/blobs/" in e[1]]


def test_republish_of_an_image_whose_blob_went_missing_uploads_that_blob(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    """A re-push of an image the repository holds skips the per-blob checks and only verifies; when the
    verification finds a blob gone (deleted, garbage-collected), the full push puts back just that blob."""
    model = generated_model(
        tmp_path, "holey", {"a.safetensors": 3 * MiB, "b.safetensors": 2 * MiB, "config.json": 50}
    )
    target = f"{registry.host}/modelcars/holey"
    source = SourceOptions(
        spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=tmp_path / "cache"
    )
    first = publish_modelcar(source, PushOptions(target=target))

    log = AccessLog(registry)
    log.mark()
    again = publish_modelcar(source, PushOptions(target=target))
    assert again.digest == first.digest and again.bytes_uploaded == 0 and again.blobs_present == 5
    assert not [e for e in log.since_mark() if e[0] != "HEAD" and "/blobs/" in e[1]]

    manifest = json.loads(registry.blob_path(first.digest).read_bytes())
    gone = next(
        layer
        for layer in manifest["layers"]
        if layer.get("annotations", {}).get("io.llm-platform.modelcar.file.path") == "b.safetensors"
    )
    from llm_platform.registry.client import RegistryClient

    with RegistryClient(registry.host) as client:
        response = client._http.delete(f"/v2/modelcars/holey/blobs/{gone['digest']}")
        assert response.status_code == 202
        assert client.blob_size("modelcars/holey", gone["digest"]) is None

    log.mark()
    repaired = publish_modelcar(source, PushOptions(target=target))
    assert repaired.digest == first.digest
    assert log.committed_digests() == [gone["digest"]]
    assert repaired.blobs_uploaded == 1 and repaired.bytes_uploaded == gone["size"]


def test_unchanged_republish_makes_one_existence_check_per_blob_and_three_manifest_and_tag_requests(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    """The warm path, counted at the registry: no upload, one HEAD per distinct blob (base layer, 3 files,
    config), and three requests for the image itself: the tag list, the HEAD of the tag, the GET of the
    manifest it resolves to (whose bytes are then known, so verification does not fetch them again)."""
    model = generated_model(
        tmp_path, "warm", {"a.safetensors": 2 * MiB, "b.safetensors": MiB, "config.json": 40}
    )
    target = f"{registry.host}/modelcars/warm"
    source = SourceOptions(
        spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=tmp_path / "cache"
    )
    first = publish_modelcar(source, PushOptions(target=target))
    log = AccessLog(registry)
    log.mark()
    again = publish_modelcar(source, PushOptions(target=target))
    requests = log.since_mark()
    assert again.digest == first.digest and again.bytes_uploaded == 0 and again.blobs_uploaded == 0
    blob_heads = sorted(
        path.rsplit("/", 1)[1] for method, path, _ in requests if method == "HEAD" and "/blobs/" in path
    )
    manifest = json.loads(registry.blob_path(first.digest).read_bytes())
    assert blob_heads == sorted(d["digest"] for d in [manifest["config"], *manifest["layers"]])
    image_requests = sorted(
        (method, path.split("?")[0]) for method, path, _ in requests if "/blobs/" not in path
    )
    assert image_requests == sorted(
        [
            ("GET", "/v2/modelcars/warm/tags/list"),
            ("HEAD", f"/v2/modelcars/warm/manifests/{again.tags[0]}"),
            ("GET", f"/v2/modelcars/warm/manifests/{first.digest}"),
        ]
    )
    assert len(requests) == 5 + 3
