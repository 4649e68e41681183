"""Files of other git repositories that an Application reads (`$ref/path` value files of a multi-source
Application whose `ref` source is another repository), fetched as Argo CD does: the repository at the
source's `targetRevision`, one file out of that commit.

Each repository gets a bare cache repository under the cache root (`git-sources/`); a revision is fetched
shallowly (`git fetch --depth 1 <url> <revision>`), so only that commit's objects travel. A revision that
is a full commit id already in the cache needs no network at all. Git never prompts (no terminal, no
askpass) and every call is bounded in time; a failure is a reason string, which lint reports as the
chart source it could not render."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from llm_platform.errors import url_without_credentials

GIT_TIMEOUT = 120.0
MAX_FILE_BYTES = 16 * 1024 * 1024  # a values file larger than this is not read
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class GitSourceError(Exception):
    """Why a file of another repository could not be read (one line)."""


class GitFileMissingError(GitSourceError):
    """The revision was fetched but has no such file (`ignoreMissingValueFiles` may accept that)."""


def _redact(text: str) -> str:
    """`text` (git's stderr, which quotes URLs) with any `scheme://user:token@` credentials removed."""
    return re.sub(r"(?<=://)[^/@\s]*@", "", text)


@dataclass
class GitSources:
    """Fetches files of other repositories into `cache` (one lint run resolves each revision once)."""

    cache: Path
    _resolved: dict[tuple[str, str], str] = field(default_factory=dict)

    def file(self, repo_url: str, revision: str, path: str) -> tuple[Path, str]:
        """(local copy of `path` at `revision` of `repo_url`, the commit it came from)."""
        if not path or path.startswith("/") or ".." in Path(path).parts:
            raise GitSourceError(f"path {path!r} must be relative, inside the repository")
        bare = self._bare(repo_url)
        commit = self._commit(bare, repo_url, revision)
        out = self.cache / "files" / commit / path
        if out.is_file():
            return out, commit
        try:
            size = self._git(
                bare, "cat-file", "-s", f"{commit}:{path}", what=f"{path} at {commit[:12]}"
            ).strip()
        except GitSourceError:
            raise GitFileMissingError(f"{path} does not exist at {commit[:12]}") from None
        if not size.isdigit() or int(size) > MAX_FILE_BYTES:
            raise GitSourceError(f"{path} at {commit[:12]} is over {MAX_FILE_BYTES} bytes")
        blob = self._git_bytes(bare, "cat-file", "blob", f"{commit}:{path}", what=f"{path} at {commit[:12]}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(out)
        return out, commit

    def _bare(self, repo_url: str) -> Path:
        bare = self.cache / "repos" / hashlib.sha256(repo_url.encode()).hexdigest()[:24]
        if not (bare / "HEAD").is_file():
            bare.mkdir(parents=True, exist_ok=True)
            self._git(bare, "init", "--bare", "--quiet", ".", what="a cache repository")
        return bare

    def _commit(self, bare: Path, repo_url: str, revision: str) -> str:
        key = (repo_url, revision)
        if key in self._resolved:
            return self._resolved[key]
        rev = revision or "HEAD"
        if _COMMIT.match(rev) and self._has(bare, rev):
            commit = rev  # immutable, already here: no network
        else:
            where = f"{url_without_credentials(repo_url)}@{rev}"
            self._git(bare, "fetch", "--quiet", "--depth", "1", "--no-tags", repo_url, rev, what=where)
            commit = self._git(bare, "rev-parse", "FETCH_HEAD^{commit}", what=where).strip()
        self._resolved[key] = commit
        return commit

    def _has(self, bare: Path, commit: str) -> bool:
        try:
            self._git(bare, "cat-file", "-e", f"{commit}^{{commit}}", what=commit)
        except GitSourceError:
            return False
        return True

    def _git(self, bare: Path, *args: str, what: str) -> str:
        return self._git_bytes(bare, *args, what=what).decode("utf-8", errors="replace")

    def _git_bytes(self, bare: Path, *args: str, what: str) -> bytes:
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true",
            "SSH_ASKPASS": "true",
            "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
        }
        try:
            proc = subprocess.run(
                ["git", "-C", str(bare), *args],
                capture_output=True,
                check=False,
                timeout=GIT_TIMEOUT,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise GitSourceError(f"git timed out after {GIT_TIMEOUT:.0f} s on {what}") from None
        except OSError as exc:
            raise GitSourceError(f"cannot run git: {exc.strerror}") from None
        if proc.returncode != 0:
            said = _redact(" ".join(proc.stderr.decode("utf-8", errors="replace").split()))[:300]
            raise GitSourceError(f"git could not read {what}: {said or f'exit {proc.returncode}'}")
        return proc.stdout
