"""Push a bump: fetch the tip, derive the edit on it, commit, push; on rejection fetch again and retry.

The commit is built from the fetched tree in a private index, so the local checkout (its work tree,
index and branches) is never touched until the push has succeeded; a push that keeps failing
leaves it exactly as it was.

A failed push is classified (`classify_push_failure`): a race (the branch moved: `fetch first`,
`non-fast-forward`, `stale info`, a ref update that lost a lock) is retried on a fresh fetch; a
failure of the transport (a 5xx, a dropped connection) is retried too; a permanent refusal (a
declined pre-receive or update hook, a protected branch, an authentication or permission failure, a
missing repository) ends the bump at once with the remote's own message (the token masked): asking
again would only be refused again.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llm_platform.bump.git import Git
from llm_platform.bump.guard import ReadState, check_expected
from llm_platform.bump.message import commit_message
from llm_platform.bump.plan import Layout, plan_bump
from llm_platform.bump.refs import PinnedImage
from llm_platform.bump.result import BumpResult
from llm_platform.bump.snapshot import CommitSnapshot
from llm_platform.errors import GitError, InputError, ToolError
from llm_platform.logs import get_logger

log = get_logger("bump.push")

# Failures that no retry can fix: asking again only delays the error.
_PERMANENT = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied",
    "the requested url returned error: 403",
    "the requested url returned error: 401",
    "repository not found",
    "does not appear to be a git repository",
)
# Rejection reasons (`git push --porcelain`) that mean someone else updated the ref first: a race.
_RACE_REASONS = (
    "fetch first",
    "non-fast-forward",
    "stale info",
    "failed to update ref",
    "failed to lock",
    "cannot lock ref",
    "incorrect old value",
    "reference already exists",
)
PushFailure = Literal["race", "transient", "permanent"]
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 5.0


@dataclass(frozen=True)
class PushTarget:
    remote: str
    branch: str  # the branch the edit is based on (and pushed to, without a review branch)
    review_branch: str | None = None

    @property
    def pushed_branch(self) -> str:
        return self.review_branch or self.branch


def resolve_target(git: Git, push: str, pr_branch: str | None) -> PushTarget:
    """`REMOTE` (current branch) or `REMOTE/BRANCH`; REMOTE must be a configured remote (it may contain '/')."""
    remotes = sorted(git.text("remote").split(), key=len, reverse=True)
    remote = next((r for r in remotes if push == r or push.startswith(r + "/")), None)
    if remote is None:
        raise InputError(
            f"--push {push!r}: no such git remote (configured: {', '.join(sorted(remotes)) or 'none'})"
        )
    branch = push[len(remote) + 1 :] if push != remote else ""
    if not branch:
        branch = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.decode().strip()
        if not branch:
            raise InputError(f"--push {push!r}: HEAD is detached; name the branch as --push {remote}/BRANCH")
    for name, value in (("--push", branch), ("--pr-branch", pr_branch)):
        if value is not None and not git.ok("check-ref-format", f"refs/heads/{value}"):
            raise InputError(f"{name}: {value!r} is not a valid branch name")
    if pr_branch == branch:
        raise InputError(
            f"--pr-branch {pr_branch!r} is the branch being bumped; name a separate review branch"
        )
    return PushTarget(remote=remote, branch=branch, review_branch=pr_branch)


def _fetch(git: Git, target: PushTarget) -> str:
    tracking = f"refs/remotes/{target.remote}/{target.branch}"
    try:
        git.run(
            "fetch",
            "--no-tags",
            "--quiet",
            target.remote,
            f"+refs/heads/{target.branch}:{tracking}",
            network=True,
        )
    except GitError as exc:
        if "couldn't find remote ref" in exc.stderr.lower():
            raise InputError(f"--push: remote {target.remote!r} has no branch {target.branch!r}") from None
        raise
    return git.rev_parse(tracking)


def _remote_head(git: Git, remote: str, branch: str) -> str | None:
    out = git.text("ls-remote", "--heads", remote, f"refs/heads/{branch}", network=True)
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


def _is_permanent(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in _PERMANENT)


def _rejections(output: str) -> list[str]:
    """The reasons of the refs a porcelain push rejected (`!<TAB>src:dst<TAB>[rejected] (fetch first)`)."""
    return [line.rsplit("\t", 1)[-1] for line in output.splitlines() if line.startswith("!")]


def classify_push_failure(failure: GitError) -> PushFailure:
    """race: retry on a fresh fetch; transient: the transport failed, retry; permanent: stop now."""
    output = "\n".join(filter(None, (failure.stdout, failure.stderr))) or str(failure)
    if _is_permanent(output):
        return "permanent"
    reasons = _rejections(output)
    if not reasons:
        return "transient"
    if all(any(marker in reason.lower() for marker in _RACE_REASONS) for reason in reasons):
        return "race"
    return "permanent"


def _remote_says(failure: GitError) -> str:
    """What the remote said (its `remote:` lines, else git's error lines), on one line."""
    lines = [line.strip() for line in failure.stderr.splitlines() if line.strip()]
    remote = [line.removeprefix("remote:").strip() for line in lines if line.startswith("remote:")]
    remote = [line for line in remote if line]
    if remote:
        return "; ".join(remote)
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return "; ".join(errors or lines[-1:]) or str(failure)


def _push(git: Git, target: PushTarget, commit: str, lease: str | None) -> GitError | None:
    """Push; return the failure (None on success). Plain pushes are refused unless they fast-forward."""
    args = ["push", "--porcelain"]
    if target.review_branch is not None:
        # A review branch is ours to replace, but only from the state we saw (someone may be updating it).
        args.append(f"--force-with-lease=refs/heads/{target.review_branch}:{lease or ''}")
    args += [target.remote, f"{commit}:refs/heads/{target.pushed_branch}"]
    try:
        git.run(*args, network=True)
    except GitError as exc:
        return exc
    return None


def _reason(output: str) -> str:
    """The rejection reason of a porcelain push (`!<TAB>src:dst<TAB>[rejected] (fetch first)`), else the last line."""
    for line in output.splitlines():
        if line.startswith("!"):
            return line.rsplit("\t", 1)[-1]
    return output.strip().splitlines()[-1] if output.strip() else "?"


def _backoff(attempt: int) -> float:
    # Full jitter: concurrent bumpers that collided spread out instead of colliding again.
    return random.uniform(BACKOFF_BASE_SECONDS, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def _fast_forward_checkout(git: Git, target: PushTarget, commit: str) -> None:
    """Bring a clean local checkout of the bumped branch up to the pushed commit (never merges or discards)."""
    current = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.decode().strip()
    if target.review_branch is not None or current != target.branch:
        return
    dirty = git.text("status", "--porcelain", "--untracked-files=no")
    if dirty or not git.ok("merge-base", "--is-ancestor", "HEAD", commit):
        log.info("local %s left as is (local changes or diverged); the bump is on %s", current, target.remote)
        return
    try:
        git.run("merge", "--ff-only", "--quiet", commit)
    except GitError as exc:
        # The bump is pushed; a local checkout that cannot follow is not a failure of the bump.
        log.warning("pushed, but the local checkout could not fast-forward: %s", exc)


def push_bump(
    git: Git,
    target: PushTarget,
    layout: Layout,
    model: str,
    image: PinnedImage,
    *,
    hf_commit: str | None,
    expect: str | None,
    max_attempts: int,
) -> BumpResult:
    first: ReadState | None = None
    last_failure = ""
    with tempfile.TemporaryDirectory(prefix="llm-platform-bump-") as tmp:
        for attempt in range(1, max_attempts + 1):
            scratch = Path(tmp) / str(attempt)
            scratch.mkdir()
            try:
                base = _fetch(git, target)
            except GitError as exc:
                last_failure = exc.stderr or str(exc)
                if _is_permanent(last_failure) or attempt == max_attempts:
                    raise
                delay = _backoff(attempt)
                log.info(
                    "fetch attempt %d failed (%s); retrying in %.1fs", attempt, _reason(last_failure), delay
                )
                time.sleep(delay)
                continue
            plan = plan_bump(CommitSnapshot(git, base, scratch), layout, model, image, hf_commit)
            first = check_expected(plan, expect, first)
            if plan.unchanged:
                log.info(
                    "%s/%s at %s already points %s at %s",
                    target.remote,
                    target.branch,
                    base[:12],
                    model,
                    image,
                )
                return BumpResult.from_plan(
                    plan, "unchanged", remote=target.remote, branch=target.branch, attempts=attempt - 1
                )
            commit = git.commit_files(base, plan.files, plan.modes, commit_message(plan), scratch)
            lease: str | None = None
            if target.review_branch is not None:
                lease = _remote_head(git, target.remote, target.review_branch)
                if lease is not None and _same_tree(git, target, lease, commit):
                    log.info("review branch %s already holds this bump", target.review_branch)
                    return BumpResult.from_plan(
                        plan,
                        "unchanged",
                        remote=target.remote,
                        branch=target.review_branch,
                        attempts=attempt - 1,
                    )
            failure = _push(git, target, commit, lease)
            if failure is None:
                log.info(
                    "pushed %s to %s/%s (attempt %d)",
                    commit[:12],
                    target.remote,
                    target.pushed_branch,
                    attempt,
                )
                _fast_forward_checkout(git, target, commit)
                return BumpResult.from_plan(
                    plan,
                    "pushed",
                    commit=commit,
                    remote=target.remote,
                    branch=target.pushed_branch,
                    attempts=attempt,
                )
            last_failure = "\n".join(filter(None, (failure.stdout, failure.stderr))) or str(failure)
            kind = classify_push_failure(failure)
            if kind == "permanent":
                reasons = "; ".join(_rejections(last_failure))
                raise ToolError(
                    f"push to {target.remote}/{target.pushed_branch} refused by the remote"
                    f"{f' ({reasons})' if reasons else ''}: "
                    f"{_remote_says(failure)}; not retried (a refusal, not a race); nothing was pushed and "
                    "the local checkout is unchanged"
                )
            if attempt < max_attempts:
                delay = _backoff(attempt)
                log.info(
                    "push attempt %d rejected (%s: %s); refetching in %.1fs",
                    attempt,
                    kind,
                    _reason(last_failure),
                    delay,
                )
                time.sleep(delay)
    raise ToolError(
        f"push to {target.remote}/{target.pushed_branch} failed {max_attempts} time(s); nothing was pushed and "
        f"the local checkout is unchanged; last error: {last_failure}"
    )


def _same_tree(git: Git, target: PushTarget, existing: str, commit: str) -> bool:
    """Whether the review branch's tip already has exactly the tree we would push (fetched to compare)."""
    git.run(
        "fetch", "--no-tags", "--quiet", target.remote, f"refs/heads/{target.review_branch}", network=True
    )
    return git.text("rev-parse", f"{existing}^{{tree}}") == git.text("rev-parse", f"{commit}^{{tree}}")
