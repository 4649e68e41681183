"""The `git` binary, driven without a shell; credentials come from the environment, only while a command runs.

When `GIT_TOKEN` is set, network commands get a credential helper through `-c` that prints the
token from the environment at the moment git asks. The token is never in an argument (so never in
a process listing or a logged command), never in a remote URL and never in `.git/config`; any git
output quoted in an error has it masked anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from llm_platform.errors import GitError, ToolError
from llm_platform.logs import get_logger

log = get_logger("bump.git")

TOKEN_ENV = "GIT_TOKEN"
USERNAME_ENV = "GIT_USERNAME"
DEFAULT_USERNAME = "x-access-token"
# A remote that stops answering must not hang the pipeline; a timed-out push counts as a failed attempt.
NETWORK_TIMEOUT_SECONDS = 300
DEFAULT_AUTHOR = ("llm-platform bump", "llm-platform-bump@users.noreply.localhost")

# git runs a `!`-helper through the shell with the action ("get", "store", "erase") appended; the
# variables are expanded by that shell, from the environment, when git needs a credential.
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; '
    f'printf "username=%s\\npassword=%s\\n" "${{{USERNAME_ENV}:-{DEFAULT_USERNAME}}}" "${TOKEN_ENV}"; '
    "}; f"
)


def mask_secrets(text: str) -> str:
    token = os.environ.get(TOKEN_ENV)
    return text.replace(token, "***") if token else text


class Git:
    """Commands on one repository (`git -C root ...`)."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("git")
        if binary is None:
            raise ToolError("git is not installed (it is needed to commit and push the bump)")
        self.binary = binary
        self.root = root
        self._identity: dict[str, str] | None = None

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        env["GIT_TERMINAL_PROMPT"] = "0"  # fail instead of waiting for a password on a terminal
        env["LC_ALL"] = "C"  # rejection messages are matched in English
        if extra:
            env.update(extra)
        return env

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        network: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        config: list[str] = []
        if network and os.environ.get(TOKEN_ENV):
            # The empty value resets configured helpers so ours is asked first and alone.
            config = ["-c", "credential.helper=", "-c", f"credential.helper={_CREDENTIAL_HELPER}"]
        command = [self.binary, "-C", str(self.root), *config, *args]
        log.debug("git %s", " ".join(args))
        try:
            proc = subprocess.run(
                command,
                input=input,
                capture_output=True,
                env=self._env(env),
                check=False,
                timeout=NETWORK_TIMEOUT_SECONDS if network else None,
            )
        except subprocess.TimeoutExpired:
            message = f"git {args[0]} timed out after {NETWORK_TIMEOUT_SECONDS}s"
            raise GitError(message, stderr=message) from None
        if check and proc.returncode != 0:
            stderr = mask_secrets(proc.stderr.decode(errors="replace")).strip()
            stdout = mask_secrets(proc.stdout.decode(errors="replace")).strip()
            raise GitError(
                f"git {args[0]} failed (exit {proc.returncode}): {stderr or stdout}", stderr, stdout
            )
        return proc

    def text(self, *args: str, **kwargs: object) -> str:
        return self.run(*args, **kwargs).stdout.decode().strip()  # type: ignore[arg-type]

    def ok(self, *args: str) -> bool:
        return self.run(*args, check=False).returncode == 0

    # Reading trees

    def rev_parse(self, rev: str) -> str:
        return self.text("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")

    def list_tree(self, commit: str, under: str) -> dict[str, tuple[str, str, int]]:
        """path -> (mode, object sha, size) for every blob and gitlink below `under` (a repository-relative
        dir; "" for all) at `commit`. Symlinks are blobs of mode 120000 holding the target."""
        pathspec = ["--", under] if under not in ("", ".") else []
        out = self.run("ls-tree", "-r", "-z", "-l", "--full-tree", commit, *pathspec).stdout.decode()
        files: dict[str, tuple[str, str, int]] = {}
        for entry in filter(None, out.split("\0")):
            meta, _, path = entry.partition("\t")
            mode, kind, sha, size = meta.split()
            if kind in ("blob", "commit"):
                files[path] = (mode, sha, int(size) if size.isdigit() else 0)
        return files

    def read_blobs(self, shas: Sequence[str]) -> dict[str, bytes]:
        """Contents of many blobs in one `git cat-file --batch` call."""
        if not shas:
            return {}
        out = self.run("cat-file", "--batch", input="".join(f"{s}\n" for s in shas).encode()).stdout
        blobs: dict[str, bytes] = {}
        pos = 0
        for sha in shas:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].decode().split()
            if len(header) != 3:
                raise GitError(f"git cat-file: object {sha} is missing")
            size = int(header[2])
            blobs[sha] = out[header_end + 1 : header_end + 1 + size]
            pos = header_end + 1 + size + 1
        return blobs

    # Writing commits without touching the work tree or the index

    def commit_files(
        self,
        parent: str,
        files: Mapping[str, bytes],
        modes: Mapping[str, str],
        message: str,
        scratch: Path,
    ) -> str:
        """A commit on `parent` with `files` replaced (path -> bytes); built in a private index file."""
        index_env = {"GIT_INDEX_FILE": str(scratch / "bump-index"), **self.identity_env()}
        self.run("read-tree", parent, env=index_env)
        paths = sorted(files)
        blob_dir = scratch / "blobs"
        blob_dir.mkdir(exist_ok=True)
        sources = []
        for number, path in enumerate(paths):
            source = blob_dir / str(number)
            source.write_bytes(files[path])
            sources.append(str(source))
        # One hash-object for all blobs, one update-index for all entries (`--no-filters`: the bytes as given).
        blobs = self.text(
            "hash-object",
            "-w",
            "--no-filters",
            "--stdin-paths",
            input="".join(f"{s}\n" for s in sources).encode(),
        ).split()
        entries = "".join(
            f"{modes.get(path, '100644')} {blob}\t{path}\0" for path, blob in zip(paths, blobs, strict=True)
        )
        self.run("update-index", "-z", "--index-info", input=entries.encode(), env=index_env)
        tree = self.text("write-tree", env=index_env)
        return self.text("commit-tree", tree, "-p", parent, "-F", "-", input=message.encode(), env=index_env)

    def identity_env(self) -> dict[str, str]:
        """Author/committer for commits made when the repository has no identity configured (CI)."""
        if self._identity is not None:
            return dict(self._identity)
        env: dict[str, str] = {}
        for key, value in (("name", DEFAULT_AUTHOR[0]), ("email", DEFAULT_AUTHOR[1])):
            if self.run("config", f"user.{key}", check=False).stdout.strip():
                continue
            for role in ("AUTHOR", "COMMITTER"):
                var = f"GIT_{role}_{key.upper()}"
                if var not in os.environ:
                    env[var] = value
        self._identity = env
        return dict(env)

    def toplevel(self) -> Path:
        return Path(self.text("rev-parse", "--show-toplevel"))
