"""The files a bump reads: the work tree of a checkout, or the tree of a commit (a freshly fetched tip).

Editing against a commit's tree (not the work tree) is what lets a push retry re-derive the edit on
a new tip without touching the local checkout.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Protocol

from llm_platform.bump.git import Git

_YAML_SUFFIXES = (".yaml", ".yml")
_YAML_NAMES = ("Kustomization",)


def is_yaml_name(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.endswith(_YAML_SUFFIXES) or name in _YAML_NAMES


class Snapshot(Protocol):
    """Read-only view of the repository's files, by posix path relative to the repository root."""

    description: str

    def yaml_files(self, under: str) -> list[str]: ...

    def read(self, path: str) -> bytes | None: ...

    def mode(self, path: str) -> str | None: ...

    def local_path(self, path: str) -> Path | None:
        """A filesystem path with the file's content (for loaders that take a Path)."""
        ...


class WorktreeSnapshot:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"work tree {root}"

    def yaml_files(self, under: str) -> list[str]:
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root / under):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for name in filenames:
                rel = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if is_yaml_name(rel):
                    found.append(rel)
        return sorted(found)

    def read(self, path: str) -> bytes | None:
        file = self.root / path
        return file.read_bytes() if file.is_file() else None

    def mode(self, path: str) -> str | None:
        file = self.root / path
        if not file.is_file():
            return None
        return "100755" if os.access(file, os.X_OK) else "100644"

    def local_path(self, path: str) -> Path | None:
        file = self.root / path
        return file if file.is_file() else None


class CommitSnapshot:
    """The tree of one commit; blobs are read in one batch per directory listed."""

    def __init__(self, git: Git, commit: str, scratch: Path) -> None:
        self.git = git
        self.commit = commit
        self.scratch = scratch
        self.description = f"commit {commit[:12]}"
        self._entries: dict[str, tuple[str, str]] = {}
        self._listed: set[str] = set()
        self._blobs: dict[str, bytes] = {}

    def _list(self, under: str) -> None:
        if any(under == done or under.startswith(done + "/") or done in ("", ".") for done in self._listed):
            return
        self._listed.add(under)
        entries = self.git.list_tree(self.commit, under)
        self._entries.update(entries)
        wanted = {
            sha
            for path, (_, sha) in entries.items()
            if (is_yaml_name(path) or path.endswith(".json")) and sha not in self._blobs
        }
        self._blobs.update(self.git.read_blobs(sorted(wanted)))

    def yaml_files(self, under: str) -> list[str]:
        self._list(under)
        prefix = under.rstrip("/") + "/"
        return sorted(
            p for p in self._entries if (p.startswith(prefix) or under in ("", ".")) and is_yaml_name(p)
        )

    def _entry(self, path: str) -> tuple[str, str] | None:
        self._list(str(PurePosixPath(path).parent))
        return self._entries.get(path)

    def read(self, path: str) -> bytes | None:
        entry = self._entry(path)
        if entry is None:
            return None
        sha = entry[1]
        if sha not in self._blobs:
            self._blobs.update(self.git.read_blobs([sha]))
        return self._blobs[sha]

    def mode(self, path: str) -> str | None:
        entry = self._entry(path)
        return entry[0] if entry else None

    def local_path(self, path: str) -> Path | None:
        data = self.read(path)
        if data is None:
            return None
        # Keep the file name: a spec's name is its file stem.
        target = self.scratch / "files" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target
