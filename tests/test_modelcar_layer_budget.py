"""The layer budget (`--max-layers`, the spec's `image.max_layers`, default 127 with the base's layers): the
grouping is deterministic and leaves the largest files a layer each, a shared layer lists every file it holds
with its sha256, the digest is reproducible and unchanged below the budget, a re-publish reuses shared layers
(from the digest cache and from the previous image's annotations), and a 200-file model runs in podman."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_platform.cli import main
from llm_platform.errors import InputError, RegistryError
from llm_platform.modelcar import tar_layer
from llm_platform.modelcar.base_image import load_base
from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.digest_cache import LayerDigestCache
from llm_platform.modelcar.image import plan_image, reuse_from_manifest
from llm_platform.modelcar.layer_budget import DEFAULT_MAX_LAYERS, group_files
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.modelcar.publish import PushOptions, previous_images, publish_modelcar
from llm_platform.modelcar.push import PushCounters, PushTarget, push_image
from llm_platform.modelcar.source import ModelFile, ModelSource
from llm_platform.modelcar.spec import load_spec, load_spec_text, spec_sha256
from llm_platform.oci import (
    ANNOTATION_FILE_PATH,
    ANNOTATION_FILE_SHA256,
    ANNOTATION_FILES,
    ANNOTATION_TITLE,
)
from llm_platform.registry.client import RegistryClient
from tests.support.images import BaseLayout, Podman
from tests.support.publish_fixtures import (
    DEMO_SPEC_TEXT,
    AccessLog,
    GeneratedModel,
    build_argv,
    generated_model,
    publish_argv,
)
from tests.support.registry import Registry
from tests.support.tools import require_tool, run


@pytest.fixture(autouse=True)
def _own_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's default digest cache, for this test only (not the user's)."""
    monkeypatch.setenv("LLM_PLATFORM_CACHE_DIR", str(tmp_path / "default-cache"))


def _never_opened() -> Any:
    raise AssertionError("a file whose layer is known must not be read")


def model_files(sizes: dict[str, int]) -> list[ModelFile]:
    return [ModelFile(path=path, size=size, opener=_never_opened) for path, size in sizes.items()]


def paths_of(layers: Iterable[Iterable[ModelFile]]) -> list[list[str]]:
    return [[f.path for f in layer] for layer in layers]


def by_bytes(path: str) -> bytes:
    return path.encode("utf-8")


def largest_first(sizes: dict[str, int]) -> list[str]:
    """The files from the largest, ties by path: the order in which files keep a layer of their own."""
    return sorted(sizes, key=lambda p: (-sizes[p], by_bytes(p)))


# --- the grouping (pure) ---


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(
    sizes=st.dictionaries(
        st.text("ab/é.", min_size=1, max_size=6), st.integers(0, 40), min_size=1, max_size=60
    ),
    slots=st.integers(1, 30),
    order=st.randoms(use_true_random=False),
)
def test_grouping_is_deterministic_bounded_and_leaves_the_largest_files_alone(
    sizes: dict[str, int], slots: int, order: random.Random
) -> None:
    files = model_files(sizes)
    layers = group_files(files, slots)
    shuffled = list(files)
    order.shuffle(shuffled)
    assert paths_of(group_files(shuffled, slots)) == paths_of(layers)  # whatever order files are listed in

    assert len(layers) == min(len(files), slots)
    flat = [path for layer in paths_of(layers) for path in layer]
    assert sorted(flat) == sorted(sizes)  # every file in exactly one layer
    for layer in paths_of(layers):
        assert layer == sorted(layer, key=by_bytes)
    assert [layer[0] for layer in paths_of(layers)] == sorted(
        (layer[0] for layer in paths_of(layers)), key=by_bytes
    )
    if len(files) <= slots:
        assert paths_of(layers) == [[p] for p in sorted(sizes, key=by_bytes)]  # the image as without a budget
    else:
        # The files with a layer of their own are exactly the largest ones (ties: the first by path).
        alone = [layer[0] for layer in paths_of(layers) if len(layer) == 1]
        assert set(alone) == set(largest_first(sizes)[: len(alone)])


@pytest.mark.unit
def test_160_equal_shards_pair_up_and_the_small_files_share_one_layer() -> None:
    """The issue's case: a model of 160 shards in a budget of 127 (126 model layers beside a one-layer base).
    34 layers hold two shards, 91 shards keep a layer each, and the small files share one with the last shard
    (ties between equal shards go by path): no layer is larger than two shards."""
    shard = 4_000_000_000
    sizes = {f"model-{i:05d}-of-00160.safetensors": shard for i in range(1, 161)}
    small = {
        "config.json": 700,
        "generation_config.json": 200,
        "tokenizer.json": 7_000_000,
        "vocab.json": 2_700_000,
    }
    layers = group_files(model_files({**sizes, **small}), DEFAULT_MAX_LAYERS - 1)
    assert len(layers) == 126
    shards_per_layer = sorted(sum(1 for f in layer if f.size == shard) for layer in layers)
    assert shards_per_layer == [1] * 92 + [2] * 34
    [with_small] = [layer for layer in layers if any(f.size < shard for f in layer)]
    assert {f.path for f in with_small} == {*small, "model-00160-of-00160.safetensors"}
    assert max(sum(f.size for f in layer) for layer in layers) == 2 * shard


# --- the grouped tar layer ---

GROUP = {
    "a.json": b'{"a": 1}\n',
    "shards/deep/x-00001.safetensors": bytes(range(256)) * 5,
    "shards/deep/x-00002.safetensors": b"",
    "shards/y.bin": b"\x01" * 512,
    "tok/vocab.json": b'{"hello": 0}',
    "z-top.txt": b"z",
}


def _grouped(files: dict[str, bytes]) -> bytes:
    ordered = sorted(files, key=by_bytes)
    entries = [(p, len(files[p]), lambda data=files[p]: io.BytesIO(data)) for p in ordered]
    return b"".join(tar_layer.stream_layer(entries))


@pytest.mark.unit
def test_a_shared_layer_is_what_normalised_gnu_tar_makes_of_the_same_files(tmp_path: Path) -> None:
    """Files by path, each after the parent directories the layer does not hold yet (0755 dirs, 0644 files, owner
    0/0, mtime 0): byte-identical to GNU tar given the same member list, and sized before it is streamed."""
    tar = require_tool("tar")
    root = tmp_path / "root"
    members: list[str] = []
    for path in sorted(GROUP, key=by_bytes):
        parts = f"models/{path}".split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth]) + "/"
            if directory not in members:
                members.append(directory)
                (root / directory).mkdir(parents=True, exist_ok=True)
                (root / directory).chmod(0o755)
        members.append(f"models/{path}")
        (root / "models" / path).write_bytes(GROUP[path])
        (root / "models" / path).chmod(0o644)
    subprocess.run(
        [
            tar,
            "--format=ustar",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--mtime=@0",
            "--blocking-factor=1",
            "--no-recursion",
            "-cf",
            str(tmp_path / "gnu.tar"),
            *members,
        ],
        cwd=root,
        check=True,
    )
    layer = _grouped(GROUP)
    assert layer == (tmp_path / "gnu.tar").read_bytes()
    assert len(layer) == tar_layer.layer_size([(p, len(GROUP[p])) for p in sorted(GROUP, key=by_bytes)])


@pytest.mark.unit
def test_a_shared_layer_with_long_and_unicode_names_is_sized_exactly_and_reads_back() -> None:
    files = {("long-" * 30) + ".json": b"long", "ünï/名前.txt": "名前".encode(), "ünï/b.bin": b"\0" * 700}
    layer = _grouped(files)
    assert len(layer) == tar_layer.layer_size([(p, len(files[p])) for p in sorted(files, key=by_bytes)])
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        read = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert read == {f"models/{p}": data for p, data in files.items()}


@pytest.mark.unit
def test_reuse_reads_the_file_list_of_a_shared_layer_and_ignores_one_it_did_not_write() -> None:
    sha = "a" * 64
    listed = json.dumps([{"path": "a.json", "sha256": sha}, {"path": "b/c.json", "sha256": "b" * 64}])

    def layer(annotation: str, digest: str) -> dict[str, Any]:
        return {"digest": digest, "size": 3072, "annotations": {ANNOTATION_FILES: annotation}}

    manifest = {
        "layers": [
            layer(listed, "sha256:" + "1" * 64),
            layer("not json", "sha256:" + "2" * 64),
            layer('{"path": "a.json"}', "sha256:" + "3" * 64),
            layer(json.dumps([{"path": "x", "sha256": "short"}]), "sha256:" + "4" * 64),
            layer("[]", "sha256:" + "5" * 64),
        ]
    }
    assert reuse_from_manifest(manifest) == {
        (("a.json", sha), ("b/c.json", "b" * 64)): ("sha256:" + "1" * 64, 3072)
    }


SPEC_TEXT = DEMO_SPEC_TEXT.format(name="budget")


@pytest.mark.unit
def test_the_spec_field_is_checked_and_an_unset_one_keeps_the_spec_hash() -> None:
    spec = load_spec_text(SPEC_TEXT, source_name="modelcars/budget.yaml")
    assert spec.image.max_layers is None
    # The hash this spec had before image.max_layers existed: its lock stays valid.
    assert spec_sha256(spec) == "c48474e9d2677b2617773271e6bf14de4d7b07d78317c846f8abe4c9606c354f"
    base_line = next(line for line in SPEC_TEXT.splitlines() if line.startswith("  base:"))
    own = load_spec_text(
        SPEC_TEXT.replace(base_line, base_line + "\n  max_layers: 60"), source_name="modelcars/budget.yaml"
    )
    assert own.image.max_layers == 60 and spec_sha256(own) != spec_sha256(spec)
    with pytest.raises(InputError, match=r"^modelcars/budget\.yaml:9: image\.max_layers: "):
        load_spec_text(
            SPEC_TEXT.replace(base_line, base_line + "\n  max_layers: 1"), source_name="modelcars/budget.yaml"
        )


# --- builds ---

# 36 files in directories: with a budget of 10 the three largest (two of them tied) keep a layer each and the
# other 33 share six.
SIZES = {
    **{f"shards/model-{i:05d}-of-00030.safetensors": 4000 + (i * 7919) % 9000 for i in range(1, 31)},
    "shards/model-00007-of-00030.safetensors": 150_000,
    "shards/model-00008-of-00030.safetensors": 150_000,
    "config.json": 700,
    "generation_config.json": 0,
    "tokenizer/tokenizer.json": 90_000,
    "tokenizer/vocab.json": 3000,
    "tokenizer/special_tokens_map.json": 300,
    "tokenizer/tokenizer_config.json": 300,
}


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def manifest_of(layout: Path) -> tuple[str, dict[str, Any]]:
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    return digest, json.loads(blob(layout, digest))


def layer_contents(data: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """(path under /models, sha256) of each file of a layer tar in its order, and the directories it holds."""
    files, directories = [], []
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
            if member.isdir():
                assert member.mode == 0o755
                directories.append(member.name.rstrip("/"))
                continue
            assert member.isfile() and member.mode == 0o644
            assert all(parent in directories for parent in _parents(member.name))  # parents come first
            content = archive.extractfile(member).read()  # type: ignore[union-attr]
            files.append((member.name.removeprefix("models/"), hashlib.sha256(content).hexdigest()))
    return files, directories


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def check_layers(layout: Path, base_layers: int, model: GeneratedModel) -> list[list[str]]:
    """Every model layer's annotations against what its tar holds (sha256 recomputed); the files of each."""
    _, manifest = manifest_of(layout)
    held: list[list[str]] = []
    for layer in manifest["layers"][base_layers:]:
        data = blob(layout, layer["digest"])
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"] and len(data) == layer["size"]
        files, directories = layer_contents(data)
        # A directory once per layer, exactly the parents of the files it holds (as in a layer of one file).
        assert sorted(directories) == sorted({p for path, _ in files for p in _parents(f"models/{path}")})
        notes = layer["annotations"]
        if len(files) == 1:
            [(path, sha)] = files
            assert notes == {
                ANNOTATION_TITLE: f"models/{path}",
                ANNOTATION_FILE_PATH: path,
                ANNOTATION_FILE_SHA256: sha,
            }
        else:
            assert notes == {
                ANNOTATION_FILES: json.dumps(
                    [{"path": p, "sha256": s} for p, s in files], separators=(",", ":")
                )
            }
        for path, sha in files:
            assert sha == hashlib.sha256((model.source / path).read_bytes()).hexdigest()
        held.append([path for path, _ in files])
    return held


def test_a_build_above_the_budget_groups_the_smallest_files_with_exact_annotations(
    tmp_path: Path, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    model = generated_model(tmp_path, "budget", SIZES)
    assert main(build_argv(model, busybox_layout.ref, tmp_path / "ten", "--max-layers", "10", "--json")) == 0
    built = json.loads(capsys.readouterr().out)
    digest, manifest = manifest_of(tmp_path / "ten")
    assert digest == built["manifest_digest"]
    assert len(manifest["layers"]) == 10  # the base's one layer counts
    held = check_layers(tmp_path / "ten", 1, model)
    assert sorted(p for layer in held for p in layer) == sorted(SIZES)
    alone = [layer[0] for layer in held if len(layer) == 1]
    assert set(alone) == set(largest_first(SIZES)[:3])
    config = json.loads(blob(tmp_path / "ten", manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"][1:] == [layer["digest"] for layer in manifest["layers"][1:]]
    # skopeo and umoci (independent readers) agree, and every file lands at /models/<path>.
    inspected = json.loads(run([require_tool("skopeo"), "inspect", f"oci:{tmp_path / 'ten'}:budget"]).stdout)
    assert inspected["Digest"] == digest and len(inspected["Layers"]) == 10
    run([require_tool("umoci"), "unpack", "--image", f"{tmp_path / 'ten'}:budget", str(tmp_path / "bundle")])
    rootfs = tmp_path / "bundle" / "rootfs" / "models"
    assert {p.relative_to(rootfs).as_posix() for p in rootfs.rglob("*") if p.is_file()} == set(SIZES)
    for path in SIZES:
        assert (rootfs / path).read_bytes() == (model.source / path).read_bytes()

    # Reproducible: the same files written in another order with other mtimes and modes give the same image.
    copy = tmp_path / "copy"
    for index, path in enumerate(sorted(SIZES, reverse=True)):
        target = copy / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.source / path, target)
        os.utime(target, (1_000_000 + index * 7777, 2_000_000_000 - index * 3333))
        target.chmod(0o600 if index % 2 else 0o755)
    again = build_layout(
        SourceOptions(spec=model.spec, source_dir=copy, base=busybox_layout.ref, max_layers=10),
        output=tmp_path / "again",
    )
    assert again.manifest_digest == digest

    # The spec's image.max_layers gives the same image; --max-layers overrides it.
    base_line = next(line for line in model.spec.read_text().splitlines() if line.startswith("  base:"))
    model.spec.write_text(model.spec.read_text().replace(base_line, base_line + "\n  max_layers: 10"))
    from_spec = build_layout(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref),
        output=tmp_path / "spec",
    )
    assert from_spec.manifest_digest == digest
    flat = build_layout(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref, max_layers=127),
        output=tmp_path / "flat",
    )
    _, flat_manifest = manifest_of(tmp_path / "flat")
    assert flat.manifest_digest != digest and len(flat_manifest["layers"]) == 1 + len(SIZES)
    assert check_layers(tmp_path / "flat", 1, model) == [[p] for p in sorted(SIZES, key=by_bytes)]


def two_layer_base(source: BaseLayout, dest: Path) -> BaseLayout:
    """The busybox base with one more layer (a file under /etc), made by umoci."""
    umoci = require_tool("umoci")
    shutil.copytree(source.path, dest)
    bundle = dest.parent / "two-layer.bundle"
    run([umoci, "unpack", "--image", f"{dest}:{source.tag}", str(bundle)])
    (bundle / "rootfs" / "etc" / "second-layer").write_text("x\n")
    run([umoci, "repack", "--image", f"{dest}:{source.tag}", str(bundle)])
    shutil.rmtree(bundle)
    return BaseLayout(dest)


def test_the_budget_counts_the_base_layers_and_one_too_small_is_a_user_error(
    tmp_path: Path, busybox_layout: BaseLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    model = generated_model(tmp_path, "budget", SIZES)
    base = two_layer_base(busybox_layout, tmp_path / "base2")
    assert main(build_argv(model, base.ref, tmp_path / "five", "--max-layers", "5")) == 0
    capsys.readouterr()
    _, manifest = manifest_of(tmp_path / "five")
    assert len(manifest["layers"]) == 5
    assert sorted(p for layer in check_layers(tmp_path / "five", 2, model) for p in layer) == sorted(SIZES)

    for argv in (
        build_argv(model, base.ref, tmp_path / "out", "--max-layers", "2"),
        publish_argv(model, base.ref, "127.0.0.1:9/m/budget", "--max-layers", "2"),
    ):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == (
            "llm-platform: error: --max-layers 2: the base image alone has 2 layers; give at least 3 "
            "(the model files need one)\n"
        )
    assert not (tmp_path / "out").exists()
    # From the spec, the error names its file, line and field.
    base_line = next(line for line in model.spec.read_text().splitlines() if line.startswith("  base:"))
    model.spec.write_text(model.spec.read_text().replace(base_line, base_line + "\n  max_layers: 2"))
    assert main(build_argv(model, base.ref, tmp_path / "out")) == 2
    assert f"llm-platform: error: {model.spec}:9: image.max_layers 2: the base image alone has 2 layers" in (
        capsys.readouterr().err
    )


# --- publish ---

PUBLISH_SIZES = {f"part-{i:02d}.bin": 3000 + 1000 * (i % 7) for i in range(20)} | {"big.safetensors": 900_000}


def test_a_republish_reuses_shared_layers_and_a_changed_file_uploads_only_its_layer(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout
) -> None:
    model = generated_model(tmp_path, "budget", PUBLISH_SIZES)
    target = f"{registry.host}/modelcars/budget"
    cache = tmp_path / "cache"
    source = SourceOptions(
        spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=cache, max_layers=6
    )
    first = publish_modelcar(source, PushOptions(target=target))
    assert first.blobs_uploaded == 7  # the base layer, 5 model layers, the config
    manifest = json.loads(registry.blob_path(first.digest).read_bytes())
    grouped = [layer for layer in manifest["layers"] if ANNOTATION_FILES in layer.get("annotations", {})]
    assert len(manifest["layers"]) == 6 and len(grouped) == 4
    # The digest cache holds each shared layer under the (path, size, sha256) of all its files.
    recorded = LayerDigestCache(cache).layers
    for layer in grouped:
        listed = json.loads(layer["annotations"][ANNOTATION_FILES])
        key = "\n".join(f"{e['path']}\0{PUBLISH_SIZES[e['path']]}\0{e['sha256']}" for e in listed)
        assert recorded[key] == layer["digest"]

    log = AccessLog(registry)
    log.mark()
    unchanged = publish_modelcar(source, PushOptions(target=target))
    assert (
        unchanged.digest == first.digest and unchanged.bytes_uploaded == 0 and unchanged.blobs_uploaded == 0
    )
    assert unchanged.layers_known_without_reading == 5
    assert log.blob_uploads() == []

    # One file of a shared layer rewritten (same size, other bytes): that layer and the config move, nothing else.
    victim = json.loads(grouped[1]["annotations"][ANNOTATION_FILES])[0]["path"]
    model.rewrite(victim, seed=99)
    log.mark()
    changed = publish_modelcar(source, PushOptions(target=target))
    built = build_layout(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref, max_layers=6),
        output=tmp_path / "built",
    )
    assert changed.digest == built.manifest_digest != first.digest
    _, new_manifest = manifest_of(tmp_path / "built")
    [new_layer] = [layer for layer in new_manifest["layers"] if layer not in manifest["layers"]]
    assert victim in new_layer["annotations"][ANNOTATION_FILES]
    assert log.committed_digests() == sorted([new_layer["digest"], new_manifest["config"]["digest"]])
    assert changed.bytes_uploaded == new_layer["size"] + new_manifest["config"]["size"]
    assert (
        changed.layers_known_without_reading == 4
    )  # the other shared layers and the big file: not even read
    assert changed.blobs_present == 5


def test_shared_layers_of_the_previous_image_are_reused_without_reading_a_file(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout
) -> None:
    """As from the hub (sha256s known up front, no digest cache): the previous image's file lists make every
    shared layer known, so nothing is opened and nothing uploaded."""
    model = generated_model(tmp_path, "budget", PUBLISH_SIZES)
    first = publish_modelcar(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref, max_layers=6),
        PushOptions(target=f"{registry.host}/modelcars/budget"),
    )
    shas = {p: hashlib.sha256((model.source / p).read_bytes()).hexdigest() for p in PUBLISH_SIZES}
    files = [
        ModelFile(path=p, size=PUBLISH_SIZES[p], opener=_never_opened, known_sha256=shas[p])
        for p in sorted(PUBLISH_SIZES, key=by_bytes)
    ]
    hub_like = ModelSource(
        kind="huggingface", location="hub", revision="0123456789abcdef0123456789abcdef01234567", files=files
    )
    spec = load_spec(model.spec)
    with RegistryClient(registry.host) as client:
        previous = previous_images(client, "modelcars/budget", "budget", first.tags)
        assert sum(1 for members in previous.reuse if len(members) > 1) == 4
        plan = plan_image(spec, hub_like, load_base(busybox_layout.ref), reuse=previous.reuse, max_layers=6)
        assert all(layer.known for layer in plan.model_layers)
        assert plan.manifest_digest == first.digest
        counters = PushCounters()
        assert (
            push_image(PushTarget(client=client, repository="modelcars/budget"), plan, counters)
            == first.digest
        )
    assert (counters.uploaded, counters.bytes_uploaded, counters.present) == (0, 0, 7)


def test_a_stale_cache_entry_of_a_shared_layer_is_refused_dropped_and_the_next_publish_works(
    tmp_path: Path, registry: Registry, busybox_layout: BaseLayout
) -> None:
    model = generated_model(tmp_path, "budget", PUBLISH_SIZES)
    cache = tmp_path / "cache"
    source = SourceOptions(
        spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=cache, max_layers=6
    )
    assert (
        main(
            build_argv(
                model, busybox_layout.ref, tmp_path / "built", "--max-layers", "6", "--cache-dir", str(cache)
            )
        )
        == 0
    )
    data = json.loads((cache / "layer-digests.json").read_text())
    victim = next(key for key in data["layers"] if "\n" in key)  # a shared layer's entry
    data["layers"][victim] = "sha256:" + "0" * 64
    (cache / "layer-digests.json").write_text(json.dumps(data))

    with pytest.raises(RegistryError) as failure:
        publish_modelcar(source, PushOptions(target=f"{registry.host}/modelcars/budget"))
    assert "DIGEST_INVALID" in str(failure.value) and "more files" in str(failure.value)
    after = json.loads((cache / "layer-digests.json").read_text())
    assert victim not in after["layers"]
    # The files of that layer are forgotten too, so the next publish hashes them again.
    members = {line.split("\0")[0] for line in victim.split("\n")}
    assert not [key for key in after["files"] if key.rsplit("/", 1)[-1] in members]

    result = publish_modelcar(source, PushOptions(target=f"{registry.host}/modelcars/budget"))
    assert result.digest == manifest_of(tmp_path / "built")[0]


# --- a 200-file model in podman ---


def test_a_200_file_model_with_the_default_budget_runs_in_podman_reading_every_file_as_1010(
    tmp_path: Path, busybox_layout: BaseLayout, podman: Podman
) -> None:
    """Without the budget this image would have 201 layers, over what Docker and older containers/storage run."""
    sizes = {f"shards/model-{i:05d}-of-00190.safetensors": 100 + (i * 7919) % 6000 for i in range(1, 191)}
    sizes |= {f"tokenizer/part-{i}.json": 50 * i for i in range(1, 6)}
    sizes |= {
        "config.json": 700,
        "generation_config.json": 0,
        "big-a.bin": 40_000,
        "big-b.bin": 40_000,
        "z.txt": 1,
    }
    assert len(sizes) == 200
    model = generated_model(tmp_path, "two-hundred", sizes)
    layout = tmp_path / "layout"
    result = build_layout(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref), output=layout
    )
    _, manifest = manifest_of(layout)
    assert len(manifest["layers"]) == DEFAULT_MAX_LAYERS
    shared = [layer for layer in manifest["layers"] if ANNOTATION_FILES in layer.get("annotations", {})]
    assert shared and all(len(json.loads(layer["annotations"][ANNOTATION_FILES])) >= 2 for layer in shared)

    image = podman.pull_layout(layout, "two-hundred")
    assert podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "1010"
    paths = " ".join(shlex.quote(f"/models/{f.path}") for f in result.files)
    script = (
        'while read -r key real rest; do [ "$key" = Uid: ] && echo "$real"; done < /proc/self/status; '
        '[ -d /models ] && [ -n "$(ls -A /models)" ] && echo OK || echo NOK; '
        f"sha256sum {paths}"
    )
    ran = podman("run", "--rm", "--network", "none", image, "sh", "-c", script, timeout=300)
    uid, init, *sums = ran.stdout.splitlines()
    assert (uid, init) == ("1010", "OK")
    read = {line.split("  ", 1)[1].removeprefix("/models/"): line.split("  ", 1)[0] for line in sums}
    assert read == {f.path: f.sha256 for f in result.files}
    assert len(read) == 200
