"""The checkout under test as one git commit that Argo CD can read from inside a throwaway cluster.

`kind-test` must sync the commit under test, not what is on the fork's remote: so the gitops/ tree as it is
in the working directory (uncommitted changes and untracked files included, ignored files not, as
`git add -A` would take them) becomes the only commit of a new repository, with every mention of the
tree's own repository URL (the root Application's `repoURL`) replaced by the URL the in-cluster git server
answers at. Each revision the tree's own sources follow (`main`, a tag) is a ref to that commit, so no
`targetRevision` needs rewriting. The commit's dates are fixed: the same tree gives the same commit id.

Only gitops/ is served: every path an Application of the tree reads is under it (a test keeps that true).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from llm_platform.bump.snapshot import is_json_name, is_yaml_name
from llm_platform.cluster.secrets import is_application, sources_of
from llm_platform.documents import CONFIG_LIMITS, MANIFEST_LIMITS, cut, iter_yaml, load_yaml_file, read_bytes
from llm_platform.errors import DocumentError, InputError, PlatformError

SERVED_TREE = "gitops"
ROOT_DIR = Path("gitops/bootstrap")
# The bundle travels in a ConfigMap (binaryData): the API server stores objects up to 1.5 MiB, and the
# ConfigMap keeps well under the 1 MiB etcd values are tuned for. The tree bundles to about 50 KiB.
MAX_BUNDLE_BYTES = 900 * 1024
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_GIT_TIMEOUT = 60.0
# Fixed identity and dates: a commit of the same tree has the same id on every run and machine.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "llm-platform kind-test",
    "GIT_AUTHOR_EMAIL": "kind-test@llm-platform.invalid",
    "GIT_COMMITTER_NAME": "llm-platform kind-test",
    "GIT_COMMITTER_EMAIL": "kind-test@llm-platform.invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


class Snapshot(BaseModel):
    """What is served: the commit, its refs, where its tree and bundle are, and where it came from."""

    tree: Path  # a directory holding gitops/ exactly as committed (the root for the install steps)
    bundle: Path
    bundle_bytes: int
    commit: str
    refs: list[str]  # refs/heads/main, refs/tags/v1, ... all pointing at `commit`
    default_branch: str
    self_url: str  # the tree's own repository URL, as its root Application names it
    served_url: str
    retargeted: list[str]  # the files in which self_url was replaced
    source_head: str | None  # the checkout's HEAD commit, when it is a git checkout
    source_dirty: bool  # the served tree differs from HEAD's gitops/


def self_url(repo_root: Path, env: str) -> str:
    """The repository URL of `env`'s root Application: the URL by which the tree names itself."""
    rel = ROOT_DIR / f"root-{env}.yaml"
    doc = load_yaml_file(repo_root / rel, CONFIG_LIMITS, source=str(rel))
    data = doc.data if doc is not None else None
    url = (
        (((data or {}).get("spec") or {}).get("source") or {}).get("repoURL")
        if isinstance(data, dict)
        else None
    )
    if not isinstance(url, str) or not url:
        raise InputError(f"{rel}: the root Application has no spec.source.repoURL")
    return url


def _git(args: list[str], cwd: Path, *, what: str, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            check=False,
            timeout=_GIT_TIMEOUT,
            env={**os.environ, **(env or {})},
        )
    except FileNotFoundError:
        raise PlatformError("git is not on PATH: kind-test serves the checkout as a git repository") from None
    except subprocess.TimeoutExpired:
        raise PlatformError(f"{what}: git gave no answer within {_GIT_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PlatformError(f"{what}: {cut(said[-1] if said else f'git exited {proc.returncode}', 300)}")
    return proc.stdout.decode("utf-8", "replace")


def _is_git_checkout(repo_root: Path) -> bool:
    try:
        out = _git(["rev-parse", "--show-toplevel"], repo_root, what="git rev-parse")
    except PlatformError:
        return False
    return Path(out.strip()).resolve() == repo_root.resolve()


def _listed_files(repo_root: Path) -> tuple[list[str], str | None]:
    """gitops/'s files as `git add -A` would take them (tracked and untracked, not ignored), with HEAD;
    outside a git checkout (the Dagger engine gets the tree without .git), every file under gitops/."""
    if _is_git_checkout(repo_root):
        out = _git(
            ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", SERVED_TREE],
            repo_root,
            what="git ls-files",
        )
        paths = sorted({p for p in out.split("\0") if p})
        try:
            head = _git(["rev-parse", "--verify", "-q", "HEAD"], repo_root, what="git rev-parse").strip()
        except PlatformError:
            head = None  # a repository without commits yet
        return [p for p in paths if os.path.lexists(repo_root / p)], head or None
    base = repo_root / SERVED_TREE
    if not base.is_dir():
        raise InputError(f"--root {repo_root}: no {SERVED_TREE}/ directory there")
    return sorted(_walk(repo_root, base)), None


def _walk(repo_root: Path, directory: Path) -> Iterator[str]:
    for entry in os.scandir(directory):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(repo_root, path)
        elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
            yield path.relative_to(repo_root).as_posix()


def _copy(repo_root: Path, rel: str, tree: Path) -> None:
    """One file into the snapshot: a symlink as a symlink (git stores it so; one that leaves the served tree
    is refused, as Argo CD refuses it), anything but a regular file refused."""
    source, target = repo_root / rel, tree / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        link = os.readlink(source)
        resolved = PurePosixPath(os.path.normpath(PurePosixPath(rel).parent / link))
        if os.path.isabs(link) or resolved.parts[:1] != (SERVED_TREE,):
            raise InputError(
                f"{rel}: a symlink to {cut(link, 100)!r}, outside {SERVED_TREE}/; Argo CD refuses it"
            )
        os.symlink(link, target)
        return
    if not source.is_file():
        raise InputError(f"{rel}: not a regular file; the served tree holds files and symlinks only")
    shutil.copyfile(source, target)
    if os.access(source, os.X_OK):
        target.chmod(0o755)


def _retarget(tree: Path, files: list[str], old: str, new: str) -> list[str]:
    """Replace `old` by `new` in every YAML and JSON file (they are what Argo CD reads a URL from)."""
    changed = []
    for rel in files:
        path = tree / rel
        if path.is_symlink() or not (is_yaml_name(rel) or is_json_name(rel)):
            continue
        data = path.read_bytes()
        if old.encode() in data:
            path.write_bytes(data.replace(old.encode(), new.encode()))
            changed.append(rel)
    return changed


def own_revisions(tree: Path, files: list[str], url: str) -> dict[str, list[str]]:
    """Each revision the tree's sources of `url` follow, with the files that name it (`HEAD` when a source
    gives none). Every YAML document of the served tree is read, not just one environment's."""
    revisions: dict[str, list[str]] = {}
    for rel in files:
        if not is_yaml_name(rel) or (tree / rel).is_symlink():
            continue
        try:
            data = read_bytes(tree / rel, MANIFEST_LIMITS, source=rel)
            docs = list(iter_yaml(data, source=rel, limits=MANIFEST_LIMITS))
        except DocumentError:
            continue  # lint reports it; the served tree is what the checkout holds
        for doc in docs:
            obj = doc.data
            if not isinstance(obj, dict) or not is_application(obj):
                continue
            for source in sources_of(obj):
                if source.get("repoURL") == url:
                    revision = str(source.get("targetRevision") or "HEAD")
                    revisions.setdefault(revision, []).append(rel)
    return revisions


def _ref_of(revision: str, where: list[str]) -> str:
    if _FULL_SHA.match(revision):
        raise InputError(
            f"{where[0]}: an Application of the tree pins the commit {revision}; kind-test serves the "
            "checkout as a new commit, so sources of the tree itself must follow a branch or tag"
        )
    if revision.startswith("refs/"):
        return revision
    return f"refs/heads/{revision}"


def snapshot_checkout(repo_root: Path, work_dir: Path, env: str, served_url: str) -> Snapshot:
    """Commit the checkout's gitops/ (as it is now) into a new repository under `work_dir`, with the tree's
    own URL replaced by `served_url`, and bundle it; the bundle is what the in-cluster server clones."""
    url = self_url(repo_root, env)
    files, head = _listed_files(repo_root)
    if not files:
        raise InputError(f"--root {repo_root}: {SERVED_TREE}/ holds no files")
    repo = work_dir / "served"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    for rel in files:
        _copy(repo_root, rel, repo)
    retargeted = _retarget(repo, files, url, served_url)
    revisions = own_revisions(repo, files, served_url)
    root_revision = _root_revision(repo, env)
    revisions.setdefault(root_revision, [str(ROOT_DIR / f"root-{env}.yaml")])
    refs = sorted({_ref_of(rev, where) for rev, where in revisions.items() if rev != "HEAD"})
    default = _ref_of(root_revision, []) if root_revision != "HEAD" else "refs/heads/main"
    refs = sorted({*refs, default})
    _git(
        ["init", "-q", "--initial-branch", default.removeprefix("refs/heads/")],
        repo,
        what="git init",
        env=_GIT_ENV,
    )
    _git(["add", "-A", "."], repo, what="git add", env=_GIT_ENV)
    # No HEAD in the message: the commit id follows from the tree alone (the result names the HEAD).
    message = f"kind-test: the checkout's {SERVED_TREE}/"
    _git(["commit", "-q", "--no-verify", "-m", message], repo, what="git commit", env=_GIT_ENV)
    commit = _git(["rev-parse", "HEAD"], repo, what="git rev-parse", env=_GIT_ENV).strip()
    for ref in refs:
        _git(["update-ref", ref, commit], repo, what=f"git update-ref {ref}", env=_GIT_ENV)
    dirty = _dirty(repo_root) if head else True
    bundle = work_dir / "served.bundle"
    _git(["bundle", "create", "-q", str(bundle), "--all"], repo, what="git bundle", env=_GIT_ENV)
    size = bundle.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise InputError(
            f"{SERVED_TREE}/ bundles to {size} bytes, over the {MAX_BUNDLE_BYTES} a ConfigMap carries to the "
            "in-cluster git server; move large files out of the GitOps tree"
        )
    return Snapshot(
        tree=repo,
        bundle=bundle,
        bundle_bytes=size,
        commit=commit,
        refs=refs,
        default_branch=default,
        self_url=url,
        served_url=served_url,
        retargeted=retargeted,
        source_head=head,
        source_dirty=dirty,
    )


def _root_revision(tree: Path, env: str) -> str:
    rel = ROOT_DIR / f"root-{env}.yaml"
    doc = load_yaml_file(tree / rel, CONFIG_LIMITS, source=str(rel))
    data = doc.data if doc is not None else {}
    source = ((data or {}).get("spec") or {}).get("source") or {} if isinstance(data, dict) else {}
    return str(source.get("targetRevision") or "HEAD")


def _dirty(repo_root: Path) -> bool:
    """Whether the checkout's gitops/ (what is served, before its URL is replaced) is other than HEAD's."""
    status = _git(
        ["status", "--porcelain", "--untracked-files=all", "--", SERVED_TREE], repo_root, what="git status"
    )
    return bool(status.strip())
