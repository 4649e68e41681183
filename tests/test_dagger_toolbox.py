"""The command lines the Dagger module runs in its toolbox container, run here for real.

There is no Dagger engine on this machine, so the containers themselves are not built; but each
function's work is one `llm-platform` command the module assembles, and those commands (with the
credentials passed the way the module passes them: environment variables, never flags) run here
against the real core, a real registry with basic auth, and an independent tool (skopeo).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_platform.dagger_module import commands as module
from llm_platform.modelcar.build import BuildResult
from llm_platform.modelcar.lock import ModelLock, StaleSpecs, render_lock
from llm_platform.modelcar.publish import PublishResult
from llm_platform.modelcar.spec import load_spec, spec_sha256
from tests.support.images import BaseLayout
from tests.support.registry import Registry
from tests.support.tools import require_tool, run

SPEC_NAME = "minilm-demo"
BIN = Path(sys.executable).parent


def _local(argv: list[str]) -> list[str]:
    """The toolbox finds `llm-platform` and `python` on PATH; here they are the venv's."""
    return [str(BIN / argv[0]), *argv[1:]]


def _environment(cache: str | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment minus any HF/registry credentials, offline for the hub."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "LLM_PLATFORM_"))}
    env["HF_HUB_OFFLINE"] = "1"
    if cache is not None:
        env["LLM_PLATFORM_CACHE_DIR"] = cache
    return {**env, **extra}


@pytest.fixture
def workspace(tmp_path: Path, repo_root: Path) -> Path:
    """/work as the toolbox lays it out: modelcars/<name>.yaml and a small local model directory."""
    (tmp_path / "modelcars").mkdir()
    shutil.copy(repo_root / "modelcars" / f"{SPEC_NAME}.yaml", tmp_path / "modelcars")
    source = tmp_path / "source"
    (source / "1_Pooling").mkdir(parents=True)
    (source / "config.json").write_text('{"hidden_size": 8}\n')
    (source / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}\n')
    (source / "model.safetensors").write_bytes(os.urandom(4096))
    (source / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    (source / "README.md").write_text("left out by the spec's ignore_patterns\n")
    return tmp_path


def _build(workspace: Path, base: BaseLayout) -> BuildResult:
    argv = module.modelcar_build_argv(
        str(workspace / "modelcars" / f"{SPEC_NAME}.yaml"), str(workspace / "out"), str(workspace / "source")
    )
    proc = run([*_local(argv), "--base", base.ref], env=_environment(cache=str(workspace / "cache")))
    return BuildResult.model_validate_json(proc.stdout)


def test_build_command_prints_the_digest_the_module_reports_and_writes_that_layout(
    workspace: Path, busybox_layout: BaseLayout
) -> None:
    skopeo = require_tool("skopeo")
    result = _build(workspace, busybox_layout)  # `Modelcar.digest` reads result.manifest_digest
    layout = workspace / "out"
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [result.manifest_digest]
    # An independent reader of the layout (`Modelcar.layout`) agrees.
    raw = run([skopeo, "inspect", "--raw", f"oci:{layout}:{SPEC_NAME}"]).stdout.encode()
    assert result.manifest_digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert sorted(f.path for f in result.files) == [
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
        "vocab.txt",
    ]


def test_changed_command_lists_the_specs_deploy_publishes(workspace: Path) -> None:
    # deploy runs it from /work with modelcars/ mounted there: the same layout as `workspace`.
    argv = _local(module.modelcar_changed_argv("modelcars"))
    stale = StaleSpecs.model_validate_json(run(argv, cwd=workspace, env=_environment()).stdout)
    assert (stale.changed, stale.unchanged) == ([SPEC_NAME], [])
    spec = load_spec(workspace / "modelcars" / f"{SPEC_NAME}.yaml")
    lock = ModelLock(
        spec_sha256=spec_sha256(spec), hf_commit="c" * 40, image=f"registry.example/m@sha256:{'1' * 64}"
    )
    (workspace / "modelcars" / f"{SPEC_NAME}.lock.json").write_bytes(render_lock(lock))
    stale = StaleSpecs.model_validate_json(run(argv, cwd=workspace, env=_environment()).stdout)
    assert (stale.changed, stale.unchanged) == ([], [SPEC_NAME])
    # A broken lock fails the step, naming the file as the repository spells it.
    (workspace / "modelcars" / f"{SPEC_NAME}.lock.json").write_text('{"spec_sha256": "nope"}')
    proc = subprocess.run(
        argv, cwd=workspace, env=_environment(), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"modelcars/{SPEC_NAME}.lock.json" in proc.stderr


def test_publish_command_pushes_with_the_password_from_the_environment(
    workspace: Path, busybox_layout: BaseLayout, auth_registry: Registry
) -> None:
    built = _build(workspace, busybox_layout)
    target = f"{auth_registry.host}/modelcars/{SPEC_NAME}"
    argv = module.modelcar_publish_argv(
        str(workspace / "modelcars" / f"{SPEC_NAME}.yaml"), target, str(workspace / "source"), "pusher"
    )
    assert "s3cret-pass" not in argv
    env = _environment(cache=str(workspace / "cache"), **{module.REGISTRY_PASSWORD_ENV: "s3cret-pass"})
    proc = run([*_local(argv), "--base", busybox_layout.ref], env=env)
    assert "s3cret-pass" not in proc.stdout + proc.stderr
    result = PublishResult.model_validate_json(proc.stdout)
    # What `Modelcar.digest` reports is exactly what `Modelcar.publish` pushed.
    assert result.reference == f"{target}@{built.manifest_digest}"
    # deploy hands the bump the commit the publish itself built from: the one the image records.
    assert result.hf_commit == built.revision == "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
    skopeo = require_tool("skopeo")
    inspected = run(
        [
            skopeo,
            "inspect",
            "--tls-verify=false",
            "--creds",
            "pusher:s3cret-pass",
            f"docker://{result.reference}",
        ]
    ).stdout
    assert json.loads(inspected)["Digest"] == built.manifest_digest
    manifest = run(
        [
            skopeo,
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "pusher:s3cret-pass",
            f"docker://{result.reference}",
        ]
    ).stdout
    assert json.loads(manifest)["annotations"]["org.opencontainers.image.revision"] == result.hf_commit


def test_publish_command_without_the_password_fails_naming_the_variable(
    workspace: Path, busybox_layout: BaseLayout, auth_registry: Registry
) -> None:
    argv = module.modelcar_publish_argv(
        str(workspace / "modelcars" / f"{SPEC_NAME}.yaml"),
        f"{auth_registry.host}/modelcars/{SPEC_NAME}",
        str(workspace / "source"),
        "pusher",
    )
    proc = subprocess.run(
        [*_local(argv), "--base", busybox_layout.ref],
        env=_environment(cache=str(workspace / "cache")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert module.REGISTRY_PASSWORD_ENV in proc.stderr


def test_lint_gives_the_same_findings_on_the_bare_tree_the_toolbox_sees(
    repo_root: Path, crds_dir: Path, tmp_path: Path
) -> None:
    # The toolbox holds only gitops/ under /work (no .git, no other top-level directory) and the CRDs
    # `crds sync` put in its cache, laid out like shared/crds. Lint must not depend on anything else.
    work = tmp_path / "work"
    shutil.copytree(repo_root / "gitops", work / "gitops")
    crds = str(crds_dir)

    def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
        argv = _local(module.lint_argv("gitops", crds))
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=_environment())

    in_repo, in_toolbox = lint(repo_root), lint(work)
    assert in_repo.returncode in (0, 1), in_repo.stderr
    assert (in_toolbox.returncode, in_toolbox.stdout) == (in_repo.returncode, in_repo.stdout)
    assert "schemas: 58 built-in, 0 CRD" not in in_toolbox.stderr  # the CRDs were used
