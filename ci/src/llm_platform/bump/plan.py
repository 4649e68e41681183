"""Derive a bump from intent on one snapshot: which bytes of which files change, proven, plus the new lock.

The same function runs on the work tree (local bump) and on each freshly fetched tip (push retries),
so a retry re-derives the edit instead of replaying a textual patch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from llm_platform.bump.locate import Reference, YamlParseError, compose_documents, scan_text
from llm_platform.bump.refs import PinnedImage, RepositoryMatcher
from llm_platform.bump.snapshot import Snapshot
from llm_platform.bump.splice import splice_digests, verify_splice
from llm_platform.errors import InputError
from llm_platform.logs import get_logger
from llm_platform.modelcar.lock import ModelLock, lock_relpath_for, parse_lock, render_lock
from llm_platform.modelcar.spec import ModelcarSpec, load_spec, spec_sha256
from llm_platform.oci import GIT_COMMIT_RE

log = get_logger("bump")


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
            if ref.digest not in seen:
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


def plan_bump(
    snapshot: Snapshot, layout: Layout, model: str, image: PinnedImage, hf_commit: str | None = None
) -> BumpPlan:
    """Find, splice and verify every reference to the model's repository; compute the new lock."""
    spec_rel = layout.spec(model)
    spec_file = snapshot.local_path(spec_rel)
    if spec_file is None:
        raise InputError(f"--model {model!r}: no spec {spec_rel} in the {snapshot.description}")
    spec = load_spec(spec_file)
    if spec.image.repository != image.repository:
        raise InputError(
            f"--ref {image}: repository differs from {spec_rel} image.repository {spec.image.repository!r}"
        )
    matcher = RepositoryMatcher(image.repository)

    references: list[Reference] = []
    edited: list[Reference] = []
    problems: list[str] = []
    files: dict[str, bytes] = {}
    modes: dict[str, str] = {}
    yaml_files = snapshot.yaml_files(layout.gitops)
    if not yaml_files:
        raise InputError(f"--gitops {layout.gitops}: no YAML files there in the {snapshot.description}")
    for path in yaml_files:
        data = snapshot.read(path)
        assert data is not None
        text = _decode(data)
        if text is None:
            if image.repository.encode() in data:
                problems.append(f"{path}: not UTF-8 but names {image.repository}; cannot edit it safely")
            continue
        if not matcher.mentions(text):
            continue
        try:
            documents = compose_documents(text)
        except YamlParseError as exc:
            # Helm templates are not YAML until rendered; one that names the image cannot be edited safely.
            where = f"{path}:{exc.line}" if exc.line else path
            problems.append(f"{where}: not parseable YAML ({exc.message}) but names {image.repository}")
            continue
        scan = scan_text(text, path, matcher, documents)
        problems.extend(scan.problems)
        for line in scan.unrecognised:
            log.warning("%s:%d names %s outside an image reference; left as is", path, line, image.repository)
        references.extend(scan.references)
        stale = [ref for ref in scan.references if ref.digest != image.digest]
        if not stale or scan.problems:
            continue
        new_text = splice_digests(text, stale, image.digest)
        verify_splice(path, documents, new_text, stale, image.digest, matcher, len(scan.references))
        files[path] = new_text.encode("utf-8")
        modes[path] = snapshot.mode(path) or "100644"
        edited.extend(stale)
    if problems:
        raise InputError(
            f"cannot bump {model}: {len(problems)} reference(s) to {image.repository} cannot be updated:\n  "
            + "\n  ".join(problems)
        )
    if not references:
        log.warning("no reference to %s in %s; only the lock is updated", image.repository, layout.gitops)

    lock_rel = lock_relpath_for(spec_rel)
    lock_data = snapshot.read(lock_rel)
    lock_before = parse_lock(lock_data, source=lock_rel) if lock_data is not None else None
    lock_after = ModelLock(
        spec_sha256=spec_sha256(spec),
        hf_commit=_resolve_hf_commit(hf_commit, spec, lock_before, image),
        image=str(image),
    )
    new_lock = render_lock(lock_after)
    if new_lock != lock_data:
        files[lock_rel] = new_lock
        modes[lock_rel] = snapshot.mode(lock_rel) or "100644"
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
