"""The Hugging Face source, driven through the real huggingface_hub client against a loopback
stand-in of the hub (tests never reach the internet): revision resolved to the commit sha,
patterns applied, LFS sha256 used and checked, token used but never shown, reuse skips downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_platform.errors import InputError, PlatformError
from llm_platform.modelcar.base_image import load_base
from llm_platform.modelcar.build import build_layout
from llm_platform.modelcar.image import plan_image, reuse_from_manifest
from llm_platform.modelcar.layout import write_layout
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.modelcar.source import huggingface_source
from llm_platform.modelcar.spec import load_spec
from llm_platform.oci import ANNOTATION_REVISION
from tests.support import hf_hub as hub_support
from tests.support.hf_hub import HubRepo, HubServer
from tests.support.images import BaseLayout

hf_hub = hub_support.hf_hub

CLI = str(Path(sys.executable).parent / "llm-platform")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_TestToken_do_not_print_42"
FILES = {
    "config.json": b'{"architectures": ["Tiny"]}',
    "model-00001-of-00002.safetensors": os.urandom(40_000),
    "model-00002-of-00002.safetensors": os.urandom(30_000),
    "tokenizer/vocab.json": b'{"a": 0}',
    "README.md": b"# docs, not served",
    "pytorch_model.bin": b"legacy weights",
}
SELECTED = [
    "config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "tokenizer/vocab.json",
]


def write_spec(tmp_path: Path, revision: str, name: str = "tiny-hub") -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        "huggingface:\n  repo: example-org/tiny-model\n"
        f"  revision: {revision}\n"
        "  allow_patterns: ['*.safetensors', '*.json']\n  ignore_patterns: ['*.bin']\n"
        f"image:\n  repository: registry.example.com/modelcars/{name}\n"
        f"serving:\n  served_model_name: {name}\n"
    )
    return spec


@pytest.fixture
def tiny_repo(hf_hub: HubServer) -> HubRepo:
    return hf_hub.add(HubRepo("example-org/tiny-model", COMMIT, dict(FILES), branches={"main": COMMIT}))


def test_branch_resolves_to_commit_and_patterns_and_lfs_sha256_apply(
    tmp_path: Path, hf_hub: HubServer, tiny_repo: HubRepo
) -> None:
    spec = load_spec(write_spec(tmp_path, "main"))
    source = huggingface_source(spec, token=TOKEN, cache_dir=tmp_path / "cache", endpoint=hf_hub.endpoint)
    assert source.revision == COMMIT
    assert [f.path for f in source.files] == SELECTED
    import hashlib

    for f in source.files:
        assert f.size == len(FILES[f.path])
        if f.path.endswith(".safetensors"):  # LFS: the hub's sha256, known before any download
            assert f.known_sha256 == hashlib.sha256(FILES[f.path]).hexdigest()
        else:
            assert f.known_sha256 is None
    assert hf_hub.downloads == []  # listing downloads nothing


def test_cli_build_from_the_hub_uses_the_token_and_never_prints_it(
    tmp_path: Path, hf_hub: HubServer, tiny_repo: HubRepo, busybox_layout: BaseLayout
) -> None:
    tiny_repo.private_token = TOKEN
    spec = write_spec(tmp_path, "main")
    env = {
        **os.environ,
        "HF_ENDPOINT": hf_hub.endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    proc = subprocess.run(
        [
            CLI,
            "--verbose",
            "modelcar",
            "build",
            str(spec),
            "--base",
            busybox_layout.ref,
            "--output",
            str(tmp_path / "out"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert set(hf_hub.authorizations) == {f"Bearer {TOKEN}"}
    result = json.loads(proc.stdout)
    assert result["revision"] == COMMIT
    assert [f["path"] for f in result["files"]] == SELECTED
    manifest = json.loads(
        (tmp_path / "out/blobs/sha256" / result["manifest_digest"].removeprefix("sha256:")).read_bytes()
    )
    assert manifest["annotations"][ANNOTATION_REVISION] == COMMIT
    assert not any(TOKEN.encode() in p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())

    # The flag works as well as the environment; without any token the private repo is refused clearly.
    flag_env = {k: v for k, v in env.items() if k != "HF_TOKEN"}
    flagged = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(spec),
            "--base",
            busybox_layout.ref,
            "--output",
            str(tmp_path / "out2"),
            "--hf-token",
            TOKEN,
        ],
        capture_output=True,
        text=True,
        env=flag_env,
        check=False,
    )
    assert flagged.returncode == 0, flagged.stderr
    assert flagged.stdout.strip() == result["reference"]
    refused = subprocess.run(
        [
            CLI,
            "modelcar",
            "build",
            str(spec),
            "--base",
            busybox_layout.ref,
            "--output",
            str(tmp_path / "out3"),
        ],
        capture_output=True,
        text=True,
        env=flag_env,
        check=False,
    )
    assert refused.returncode == 2
    assert "repository not found (or private: pass a token with HF_TOKEN)" in refused.stderr
    assert not (tmp_path / "out3").exists()


def test_hub_and_local_copy_of_the_same_commit_give_the_same_digest(
    tmp_path: Path, hf_hub: HubServer, tiny_repo: HubRepo, busybox_layout: BaseLayout
) -> None:
    spec = write_spec(tmp_path, COMMIT)
    local = tmp_path / "local"
    for path, data in FILES.items():
        (local / path).parent.mkdir(parents=True, exist_ok=True)
        (local / path).write_bytes(data)
    from_local = build_layout(
        SourceOptions(spec=spec, source_dir=local, base=busybox_layout.ref), output=tmp_path / "a"
    )
    source = huggingface_source(load_spec(spec), cache_dir=tmp_path / "cache", endpoint=hf_hub.endpoint)
    plan = plan_image(load_spec(spec), source, load_base(busybox_layout.ref))
    assert write_layout(plan, tmp_path / "b") == from_local.manifest_digest


def test_a_corrupt_download_is_refused_and_nothing_is_written(
    tmp_path: Path, hf_hub: HubServer, tiny_repo: HubRepo, busybox_layout: BaseLayout
) -> None:
    hf_hub.corrupt.add("model-00002-of-00002.safetensors")
    spec = load_spec(write_spec(tmp_path, "main"))
    source = huggingface_source(spec, cache_dir=tmp_path / "cache", endpoint=hf_hub.endpoint)
    plan = plan_image(spec, source, load_base(busybox_layout.ref))
    with pytest.raises(
        PlatformError, match=r"model-00002-of-00002.safetensors: sha256 \w+ does not match the recorded"
    ):
        write_layout(plan, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_revision_and_repo_are_input_errors(
    tmp_path: Path, hf_hub: HubServer, tiny_repo: HubRepo
) -> None:
    with pytest.raises(InputError, match=r"huggingface.co/example-org/tiny-model@v9: revision not found"):
        huggingface_source(load_spec(write_spec(tmp_path, "v9")), endpoint=hf_hub.endpoint)
    other = tmp_path / "other.yaml"
    other.write_text(
        write_spec(tmp_path, "main").read_text().replace("example-org/tiny-model", "example-org/absent")
    )
    with pytest.raises(InputError, match="repository not found"):
        huggingface_source(load_spec(other), endpoint=hf_hub.endpoint)


def test_reuse_skips_downloading_known_lfs_files(
    tmp_path: Path, hf_hub: HubServer, tiny_repo: HubRepo, busybox_layout: BaseLayout
) -> None:
    spec = load_spec(write_spec(tmp_path, "main"))
    base = load_base(busybox_layout.ref)
    first = plan_image(
        spec, huggingface_source(spec, cache_dir=tmp_path / "c1", endpoint=hf_hub.endpoint), base
    )
    digest = write_layout(first, tmp_path / "first")
    reuse = reuse_from_manifest(json.loads(first.manifest_bytes))
    hf_hub.downloads.clear()
    again = plan_image(
        spec, huggingface_source(spec, cache_dir=tmp_path / "c2", endpoint=hf_hub.endpoint), base, reuse=reuse
    )
    assert again.manifest_digest == digest
    # Only the small non-LFS files (no sha256 from the hub) had to be fetched to hash them.
    assert sorted(hf_hub.downloads) == ["config.json", "tokenizer/vocab.json"]
