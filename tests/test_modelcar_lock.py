"""Model locks and `stale_specs` (which specs a deploy publishes), and its CLI `llm-platform modelcar changed`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_platform.errors import InputError
from llm_platform.modelcar.lock import ModelLock, StaleSpecs, render_lock, stale_specs
from llm_platform.modelcar.spec import load_spec, spec_sha256

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools

CLI = str(Path(sys.executable).parent / "llm-platform")
IMAGE = f"registry.example/m@sha256:{'1' * 64}"


@pytest.fixture
def modelcars(tmp_path: Path, repo_root: Path) -> Path:
    """The shipped specs without any lock."""
    directory = tmp_path / "modelcars"
    directory.mkdir()
    for spec in (repo_root / "modelcars").glob("*.yaml"):
        shutil.copy(spec, directory)
    assert (directory / "minilm-demo.yaml").is_file()
    return directory


def _lock_for(directory: Path, name: str, *, spec_sha: str | None = None) -> None:
    sha = spec_sha or spec_sha256(load_spec(directory / f"{name}.yaml"))
    lock = ModelLock(spec_sha256=sha, hf_commit="c" * 40, image=IMAGE)
    (directory / f"{name}.lock.json").write_bytes(render_lock(lock))


def test_stale_specs_compares_each_spec_with_its_lock(modelcars: Path) -> None:
    specs = sorted(p.stem for p in modelcars.glob("*.yaml"))
    assert stale_specs(modelcars) == StaleSpecs(changed=specs, unchanged=[])  # no locks: build all

    _lock_for(modelcars, "minilm-demo")
    stale = stale_specs(modelcars)
    assert stale.unchanged == ["minilm-demo"] and stale.changed == [s for s in specs if s != "minilm-demo"]

    # A comment or reformatting keeps the canonical hash; a real change does not.
    spec = modelcars / "minilm-demo.yaml"
    spec.write_text("# a comment\n" + spec.read_text().replace(": ", ":   "))
    assert stale_specs(modelcars).unchanged == ["minilm-demo"]
    spec.write_text(re.sub(r"served_model_name:\s+minilm-demo", "served_model_name: demo", spec.read_text()))
    assert load_spec(spec).serving.served_model_name == "demo"
    assert "minilm-demo" in stale_specs(modelcars).changed

    # A lock recording another spec hash is stale too.
    _lock_for(modelcars, "minilm-demo", spec_sha="0" * 64)
    assert "minilm-demo" in stale_specs(modelcars).changed


def test_stale_specs_ignores_files_that_are_not_specs(modelcars: Path) -> None:
    (modelcars / "modelcar.schema.json").write_text("{}")
    (modelcars / "README.md").write_text("notes\n")
    _lock_for(modelcars, "minilm-demo")
    (modelcars / "retired.lock.json").write_bytes((modelcars / "minilm-demo.lock.json").read_bytes())
    stale = stale_specs(modelcars)
    assert "retired" not in stale.changed + stale.unchanged
    assert sorted(stale.changed + stale.unchanged) == sorted(p.stem for p in modelcars.glob("*.yaml"))


def test_stale_specs_rejects_a_broken_lock_naming_the_file(modelcars: Path) -> None:
    (modelcars / "minilm-demo.lock.json").write_text('{"spec_sha256": "nope"}')
    with pytest.raises(InputError, match=r"modelcars/minilm-demo\.lock\.json: invalid lock: spec_sha256"):
        stale_specs(modelcars)


def test_stale_specs_rejects_a_bad_spec_naming_file_line_and_field(modelcars: Path) -> None:
    spec = modelcars / "minilm-demo.yaml"
    spec.write_text(spec.read_text().replace("revision: ", "revision: bad..ref  # "))
    with pytest.raises(InputError, match=r"modelcars/minilm-demo\.yaml:\d+: huggingface\.revision: "):
        stale_specs(modelcars)


def test_stale_specs_of_a_missing_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        stale_specs(tmp_path / "nope")


def test_changed_command_prints_the_split_as_json(modelcars: Path) -> None:
    _lock_for(modelcars, "minilm-demo")
    proc = subprocess.run(
        [CLI, "modelcar", "changed", "--modelcars", "modelcars"],
        cwd=modelcars.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == stale_specs(modelcars).model_dump()
    assert json.loads(proc.stdout)["unchanged"] == ["minilm-demo"]

    (modelcars / "qwen2.5-coder-7b-instruct.yaml").write_text("huggingface: [\n")
    proc = subprocess.run(
        [CLI, "modelcar", "changed"], cwd=modelcars.parent, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("llm-platform: error: modelcars/qwen2.5-coder-7b-instruct.yaml:")
