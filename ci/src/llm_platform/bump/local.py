"""A bump in the local checkout: edit the work tree, and with `--commit` make one commit of just those files.

If anything fails after the first file is written, every file is put back and the index restored,
so an interrupted bump never leaves a half-edited tree or a half-staged commit behind. Before the
first write, every directory written to is probed: one that cannot be written (a read-only
`modelcars/`) ends the bump with one line naming it, and nothing is written. The plan names files by
their real paths (symlinks resolved inside the repository), so a symlink is never replaced by a copy.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from llm_platform.bump.git import Git
from llm_platform.bump.guard import check_expected
from llm_platform.bump.message import commit_message
from llm_platform.bump.plan import BumpPlan, Layout, plan_bump
from llm_platform.bump.refs import PinnedImage
from llm_platform.bump.result import BumpResult
from llm_platform.bump.snapshot import WorktreeSnapshot
from llm_platform.errors import ConflictError, InputError, ToolError
from llm_platform.logs import get_logger
from llm_platform.oci import atomic_write

log = get_logger("bump.local")


def _probe_writable(root: Path, files: Mapping[str, bytes]) -> None:
    """Fail, before anything is written, if a file of the plan cannot be written where it is."""
    for rel in sorted(files):
        target = root / rel
        if target.is_symlink():  # the plan names real paths; a link here means the tree changed meanwhile
            raise ConflictError(f"{rel} became a symlink while the bump was running; nothing was written")
        directory = target.parent
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".probe")
        except OSError as exc:
            shown = directory.relative_to(root).as_posix() if directory != root else "."
            raise InputError(
                f"{rel}: cannot write in {shown}/ ({exc.strerror or exc}); make the directory writable "
                "and run the bump again; nothing was written"
            ) from None
        os.close(fd)
        os.unlink(name)


def _apply(root: Path, files: Mapping[str, bytes], originals: Mapping[str, bytes | None]) -> None:
    for rel in files:
        current = (root / rel).read_bytes() if (root / rel).is_file() else None
        if current != originals[rel]:
            raise ConflictError(f"{rel} changed while the bump was running; nothing was written")
    _probe_writable(root, files)
    written: list[str] = []
    try:
        for rel, data in sorted(files.items()):
            try:
                atomic_write(root / rel, data)
            except OSError as exc:
                raise InputError(
                    f"{rel}: cannot write it ({exc.strerror or exc}); every file the bump had written is put back"
                ) from None
            written.append(rel)
    except BaseException:
        _restore(root, {rel: originals[rel] for rel in written})
        raise


def _restore(root: Path, originals: Mapping[str, bytes | None]) -> None:
    for rel, data in originals.items():
        if data is None:
            (root / rel).unlink(missing_ok=True)
        else:
            atomic_write(root / rel, data)


def unified_diff(originals: Mapping[str, bytes | None], files: Mapping[str, bytes]) -> str:
    """`git diff`-style text of the planned edit (what a dry run prints)."""
    chunks: list[str] = []
    for rel in sorted(files):
        before = (originals.get(rel) or b"").decode("utf-8").splitlines(keepends=True)
        after = files[rel].decode("utf-8").splitlines(keepends=True)
        source = f"a/{rel}" if originals.get(rel) is not None else "/dev/null"
        chunks.extend(difflib.unified_diff(before, after, source, f"b/{rel}", n=0))
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def _require_clean(git: Git, paths: list[str]) -> None:
    dirty = git.text("status", "--porcelain", "--", *paths)
    if dirty:
        raise InputError(
            "the files the bump commits have uncommitted changes; commit or stash them first:\n  "
            + "\n  ".join(dirty.splitlines())
        )


def _commit(git: Git, root: Path, plan: BumpPlan, originals: Mapping[str, bytes | None]) -> str:
    paths = sorted(plan.files)
    _require_clean(git, paths)
    _apply(root, plan.files, originals)
    try:
        git.run("add", "--", *paths)
        # --only: exactly these paths, whatever else the user has staged.
        git.run(
            "commit",
            "--only",
            "--quiet",
            "-F",
            "-",
            "--",
            *paths,
            input=commit_message(plan).encode(),
            env=git.identity_env(),
        )
    except BaseException:
        git.run("restore", "--staged", "--", *paths, check=False)
        _restore(root, originals)
        raise
    return git.rev_parse("HEAD")


def _ignored(root: Path) -> list[str]:
    """What git ignores in the checkout (directories end in `/`); nothing outside a git repository."""
    try:
        git = Git(root)
    except ToolError:
        return []
    args = ("ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z")
    proc = git.run(*args, check=False)
    if proc.returncode != 0:
        return []
    return [path for path in proc.stdout.decode(errors="replace").split("\0") if path]


def local_bump(
    root: Path,
    layout: Layout,
    model: str,
    image: PinnedImage,
    *,
    hf_commit: str | None,
    expect: str | None,
    commit: bool,
    dry_run: bool = False,
) -> BumpResult:
    snapshot = WorktreeSnapshot(root, _ignored(root))
    plan = plan_bump(snapshot, layout, model, image, hf_commit)
    check_expected(plan, expect, None)
    if plan.unchanged:
        log.info("%s already points %s at %s; nothing to change", layout.gitops, model, image)
        return BumpResult.from_plan(plan, "unchanged")
    originals = {rel: (root / rel).read_bytes() if (root / rel).is_file() else None for rel in plan.files}
    if dry_run:
        return BumpResult.from_plan(plan, "planned", diff=unified_diff(originals, plan.files))
    if not commit:
        _apply(root, plan.files, originals)
        log.info("edited %d file(s); not committed (pass --commit)", len(plan.files))
        return BumpResult.from_plan(plan, "edited")
    sha = _commit(Git(root), root, plan, originals)
    log.info("committed %s", sha[:12])
    return BumpResult.from_plan(plan, "committed", commit=sha)
