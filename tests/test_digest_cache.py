"""The digest cache across commands: `modelcar build` records what it hashed, so a publish of the same files
streams them without hashing; a cache entry that no longer matches the file is caught by the registry and
named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_platform.cli import main
from llm_platform.errors import RegistryError
from llm_platform.modelcar.digest_cache import LayerDigestCache
from llm_platform.modelcar.prepare import SourceOptions
from llm_platform.modelcar.publish import PushOptions, publish_modelcar
from tests.support.images import BaseLayout
from tests.support.publish_fixtures import GeneratedModel, generated_model
from tests.support.registry import Registry

FILES = {
    "model-00001-of-00002.safetensors": 900_000,
    "model-00002-of-00002.safetensors": 700_000,
    "config.json": 321,
}


def build_cli(tmp_path: Path, base: BaseLayout, *options: str) -> tuple[GeneratedModel, int]:
    """Generate the model and run `llm-platform modelcar build` on it into tmp_path/built."""
    model = generated_model(tmp_path, "cached-model", FILES)
    code = main(
        [
            "modelcar",
            "build",
            str(model.spec),
            "--source-dir",
            str(model.source),
            "--base",
            base.ref,
            "--output",
            str(tmp_path / "built"),
            *options,
        ]
    )
    return model, code


def test_publish_after_a_build_knows_every_layer_and_the_registry_accepts_them(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "cache"
    model, code = build_cli(tmp_path, busybox_layout, "--cache-dir", str(cache), "--json")
    built = json.loads(capsys.readouterr().out)
    assert code == 0
    recorded = LayerDigestCache(cache)
    assert sorted(recorded.files.values()) == sorted(f["sha256"] for f in built["files"])
    assert len(recorded.layers) == len(FILES)

    result = publish_modelcar(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=cache),
        PushOptions(target=f"{registry.host}/modelcars/cached-model"),
    )
    assert result.digest == built["manifest_digest"]
    assert result.layers_known_without_reading == len(FILES)  # the build hashed them; the publish did not
    assert result.blobs_uploaded == len(FILES) + 2  # every file, the base layer and the config, all accepted


def test_build_without_cache_records_nothing(
    tmp_path: Path,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, code = build_cli(tmp_path, busybox_layout, "--cache-dir", str(tmp_path / "cache"), "--no-cache")
    assert code == 0, capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_a_cache_entry_that_no_longer_matches_is_rejected_by_the_registry_and_named(
    tmp_path: Path,
    registry: Registry,
    busybox_layout: BaseLayout,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "cache"
    model, code = build_cli(tmp_path, busybox_layout, "--cache-dir", str(cache))
    assert code == 0
    capsys.readouterr()
    # What a file rewritten without changing its identity would look like: the cache's layer digest for
    # one file no longer describes the file's bytes.
    data = json.loads((cache / "layer-digests.json").read_text())
    victim = next(key for key in data["layers"] if key.startswith("model-00001"))
    data["layers"][victim] = "sha256:" + "0" * 64
    (cache / "layer-digests.json").write_text(json.dumps(data))

    with pytest.raises(RegistryError) as failure:
        publish_modelcar(
            SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=cache),
            PushOptions(target=f"{registry.host}/modelcars/cached-model"),
        )
    message = str(failure.value)
    assert "DIGEST_INVALID" in message and "model-00001-of-00002.safetensors" in message
    assert "run the publish again" in message
    assert victim not in json.loads((cache / "layer-digests.json").read_text())["layers"]

    # The way out the message names works, and gives the image the build gave.
    result = publish_modelcar(
        SourceOptions(spec=model.spec, source_dir=model.source, base=busybox_layout.ref, cache_dir=cache),
        PushOptions(target=f"{registry.host}/modelcars/cached-model"),
    )
    built = json.loads((tmp_path / "built" / "index.json").read_text())["manifests"][0]["digest"]
    assert result.digest == built
