"""`modelcar publish` without --source-dir: every file streams from the hub (the loopback stand-in, through the
real huggingface_hub client) into its layer upload on the real local registry, in one pass, never on disk.

The image is the build's, byte for byte; a wrong byte from the hub fails before the upload is committed and
leaves no manifest and no tag; a hub cut resumes with a Range request at the first byte not yet sent, a
registry restart mid-upload at the offset the registry reports, each sending only what is missing (counted);
429 and 5xx from either side are retried within the bounds; a registry without chunked uploads gets the file
read twice or spooled; the disk a multi-GiB publish uses is measured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest

from llm_platform.dagger_module.commands import modelcar_publish_argv
from llm_platform.errors import PlatformError
from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.layer_stream import CHECKPOINT_BYTES
from llm_platform.modelcar.prepare import SourceOptions, prepare
from llm_platform.modelcar.publish import PushOptions, publish_modelcar
from llm_platform.registry.client import RegistryClient
from llm_platform.registry.policy import MiB, UploadMode
from llm_platform.registry.progress import UploadProgress
from tests.support import hf_hub as hub_support
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.hf_hub import HubFault, HubRepo, HubServer
from tests.support.images import BaseLayout
from tests.support.publish_fixtures import AccessLog, write_pattern
from tests.support.registry import Registry

hf_hub = hub_support.hf_hub

CLI = str(Path(sys.executable).parent / "llm-platform")
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
REPO = "example-org/stream-model"
TOKEN = "hf_StreamToken_never_shown_31"
BIG = "model-00001-of-00002.safetensors"
SMALL = "model-00002-of-00002.safetensors"
FILES = {
    "config.json": 321,
    "tokenizer/tokenizer.json": 40_000,
    BIG: 12 * MiB + 7,
    SMALL: 3 * MiB + 5,
}
SPEC = """\
huggingface:
  repo: {repo}
  revision: {commit}
  allow_patterns: ["*"]
  ignore_patterns: []
image:
  repository: registry.example.com/modelcars/stream-model
serving:
  served_model_name: stream-model
"""


def point_hub_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """What HF_ENDPOINT sets when huggingface_hub is imported, for this process."""
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )


def make_files(root: Path, sizes: dict[str, int]) -> dict[str, Path]:
    return {
        path: _written(root / path, size, seed) for seed, (path, size) in enumerate(sorted(sizes.items()))
    }


def _written(path: Path, size: int, seed: int) -> Path:
    write_pattern(path, size, seed)
    return path


@pytest.fixture
def model(tmp_path: Path) -> dict[str, Path]:
    """The model's files on disk: what the stand-in serves, and what `modelcar build --source-dir` reads."""
    return make_files(tmp_path / "weights", FILES)


@pytest.fixture
def hub(hf_hub: HubServer, model: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> HubServer:
    hf_hub.add(HubRepo(REPO, COMMIT, dict(model), branches={"main": COMMIT}, redirect_lfs=True))
    point_hub_at(monkeypatch, hf_hub.endpoint)
    return hf_hub


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "modelcars" / "stream-model.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPEC.format(repo=REPO, commit=COMMIT))
    return path


def built_manifest(spec: Path, model: dict[str, Path], base: BaseLayout, out: Path) -> dict[str, object]:
    """`modelcar build` of the same files from a directory: the image a streamed publish must equal."""
    source_dir = next(iter(model.values())).parent
    while not all(p.is_relative_to(source_dir) for p in model.values()):
        source_dir = source_dir.parent
    result = build_layout(SourceOptions(spec=spec, source_dir=source_dir, base=base.ref), output=out)
    manifest = json.loads((out / "blobs" / "sha256" / result.manifest_digest[7:]).read_bytes())
    manifest["digest"] = result.manifest_digest
    return manifest


def layer_of(manifest: dict[str, object], path: str) -> dict[str, object]:
    return next(
        layer
        for layer in manifest["layers"]  # type: ignore[attr-defined]
        if layer.get("annotations", {}).get("io.llm-platform.modelcar.file.path") == path
    )


def all_blob_bytes(manifest: dict[str, object]) -> int:
    return sum(d["size"] for d in [manifest["config"], *manifest["layers"]])  # type: ignore[index, misc]


def source(spec: Path, base: BaseLayout, timeout: float | None = None) -> SourceOptions:
    return SourceOptions(spec=spec, base=base.ref, timeout=timeout)


def requests_for(hub: HubServer, path: str) -> list[int]:
    return [start for name, start in hub.file_requests if name == path]


def test_streamed_publish_is_the_build_image_and_writes_nothing_through_the_dagger_argv(
    tmp_path: Path,
    hub: HubServer,
    model: dict[str, Path],
    spec: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    """The Dagger module's command line (no --source-dir: no model directory in the engine), run for real."""
    hub.repos[REPO].private_token = TOKEN
    hf_home = tmp_path / "hf-home"
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(hf_home),
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "LLM_PLATFORM_CACHE_DIR": str(tmp_path / "cache"),
    }
    argv = modelcar_publish_argv(str(spec), f"{registry.host}/modelcars/stream-model")
    assert "--source-dir" not in argv
    proc = subprocess.run(
        [CLI, "--verbose", *argv[1:], "--base", busybox_layout.ref],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    built = built_manifest(spec, model, busybox_layout, tmp_path / "built")
    assert result["digest"] == built["digest"] and result["hf_commit"] == COMMIT
    assert "streams straight into a chunked upload" in proc.stderr
    # One GET per file, each from its first byte; the LFS files through the storage redirect (X-Linked-Size,
    # X-Xet-Hash), which never sees the token; nothing written to the hub cache.
    assert sorted(hub.file_requests) == sorted((path, 0) for path in FILES)
    assert hub.served == dict(FILES)
    assert len(hub.storage_authorizations) == 2 and set(hub.storage_authorizations) == {None}
    assert [p for p in hf_home.rglob("*") if p.is_file()] == []
    assert result["bytes_uploaded"] == all_blob_bytes(built)


def test_a_multi_gib_publish_uses_under_64_mib_of_disk(
    tmp_path: Path, hf_hub: HubServer, spec: Path, busybox_layout: BaseLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 GiB of shards served by the stand-in from disk; the registry's storage on a tmpfs, so that what the
    publish process writes to the disk is its own: sampled while it runs, as the size of every directory it may
    write (home, hub cache, digest cache, temp dir, working dir) and as the bytes it made the kernel write to
    storage (/proc/PID/io write_bytes)."""
    sizes = {"config.json": 500, **{f"model-0000{i}-of-00004.safetensors": 512 * MiB for i in range(1, 5)}}
    files = make_files(tmp_path / "weights", sizes)
    hf_hub.add(HubRepo(REPO, COMMIT, dict(files), branches={"main": COMMIT}))
    shm = Path(tempfile.mkdtemp(prefix="publish-disk-", dir="/dev/shm"))
    reg = Registry(shm / "registry").start()
    home = tmp_path / "home"
    writable = {name: home / name for name in ("home", "hf-home", "cache", "tmp", "cwd")}
    for directory in writable.values():
        directory.mkdir(parents=True)
    env = {
        **os.environ,
        "HOME": str(writable["home"]),
        "HF_ENDPOINT": hf_hub.endpoint,
        "HF_HOME": str(writable["hf-home"]),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "LLM_PLATFORM_CACHE_DIR": str(writable["cache"]),
        "TMPDIR": str(writable["tmp"]),
    }

    def du() -> int:
        return sum(p.stat().st_blocks * 512 for p in home.rglob("*") if p.is_file())

    try:
        started = time.monotonic()
        proc = subprocess.Popen(
            [
                CLI,
                "modelcar",
                "publish",
                str(spec),
                "--base",
                busybox_layout.ref,
                "--to",
                f"{reg.host}/modelcars/stream-model",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=writable["cwd"],
            text=True,
        )
        peak_du = peak_written = peak_rss = 0
        while proc.poll() is None:
            try:
                io_lines = Path(f"/proc/{proc.pid}/io").read_text().splitlines()
                status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            except OSError:
                break
            written = next(int(line.split()[1]) for line in io_lines if line.startswith("write_bytes:"))
            rss = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")), 0)
            peak_written, peak_rss = max(peak_written, written), max(peak_rss, rss)
            peak_du = max(peak_du, du())
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, err
        point_hub_at(monkeypatch, hf_hub.endpoint)
        expected = prepare(SourceOptions(spec=spec, source_dir=tmp_path / "weights", base=busybox_layout.ref))
        assert json.loads(out)["digest"] == expected.plan().manifest_digest
        total = sum(sizes.values())
        print(
            f"streamed {total / MiB:.0f} MiB in {elapsed:.1f} s: peak disk {peak_du / MiB:.2f} MiB (du), "
            f"{peak_written / MiB:.2f} MiB written to storage by the process, peak RSS {peak_rss / MiB:.0f} MiB"
        )
        assert hf_hub.served == sizes
        assert peak_du < 64 * MiB and peak_written < 64 * MiB
        assert du() > 0  # the sampler sees what the publish writes: its digest cache, saved at the end
    finally:
        reg.stop()
        shutil.rmtree(shm, ignore_errors=True)


@pytest.mark.parametrize(
    ("corrupt", "mode", "message"),
    [
        (BIG, UploadMode.CHUNKED, rf"{BIG}: sha256 \w+ does not match the recorded \w+"),
        ("config.json", UploadMode.CHUNKED, r"config.json: git blob id \w+ does not match the hub's \w+"),
        (BIG, UploadMode.MONOLITHIC, rf"{BIG}: sha256 \w+ does not match the recorded \w+"),
    ],
    ids=["lfs-sha256-chunked", "git-blob-id", "lfs-sha256-monolithic"],
)
def test_wrong_bytes_from_the_hub_leave_no_manifest_no_tag_and_name_the_file(
    tmp_path: Path,
    hub: HubServer,
    model: dict[str, Path],
    spec: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    corrupt: str,
    mode: UploadMode,
    message: str,
) -> None:
    hub.corrupt.add(corrupt)
    log = AccessLog(registry)
    log.mark()
    with pytest.raises(PlatformError, match=f"huggingface.co/{REPO}@{COMMIT}: {message}") as err:
        publish_modelcar(
            source(spec, busybox_layout),
            PushOptions(target=f"{registry.host}/modelcars/stream-model", upload_mode=mode, retries=1),
        )
    assert "\n" not in str(err.value)
    built = built_manifest(spec, model, busybox_layout, tmp_path / "built")
    good = {d["digest"] for d in [built["config"], *built["layers"]]}  # type: ignore[misc]
    committed = set(log.committed_digests())
    # Whatever was committed is a blob of the right image; never the layer of the wrong file (nor its bytes
    # under any digest), and no manifest, no tag.
    assert committed <= good - {layer_of(built, corrupt)["digest"]}
    assert not [e for e in log.since_mark() if e[0] == "PUT" and "/manifests/" in e[1]]
    with RegistryClient(registry.host) as client:
        assert client.list_tags("modelcars/stream-model") == []


def test_a_hub_cut_mid_file_resumes_with_a_range_request_and_sends_nothing_twice(
    tmp_path: Path,
    hub: HubServer,
    model: dict[str, Path],
    spec: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    cut_at = 5 * MiB + 123
    hub.faults.append(HubFault("get", "drop", after=cut_at, path=BIG))
    result = publish_modelcar(
        source(spec, busybox_layout, timeout=10),
        PushOptions(target=f"{registry.host}/modelcars/stream-model"),
    )
    built = built_manifest(spec, model, busybox_layout, tmp_path / "built")
    assert result.digest == built["digest"]
    assert hub.injected == [("get", "drop", BIG)]
    assert requests_for(hub, BIG) == [0, cut_at]  # resumed exactly where the connection broke
    assert hub.served[BIG] == FILES[BIG]  # no byte of the file sent twice by the hub
    assert result.bytes_uploaded == all_blob_bytes(built)  # and none twice to the registry
    print(f"hub cut at byte {cut_at}: resumed with Range {cut_at}-, {hub.served[BIG]} bytes served in all")


class _Recording(UploadProgress):
    """Per upload: bytes sent, and the offsets it was reset to (a resumed upload's registry offset)."""

    def __init__(self) -> None:
        super().__init__(tty=False, interval=999)
        self.sent: dict[str, int] = {}
        self.after_reset: dict[str, int] = {}
        self.resets: dict[str, list[int]] = {}
        self.labels: dict[str, str] = {}

    def start(self, key: str, label: str, total: int) -> None:
        super().start(key, label, total)
        self.labels[key] = label

    def reset(self, key: str, offset: int) -> None:
        super().reset(key, offset)
        self.resets.setdefault(key, []).append(offset)
        self.after_reset[key] = 0

    def advance(self, key: str, count: int) -> None:
        super().advance(key, count)
        self.sent[key] = self.sent.get(key, 0) + count
        self.after_reset[key] = self.after_reset.get(key, 0) + count


@pytest.fixture
def restartable_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry whose upload sessions survive a restart: the secret that signs their state is fixed."""
    reg = Registry(tmp_path / "restartable", extra_config="  secret: fixed-secret-for-restarts\n").start()
    yield reg
    reg.stop()


def test_a_registry_restart_mid_upload_resumes_at_its_offset_and_reads_the_hub_from_there(
    tmp_path: Path,
    hub: HubServer,
    model: dict[str, Path],
    spec: Path,
    restartable_registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    """The 6th chunk of the largest layer reaches a registry that was killed and started again (same storage):
    the connection drops, the upload's status says 5 MiB are held, the rest is sent from there, and the hub is
    asked for the file from the last checkpoint at or before that offset."""
    registry = restartable_registry
    restarted = threading.Event()

    def rule(method: str, path: str, count: int) -> Fault | None:
        if method == "PATCH" and count == 5 and not restarted.is_set():
            restarted.set()
            registry.stop(kill=True)
            registry.start()
            return Fault(status=0)
        return None

    proxy = FaultProxy(registry.host, rule=rule).start()
    progress = _Recording()
    try:
        result = publish_modelcar(
            source(spec, busybox_layout),
            PushOptions(
                target=f"{proxy.host}/modelcars/stream-model", concurrency=1, chunk_size=MiB, backoff=0.1
            ),
            progress=progress,
        )
    finally:
        proxy.stop()
    assert restarted.is_set()
    built = built_manifest(spec, model, busybox_layout, tmp_path / "built")
    assert result.digest == built["digest"]
    big_key = next(key for key, label in progress.labels.items() if label == f"models/{BIG}")
    big_size = layer_of(built, BIG)["size"]
    assert progress.resets[big_key] == [0, 5 * MiB]  # opened, then resumed where the registry stood
    assert progress.after_reset[big_key] == big_size - 5 * MiB  # only the missing bytes sent again
    header = (
        big_size - FILES[BIG] - len(b"\0" * (-FILES[BIG] % 512)) - 1024
    )  # headers before the file's bytes
    checkpoint = (5 * MiB - header) // CHECKPOINT_BYTES * CHECKPOINT_BYTES
    assert requests_for(hub, BIG) == [0, checkpoint]
    print(
        f"registry restarted after 5 MiB of {big_size}: {progress.after_reset[big_key]} bytes sent after the "
        f"restart; hub asked again from byte {checkpoint} of the file"
    )


def test_429_and_5xx_from_either_side_are_retried_within_the_bounds(
    tmp_path: Path,
    hub: HubServer,
    model: dict[str, Path],
    spec: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
) -> None:
    hub.faults += [
        HubFault("head", "status", status=500, path=BIG),
        HubFault("get", "status", status=503, headers={"Retry-After": "1"}, path=BIG),
        HubFault("get", "status", status=429, headers={"Retry-After": "1"}, path=SMALL),
        HubFault("get", "status", status=502, path="config.json"),
    ]
    first_patch = threading.Event()

    def rule(method: str, path: str, count: int) -> Fault | None:
        if method == "PATCH" and not first_patch.is_set():
            first_patch.set()
            return Fault(status=429, headers={"Retry-After": "1"})
        if method == "PUT" and "/blobs/uploads/" in path and count == 0:
            return Fault(status=503)
        return None

    proxy = FaultProxy(registry.host, rule=rule).start()
    started = time.monotonic()
    try:
        result = publish_modelcar(
            source(spec, busybox_layout, timeout=10),
            PushOptions(target=f"{proxy.host}/modelcars/stream-model", backoff=0.1),
        )
    finally:
        proxy.stop()
    elapsed = time.monotonic() - started
    assert len(hub.injected) == 4 and all(f.times == 0 for f in hub.faults)
    statuses = [status for _, _, status in proxy.seen]
    assert 429 in statuses and 503 in statuses
    assert result.digest == built_manifest(spec, model, busybox_layout, tmp_path / "built")["digest"]
    assert elapsed >= 1.0  # the Retry-Afters were honoured
    print(f"hub 500/503/429/502 and registry 429/503 retried: published in {elapsed:.2f} s")

    # A hub that keeps failing is given up within the retry budget: one line naming the file, no tag.
    hub.faults.append(HubFault("get", "status", status=500, times=None, path=BIG))
    started = time.monotonic()
    with pytest.raises(PlatformError) as err:
        publish_modelcar(
            source(spec, busybox_layout, timeout=1),
            PushOptions(target=f"{registry.host}/modelcars/again", retries=1),
        )
    elapsed = time.monotonic() - started
    assert f"download of {BIG}: the hub answered HTTP 500; gave up after" in str(err.value)
    assert elapsed < 10
    with RegistryClient(registry.host) as client:
        assert client.list_tags("modelcars/again") == []


def test_a_registry_without_chunked_uploads_reads_a_large_file_twice_or_spools_it(
    tmp_path: Path,
    hf_hub: HubServer,
    spec: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A layer over the in-memory limit (16 MiB) whose digest is not known: read once to learn the digest and
    once for the upload, or once into --spool-dir (emptied after); small layers are held in memory (one read)."""
    sizes = {"config.json": 99, "big.safetensors": 17 * MiB, "small.safetensors": 2 * MiB}
    files = make_files(tmp_path / "weights", sizes)
    hf_hub.add(HubRepo(REPO, COMMIT, dict(files), branches={"main": COMMIT}))
    point_hub_at(monkeypatch, hf_hub.endpoint)
    built = built_manifest(spec, files, busybox_layout, tmp_path / "built")
    caplog.set_level("INFO", logger="llm_platform")

    twice = publish_modelcar(
        source(spec, busybox_layout),
        PushOptions(target=f"{registry.host}/m/twice", upload_mode=UploadMode.MONOLITHIC),
    )
    assert twice.digest == built["digest"]
    assert requests_for(hf_hub, "big.safetensors") == [0, 0]
    assert requests_for(hf_hub, "small.safetensors") == [0] and requests_for(hf_hub, "config.json") == [0]
    assert (
        "takes no chunked upload: a hub layer of unknown digest is held in memory up to 16.0 MiB"
        in caplog.text
    )
    assert "read twice" in caplog.text

    hf_hub.file_requests.clear()
    spool = tmp_path / "spool"
    once = publish_modelcar(
        source(spec, busybox_layout),
        PushOptions(target=f"{registry.host}/m/spooled", upload_mode=UploadMode.MONOLITHIC, spool_dir=spool),
    )
    assert once.digest == built["digest"]
    assert sorted(hf_hub.file_requests) == sorted((path, 0) for path in sizes)
    assert f"spooled to {spool}" in caplog.text
    assert list(spool.iterdir()) == []


def test_an_unchanged_republish_downloads_no_lfs_file_and_uploads_nothing(
    tmp_path: Path, hub: HubServer, spec: Path, registry: Registry, busybox_layout: BaseLayout
) -> None:
    target = f"{registry.host}/modelcars/stream-model"
    first = publish_modelcar(source(spec, busybox_layout), PushOptions(target=target))
    hub.file_requests.clear()
    again = publish_modelcar(source(spec, busybox_layout), PushOptions(target=target))
    assert again.digest == first.digest and again.bytes_uploaded == 0
    # Only the small non-LFS files (the hub gives no sha256 for them) are read, to learn their digest.
    assert sorted(name for name, _ in hub.file_requests) == ["config.json", "tokenizer/tokenizer.json"]
