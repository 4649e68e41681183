"""The files a bump reads: the work tree of a checkout, or the tree of a commit (a freshly fetched tip).

Editing against a commit's tree (not the work tree) is what lets a push retry re-derive the edit on
a new tip without touching the local checkout.

Both kinds answer the same three questions (what is at a path, without following it; what a
directory holds; the bytes of a regular file), and everything else, above all how symlinks are
followed, is one code path over those answers (`resolve`, `collect_tree`), so `--commit` (work tree)
and `--push` (commit) see the same files:

- a symlink is followed only inside the repository: its target, relative to the link's directory,
  is resolved component by component, each component that is itself a symlink followed in turn (as
  the kernel does); a target that is absolute or climbs out of the repository is refused;
- a file reached through a symlink is read, and edited, at its real path, once; the symlink itself
  is never rewritten (so never replaced by a copy);
- a symlink to a directory inside the repository is walked like the directory; a dangling one is
  skipped; `.git` and nested repositories (submodules) are not part of the tree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from llm_platform.bump.git import Git
from llm_platform.errors import SymlinkError

_YAML_SUFFIXES = (".yaml", ".yml")
_YAML_NAMES = ("Kustomization",)
_JSON_SUFFIXES = (".json",)
# Symlinks followed while resolving one path before it counts as a loop (Linux's own limit).
_MAX_SYMLINK_HOPS = 40

EntryKind = Literal["file", "symlink", "dir", "other"]


def is_yaml_name(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.endswith(_YAML_SUFFIXES) or name in _YAML_NAMES


def is_json_name(path: str) -> bool:
    return PurePosixPath(path).name.endswith(_JSON_SUFFIXES)


@dataclass(frozen=True)
class Entry:
    """What a path holds, not following a symlink at that path."""

    kind: EntryKind
    mode: str = "100644"  # git's file mode of a regular file
    size: int = 0
    target: str | None = None  # a symlink's target, as written


class Snapshot(Protocol):
    """Read-only view of the repository's files, by posix path relative to the repository root ("" is the root)."""

    description: str

    def entry(self, path: str) -> Entry | None:
        """What is at `path` (a symlink is not followed); None when nothing is."""
        ...

    def children(self, path: str) -> list[str]:
        """Names in the directory `path` (sorted, without `.git`)."""
        ...

    def read_files(self, paths: Iterable[str]) -> dict[str, bytes]:
        """Contents of regular files given by their real paths (no symlink in them)."""
        ...

    def local_path(self, path: str) -> Path | None:
        """A filesystem path with the content of the file at `path` (for loaders that take a Path)."""
        ...


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def resolve(snapshot: Snapshot, path: str) -> str:
    """The real path of `path`: every symlink in it followed, inside the repository only.

    Raises SymlinkError naming the link for a target outside the repository (absolute, or climbing
    above the root) and for a loop. The result may not exist (a dangling link, a file to be created).
    """
    remaining = [part for part in path.split("/") if part not in ("", ".")]
    remaining.reverse()  # a stack: the next component last
    done: list[str] = []
    hops = 0
    last_link: tuple[str, str] | None = None
    while remaining:
        part = remaining.pop()
        if part == "..":
            if not done:
                if last_link is None:
                    raise SymlinkError(f"{path}: climbs out of the repository")
                link, target = last_link
                raise SymlinkError(
                    f"{link}: a symlink to {target!r}, outside the repository; the bump follows symlinks only "
                    "inside the repository: point it at a file in the repository, or replace it with the file"
                )
            done.pop()
            continue
        candidate = "/".join([*done, part])
        found = snapshot.entry(candidate)
        if found is None or found.kind != "symlink":
            done.append(part)
            continue
        hops += 1
        target = found.target or ""
        if hops > _MAX_SYMLINK_HOPS:
            raise SymlinkError(f"{candidate}: symlink loop (more than {_MAX_SYMLINK_HOPS} links followed)")
        if target.startswith("/"):
            raise SymlinkError(
                f"{candidate}: a symlink to {target!r}, an absolute path; the bump follows symlinks only inside "
                "the repository: make it relative, pointing at a file in the repository, or replace it with the file"
            )
        last_link = (candidate, target)
        remaining.extend(reversed([piece for piece in target.split("/") if piece not in ("", ".")]))
    return "/".join(done)


@dataclass
class TreeFiles:
    """The regular files of a tree, by real path, after following its symlinks."""

    files: dict[str, Entry] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # symlink path -> real path it leads to
    refused: list[str] = field(default_factory=list)  # symlinks that are not followed, one message each
    dangling: list[str] = field(default_factory=list)


def collect_tree(snapshot: Snapshot, under: str) -> TreeFiles:
    """Every regular file below `under`, following symlinks inside the repository (each real file once)."""
    tree = TreeFiles()
    try:
        start = resolve(snapshot, "" if under in ("", ".") else under)
    except SymlinkError as exc:
        tree.refused.append(exc.message)
        return tree
    stack = [start]
    walked: set[str] = set()
    while stack:
        directory = stack.pop()
        if directory in walked:
            continue
        walked.add(directory)
        for name in reversed(snapshot.children(directory)):
            path = _join(directory, name)
            found = snapshot.entry(path)
            if found is None or found.kind == "other":
                continue
            if found.kind == "symlink":
                try:
                    real = resolve(snapshot, path)
                except SymlinkError as exc:
                    tree.refused.append(exc.message)
                    continue
                target = snapshot.entry(real)
                if target is None or target.kind in ("other", "symlink"):
                    tree.dangling.append(path)
                    continue
                tree.links[path] = real
                path, found = real, target
            if found.kind == "dir":
                stack.append(path)
            elif found.kind == "file":
                tree.files[path] = found
    return tree


def read_file(snapshot: Snapshot, path: str) -> tuple[str, bytes | None]:
    """(real path, contents or None when there is no regular file) of `path`, symlinks followed inside the repository."""
    real = resolve(snapshot, path)
    found = snapshot.entry(real)
    if found is None or found.kind != "file":
        return real, None
    return real, snapshot.read_files([real])[real]


class WorktreeSnapshot:
    """The files on disk. `ignored` (paths, directories with a trailing `/`) are left out, as git leaves out
    what it ignores: a checkout's build output is not part of the tree a commit would hold."""

    def __init__(self, root: Path, ignored: Iterable[str] = ()) -> None:
        self.root = root
        self.description = f"work tree {root}"
        self.ignored = frozenset(ignored)

    def _is_ignored(self, path: str) -> bool:
        if not self.ignored:
            return False
        parts = path.split("/")
        prefixes = ("/".join(parts[: depth + 1]) for depth in range(len(parts)))
        return path in self.ignored or any(prefix + "/" in self.ignored for prefix in prefixes)

    def entry(self, path: str) -> Entry | None:
        if path.split("/", 1)[0] == ".git" or self._is_ignored(path):
            return None  # the repository's own data, or what git ignores: not part of the tree
        file = self.root / path if path else self.root
        try:
            info = file.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(info.st_mode):
            return Entry("symlink", mode="120000", target=os.readlink(file))
        if stat.S_ISDIR(info.st_mode):
            # A nested repository (a submodule's checkout) is not this repository's tree.
            if path and (file / ".git").exists():
                return Entry("other")
            return Entry("dir")
        if stat.S_ISREG(info.st_mode):
            return Entry(
                "file", mode="100755" if info.st_mode & stat.S_IXUSR else "100644", size=info.st_size
            )
        return Entry("other")

    def children(self, path: str) -> list[str]:
        try:
            return sorted(
                name for name in os.listdir(self.root / path if path else self.root) if name != ".git"
            )
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_files(self, paths: Iterable[str]) -> dict[str, bytes]:
        return {path: (self.root / path).read_bytes() for path in paths}

    def local_path(self, path: str) -> Path | None:
        _, data = read_file(self, path)
        return self.root / path if data is not None else None


class CommitSnapshot:
    """The tree of one commit, listed once; blobs are read in batches, on demand."""

    def __init__(self, git: Git, commit: str, scratch: Path) -> None:
        self.git = git
        self.commit = commit
        self.scratch = scratch
        self.description = f"commit {commit[:12]}"
        self._entries: dict[str, tuple[str, str, int]] | None = None
        self._dirs: dict[str, set[str]] = {}
        self._blobs: dict[str, bytes] = {}
        self._targets: dict[str, str] = {}

    def _listing(self) -> dict[str, tuple[str, str, int]]:
        if self._entries is None:
            self._entries = self.git.list_tree(self.commit, "")
            self._dirs = {"": set()}
            for path in self._entries:
                parts = path.split("/")
                for depth in range(len(parts)):
                    parent = "/".join(parts[:depth])
                    self._dirs.setdefault(parent, set()).add(parts[depth])
            links = [sha for mode, sha, _ in self._entries.values() if mode == "120000"]
            self._blobs.update(self.git.read_blobs(sorted(set(links))))
        return self._entries

    def entry(self, path: str) -> Entry | None:
        if path.split("/", 1)[0] == ".git":
            return None
        entries = self._listing()
        found = entries.get(path)
        if found is None:
            return Entry("dir") if path in self._dirs else None
        mode, sha, size = found
        if mode == "120000":
            return Entry("symlink", mode=mode, target=self._blobs[sha].decode("utf-8", errors="replace"))
        if mode in ("100644", "100755"):
            return Entry("file", mode=mode, size=size)
        return Entry("other")  # a submodule (gitlink)

    def children(self, path: str) -> list[str]:
        self._listing()
        return sorted(self._dirs.get(path, ()))

    def read_files(self, paths: Iterable[str]) -> dict[str, bytes]:
        entries = self._listing()
        wanted = {path: entries[path][1] for path in paths}
        missing = sorted({sha for sha in wanted.values() if sha not in self._blobs})
        self._blobs.update(self.git.read_blobs(missing))
        return {path: self._blobs[sha] for path, sha in wanted.items()}

    def local_path(self, path: str) -> Path | None:
        _, data = read_file(self, path)
        if data is None:
            return None
        # Keep the file name: a spec's name is its file stem.
        target = self.scratch / "files" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target
