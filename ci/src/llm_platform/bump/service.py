"""`bump_model`: the one entry point the CLI and the Dagger module call."""

from __future__ import annotations

import subprocess
from pathlib import Path

from llm_platform.bump import DEFAULT_MAX_ATTEMPTS
from llm_platform.bump.git import Git
from llm_platform.bump.local import local_bump
from llm_platform.bump.plan import Layout
from llm_platform.bump.push import push_bump, resolve_target
from llm_platform.bump.refs import parse_digest, parse_pinned_image
from llm_platform.bump.result import BumpResult
from llm_platform.errors import InputError
from llm_platform.modelcar.spec import SPEC_NAME_RE, load_spec


def _toplevel(start: Path) -> Path | None:
    proc = subprocess.run(
        ["git", "-C", str(start), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    return Path(proc.stdout.strip()).resolve() if proc.returncode == 0 else None


def _inside(root: Path, path: Path, option: str) -> str:
    resolved = path.resolve()
    if not resolved.is_dir():
        raise InputError(f"{option} {path}: not a directory")
    try:
        rel = resolved.relative_to(root)
    except ValueError:
        raise InputError(f"{option} {path}: not inside the repository {root}") from None
    return rel.as_posix() if rel.parts else "."


def _verify(root: Path, layout: Layout, model: str, ref: str, verify_key: Path | None) -> None:
    from llm_platform.signing.gate import configured_key, require_verified

    key = verify_key or configured_key(root)
    if key is None:
        return
    if isinstance(key, Path) and not key.is_file():
        raise InputError(f"--verify-key {key}: no such file")
    spec_path = root / layout.modelcars / f"{model}.yaml"
    spec = load_spec(spec_path) if spec_path.is_file() else None
    require_verified(ref, key, spec)


def bump_model(
    model: str,
    ref: str,
    *,
    repo: Path | None = None,
    gitops: Path | None = None,
    modelcars: Path | None = None,
    commit: bool = False,
    push: str | None = None,
    pr_branch: str | None = None,
    expect: str | None = None,
    hf_commit: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dry_run: bool = False,
    verify_key: Path | None = None,
) -> BumpResult:
    """Point every GitOps reference to the model's image, and its lock, at `ref`.

    Without `commit`/`push` only the work tree is edited. `push` ("REMOTE" or "REMOTE/BRANCH") bases
    the edit on the fetched remote tip, commits and pushes with bounded retries; `pr_branch` pushes
    to that branch instead. `expect` is the digest the references must hold (else ConflictError).
    `dry_run` only plans the edit in the work tree and returns its diff. With `verify_key` (else the key
    `modelcars/signing.yaml` names), an image that does not verify with it is refused before any edit.
    """
    if not SPEC_NAME_RE.match(model):
        raise InputError(
            f"--model {model!r}: expected a spec name ([a-z0-9][a-z0-9.-]*, the file stem in modelcars/)"
        )
    image = parse_pinned_image(ref)
    expected = parse_digest(expect) if expect is not None else None
    if max_attempts < 1:
        raise InputError(f"--max-attempts {max_attempts}: must be at least 1")
    if dry_run and (commit or push is not None):
        raise InputError("--dry-run cannot be combined with --commit or --push")
    if pr_branch is not None and push is None:
        raise InputError("--pr-branch needs --push REMOTE[/BRANCH] (the base branch of the review)")

    start = repo or gitops or Path.cwd()
    if not start.is_dir():
        raise InputError(f"--repo {start}: not a directory")
    root = _toplevel(start)
    if root is None:
        if commit or push:
            raise InputError(f"{start}: not inside a git repository (needed for --commit/--push)")
        root = (repo or (gitops.parent if gitops else Path.cwd())).resolve()
    layout = Layout(
        gitops=_inside(root, gitops or root / "gitops", "--gitops"),
        modelcars=_inside(root, modelcars or root / "modelcars", "--modelcars"),
    )
    _verify(root, layout, model, ref, verify_key)
    if push is not None:
        git = Git(root)
        target = resolve_target(git, push, pr_branch)
        return push_bump(
            git, target, layout, model, image, hf_commit=hf_commit, expect=expected, max_attempts=max_attempts
        )
    return local_bump(
        root, layout, model, image, hf_commit=hf_commit, expect=expected, commit=commit, dry_run=dry_run
    )
