"""`bump` on a scratch copy of the repository's own gitops/ and modelcars/: every shipped spec is
referenced, every reference is bumpable, each commit changes only digest characters, and the
edited kustomizations still render (real `kubectl kustomize`) with the new digest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from llm_platform.modelcar.spec import load_spec
from llm_platform.oci import GIT_COMMIT_RE
from tests.support.bump_cli import CliRun, run_cli
from tests.support.bump_fixture import HF_COMMIT, commit_all, digest_of, git, git_env
from tests.support.tools import require_tool


@pytest.fixture
def scratch(tmp_path: Path, repo_root: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    home.mkdir()
    env = git_env(home)
    work = tmp_path / "repo"
    work.mkdir()
    for part in ("gitops", "modelcars"):
        shutil.copytree(repo_root / part, work / part)
    git(work, "init", "-q", "-b", "main", env=env)
    commit_all(work, "copy of the real tree", env)
    return work, env


def test_every_shipped_model_bumps_by_digest_only_and_still_renders(
    scratch: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work, env = scratch

    def bump(*args: str) -> CliRun:
        return run_cli(["bump", "--repo", str(work), *args], env, monkeypatch, capsys)

    specs = sorted(p.stem for p in (work / "modelcars").glob("*.yaml"))
    assert specs, "no modelcar specs shipped"
    kubectl = require_tool("kubectl")
    for model in specs:
        spec = load_spec(work / "modelcars" / f"{model}.yaml")
        repository = spec.image.repository
        # A spec pinned to a commit must be bumped with that commit; a branch needs one given.
        hf_commit = spec.huggingface.revision if GIT_COMMIT_RE.match(spec.huggingface.revision) else HF_COMMIT
        new = digest_of(f"real-{model}")
        proc = bump(
            "--model", model, "--ref", f"{repository}@{new}", "--commit", "--hf-commit", hf_commit, "--json"
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["status"] == "committed" and result["references"], f"{model}: no reference in gitops/"
        old_digests = set(result["previous_digests"])
        diff = git(work, "diff", "-U0", "HEAD~1", "HEAD", "--", "gitops", env=env).splitlines()
        removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
        added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
        assert len(removed) == len(added) == len(result["references"])
        for before, after in zip(removed, added, strict=True):
            (old,) = [d for d in old_digests if d in before]
            assert before.replace(old, new) == after
        for entry in {Path(r["path"]).parent for r in result["references"]}:
            if (work / entry / "kustomization.yaml").is_file():
                rendered = subprocess.run(
                    [kubectl, "kustomize", str(work / entry)], capture_output=True, text=True, check=False
                )
                assert rendered.returncode == 0, rendered.stderr
                assert f"{repository}@{new}" in rendered.stdout and not any(
                    d in rendered.stdout for d in old_digests
                )
    assert git(work, "status", "--porcelain", env=env) == ""
