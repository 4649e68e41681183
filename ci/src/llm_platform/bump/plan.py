"""Derive a bump from intent on one snapshot: which bytes of which files change, proven, plus the new lock.

The same function runs on the work tree (local bump, `--commit`, `--dry-run`) and on each freshly
fetched tip (push retries), so a retry re-derives the edit instead of replaying a textual patch, and
every path gets the same answer: the files are collected by `snapshot.collect_tree` (symlinks followed
inside the repository, each real file once, edited at its real path), located and spliced, and the
planned result is judged by the independent post-condition (`postcheck.check_tree`): a mention of the
repository that does not carry the new digest and is not provably something else fails the bump.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from llm_platform.bump.locate import Reference, YamlParseError, compose_documents, scan_text
from llm_platform.bump.postcheck import check_tree
from llm_platform.bump.refs import PinnedImage, RepositoryMatcher
from llm_platform.bump.snapshot import (
    Snapshot,
    SymlinkError,
    collect_tree,
    is_json_name,
    is_yaml_name,
    read_file,
    resolve,
)
from llm_platform.bump.splice import splice_digests, verify_splice
from llm_platform.errors import InputError
from llm_platform.logs import get_logger
from llm_platform.modelcar.lock import ModelLock, lock_relpath_for, parse_lock, render_lock
from llm_platform.modelcar.spec import ModelcarSpec, load_spec, spec_sha256
from llm_platform.oci import GIT_COMMIT_RE

log = get_logger("bump")
_WHERE_RE = re.compile(r"^(\S+?)(?::\d+)?[: ]")


@dataclass(frozen=True)
class Layout:
    """Where things live, as posix paths relative to the repository root."""

    gitops: str = "gitops"
    modelcars: str = "modelcars"

    def spec(self, model: str) -> str:
        return str(PurePosixPath(self.modelcars) / f"{model}.yaml")


@dataclass
class BumpPlan:
    """The edit for one snapshot. `files` holds only the files whose bytes change."""

    spec: ModelcarSpec
    image: PinnedImage
    references: list[Reference]  # every reference found, current or not
    edited: list[Reference]  # the ones whose digest changes
    lock_path: str
    lock_before: ModelLock | None
    lock_after: ModelLock
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        return not self.files

    def reference_digests(self) -> set[str]:
        """Digests the references hold now."""
        return {ref.digest for ref in self.references}

    def previous_digests(self) -> list[str]:
        """Digests being replaced, in order of first appearance (the lock's last when not in the tree)."""
        seen: list[str] = []
        for ref in self.edited:
            if ref.digest not in seen and ref.digest != self.image.digest:
                seen.append(ref.digest)
        if (
            self.lock_before
            and self.lock_before.digest != self.image.digest
            and self.lock_before.digest not in seen
        ):
            seen.append(self.lock_before.digest)
        return seen


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _resolve_hf_commit(
    hf_commit: str | None, spec: ModelcarSpec, lock: ModelLock | None, image: PinnedImage
) -> str:
    if hf_commit:
        if not GIT_COMMIT_RE.match(hf_commit):
            raise InputError(f"--hf-commit: {hf_commit!r} is not a 40-hex commit sha")
        pinned = spec.huggingface.revision
        if GIT_COMMIT_RE.match(pinned) and pinned != hf_commit:
            raise InputError(
                f"--hf-commit {hf_commit} contradicts spec {spec.name!r}, which pins huggingface.revision {pinned}"
            )
        return hf_commit
    if GIT_COMMIT_RE.match(spec.huggingface.revision):
        return spec.huggingface.revision
    if lock is not None and lock.image == str(image):
        return lock.hf_commit
    raise InputError(
        f"--hf-commit is needed: spec {spec.name!r} follows revision {spec.huggingface.revision!r}, which is not a "
        "commit sha, and the lock does not already record this image; pass the commit the image was built from "
        "(the image's org.opencontainers.image.revision annotation)"
    )


def _problems_error(model: str, repository: str, problems: list[str]) -> InputError:
    return InputError(
        f"cannot bump {model}: {len(problems)} reference(s) to {repository} cannot be updated:\n  "
        + "\n  ".join(problems)
    )


def plan_bump(
    snapshot: Snapshot, layout: Layout, model: str, image: PinnedImage, hf_commit: str | None = None
) -> BumpPlan:
    """Find, splice and verify every reference to the model's repository; compute the new lock; check
    that afterwards no mention of the repository is left without the new digest."""
    spec_rel = layout.spec(model)
    try:
        spec_file = snapshot.local_path(spec_rel)
    except SymlinkError as exc:
        raise InputError(f"--model {model!r}: {exc.message}") from None
    if spec_file is None:
        raise InputError(f"--model {model!r}: no spec {spec_rel} in the {snapshot.description}")
    spec = load_spec(spec_file)
    if spec.image.repository != image.repository:
        raise InputError(
            f"--ref {image}: repository differs from {spec_rel} image.repository {spec.image.repository!r}"
        )
    matcher = RepositoryMatcher(image.repository, image.digest)

    tree = collect_tree(snapshot, layout.gitops)
    if tree.refused:
        raise InputError(
            f"cannot bump {model}: {len(tree.refused)} symlink(s) in {layout.gitops} cannot be followed:\n  "
            + "\n  ".join(tree.refused)
        )
    for link in tree.dangling:
        log.warning("%s: a dangling symlink; skipped", link)
    contents = snapshot.read_files(sorted(tree.files))
    references: list[Reference] = []
    edited: list[Reference] = []
    problems: list[str] = []
    files: dict[str, bytes] = {}
    modes: dict[str, str] = {}
    structured = [path for path in sorted(contents) if is_yaml_name(path) or is_json_name(path)]
    if not any(is_yaml_name(path) for path in structured):
        raise InputError(f"--gitops {layout.gitops}: no YAML files there in the {snapshot.description}")
    for path in structured:
        data = contents[path]
        text = _decode(data)
        if text is None:
            continue  # the post-condition names it if it names the repository
        if matcher.needle not in text:
            continue
        try:
            documents = compose_documents(text, path)
        except YamlParseError as exc:
            if matcher.mentions(text):
                # Helm templates are not YAML until rendered; one that names the image cannot be edited safely.
                where = f"{path}:{exc.line}" if exc.line else path
                kind = "JSON" if is_json_name(path) else "YAML"
                problems.append(
                    f"{where}: not parseable {kind} ({exc.message}) but names {image.repository} — fix the "
                    "syntax, or, for a template, pin the image in the values it renders from"
                )
            continue
        scan = scan_text(text, path, matcher, documents)
        problems.extend(scan.problems)
        for warning in scan.warnings:
            log.warning("%s", warning)
        references.extend(scan.references)
        # A digest written in uppercase is rewritten even when it is ours: the tree then spells it as OCI does.
        stale = [ref for ref in scan.references if ref.written != image.digest]
        if not stale or scan.problems:
            continue
        new_text = splice_digests(text, stale, image.digest)
        verify_splice(path, documents, new_text, stale, image.digest, matcher, len(scan.references))
        files[path] = new_text.encode("utf-8")
        modes[path] = tree.files[path].mode
        edited.extend(stale)
    if problems:
        # With the post-condition's findings in the other files, so one run names everything to fix (a file
        # with a problem is not edited at all: its other mentions follow from the problems named).
        named = {match.group(1) for p in problems if (match := _WHERE_RE.match(p))}
        extra = [
            str(finding)
            for finding in check_tree({**contents, **files}, image.repository, image.digest).failures
            if finding.path not in named
        ]
        raise _problems_error(model, image.repository, problems + extra)

    try:
        lock_rel = resolve(snapshot, lock_relpath_for(spec_rel))
        _, lock_data = read_file(snapshot, lock_rel)
    except SymlinkError as exc:
        raise InputError(f"the lock of {model}: {exc.message}") from None
    lock_before = parse_lock(lock_data, source=lock_rel) if lock_data is not None else None
    lock_after = ModelLock(
        spec_sha256=spec_sha256(spec),
        hf_commit=_resolve_hf_commit(hf_commit, spec, lock_before, image),
        image=str(image),
    )
    new_lock = render_lock(lock_after)
    if new_lock != lock_data:
        files[lock_rel] = new_lock
        lock_entry = snapshot.entry(lock_rel)
        modes[lock_rel] = (
            lock_entry.mode if lock_entry is not None and lock_entry.kind == "file" else "100644"
        )

    # The post-condition, on the tree as the bump leaves it.
    report = check_tree({**contents, **files}, image.repository, image.digest)
    for finding in report.ignored:
        log.debug("%s: left as is: %s", f"{finding.path}:{finding.line}", finding.message)
    if report.failures:
        raise InputError(
            f"cannot bump {model}: after the edit {len(report.failures)} mention(s) of {image.repository} would "
            f"still not carry {image.digest}; nothing was written:\n  "
            + "\n  ".join(str(finding) for finding in report.failures)
        )
    if not references:
        log.warning("no reference to %s in %s; only the lock is updated", image.repository, layout.gitops)
    return BumpPlan(
        spec=spec,
        image=image,
        references=references,
        edited=edited,
        lock_path=lock_rel,
        lock_before=lock_before,
        lock_after=lock_after,
        files=files,
        modes=modes,
    )
