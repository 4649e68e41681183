"""Plan, prove and write `configure` for one checkout; and `configure --check`.

Every file of gitops/ and modelcars/ is collected as the bump collects it (`bump.snapshot.collect_tree`:
symlinks followed inside the repository only, each real file once, edited at its real path), read within
the bounds of `documents` (a FIFO is never opened, an alias bomb never expanded), composed, and scanned
(`scan`). Then, all before any write: each file's edits are spliced and the result re-parsed and proven
to differ only in the edited values (`bump.splice.verify_edit`), and scanned again, which must find
nothing left to do. Only then is anything written: each file atomically, and a failure part way puts
back the files already written, so the tree is configured entirely or not at all.

Markdown, reStructuredText and AsciiDoc are documentation, not configuration: their mentions of the
placeholders (gitops/README.md tells how to set them) are left as they are, and --check does not count
them; nor does it count YAML comments.
"""

from __future__ import annotations

import codecs
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path, PurePosixPath

from ruamel.yaml.nodes import Node

from llm_platform.bump.locate import YamlParseError, compose_documents
from llm_platform.bump.snapshot import WorktreeSnapshot, collect_tree, is_json_name, is_yaml_name
from llm_platform.bump.splice import splice_text, verify_edit
from llm_platform.configure import placeholders
from llm_platform.configure.identity import Identity
from llm_platform.configure.result import CheckResult, ConfigureResult, Edit, FileEdits, Placeholder
from llm_platform.configure.scan import Change, Found, scan_documents
from llm_platform.documents import MANIFEST_LIMITS, iter_yaml, load_json, read_bytes
from llm_platform.errors import (
    ConflictError,
    DocumentError,
    InputError,
    PlatformError,
    SpliceVerificationError,
)
from llm_platform.logs import get_logger
from llm_platform.oci import atomic_write

log = get_logger("configure")

SCOPES = ("gitops", "modelcars")
LINT_CONFIG = "gitops/lint.yaml"
BOOTSTRAP = "gitops/bootstrap"
APPS = "gitops/apps"
_DOC_SUFFIXES = (".md", ".markdown", ".rst", ".adoc")
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class PlaceholdersLeftError(PlatformError):
    """`configure --check` found placeholders (exit 1, as lint with findings)."""


@dataclass
class FilePlan:
    path: str
    before: bytes
    after: bytes
    changes: list[Change]


@dataclass
class Plan:
    files: list[FilePlan] = field(default_factory=list)
    found: list[Found] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    needs: dict[str, list[str]] = field(default_factory=dict)
    checked: int = 0


def _collect(root: Path) -> list[str]:
    """The real paths of every regular file of gitops/ and modelcars/ (posix, relative to `root`)."""
    if not (root / "gitops").is_dir():
        raise InputError(
            f"--root {root}: no gitops/ directory there; run configure in the checkout or pass --root"
        )
    snapshot = WorktreeSnapshot(root)
    files: set[str] = set()
    for scope in SCOPES:
        if not (root / scope).exists():
            continue
        tree = collect_tree(snapshot, scope)
        if tree.refused:
            raise InputError(
                f"{len(tree.refused)} symlink(s) in {scope}/ cannot be followed; nothing was written:\n  "
                + "\n  ".join(tree.refused)
            )
        for link in tree.dangling:
            log.warning("%s: a dangling symlink; skipped", link)
        files.update(tree.files)
    return sorted(files)


def _is_doc(path: str) -> bool:
    return PurePosixPath(path).name.lower().endswith(_DOC_SUFFIXES)


def _marker_lines(text: str) -> list[int]:
    return [number for number, line in enumerate(text.splitlines(), start=1) if placeholders.MARKER in line]


@dataclass
class _Text:
    text: str
    bom: bytes  # a leading UTF-8 BOM, put back on write: only the placeholder characters change


def _decode(data: bytes) -> _Text | None:
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""
    try:
        return _Text(data[len(bom) :].decode("utf-8"), bom)
    except UnicodeDecodeError:
        return None


def _compose(path: str, data: bytes, text: str) -> list[Node]:
    """The file's node graph, after the bounded loader has accepted it (so an alias bomb or a file too deep
    is refused before ruamel composes it). Raises DocumentError or YamlParseError."""
    if is_json_name(path):
        load_json(data, source=path, limits=MANIFEST_LIMITS)
    else:
        for _ in iter_yaml(data, source=path, limits=MANIFEST_LIMITS):
            pass
    return compose_documents(text, path)


def _unreadable(plan: Plan, path: str, text: str, line: int | None, message: str) -> None:
    """A file that could not be composed: a problem only if it holds a placeholder."""
    lines = _marker_lines(text)
    if not lines:
        log.debug("%s: not parsed (%s); it holds no placeholder", path, message)
        return
    for number in lines:
        plan.found.append(Found(path, number, "unknown", placeholders.MARKER, ""))
    where = f"{path}:{line}" if line else path
    plan.problems.append(f"{where}: does not parse ({message}) but holds the placeholder; fix it first")


def make_plan(root: Path, identity: Identity | None, only: set[str] | None = None) -> Plan:
    """Scan every file (or those in `only`); with `identity`, splice and prove each file's edits."""
    plan = Plan()
    for path in _collect(root):
        if only is not None and path not in only:
            continue
        plan.checked += 1
        structured = is_yaml_name(path) or is_json_name(path)
        if _is_doc(path):
            continue
        if not structured and (root / path).stat().st_size > MANIFEST_LIMITS.max_bytes:
            log.debug("%s: larger than any configuration file; not read", path)
            continue
        try:
            data = read_bytes(root / path, MANIFEST_LIMITS, source=path)
        except DocumentError as exc:
            plan.problems.append(str(exc))
            plan.found.append(Found(path, exc.line or 1, "unknown", placeholders.MARKER, ""))
            continue
        decoded = _decode(data)
        if decoded is None:
            if placeholders.MARKER.encode() in data:
                plan.problems.append(f"{path}: not UTF-8 text, but holds the placeholder; edit it by hand")
                plan.found.append(Found(path, 1, "unknown", placeholders.MARKER, ""))
            continue
        text = decoded.text
        if not structured:
            for number in _marker_lines(text):
                plan.found.append(Found(path, number, "unknown", placeholders.MARKER, ""))
                plan.problems.append(
                    f"{path}:{number}: holds the placeholder, and configure edits YAML and JSON only "
                    "(documentation aside); edit it by hand"
                )
            continue
        try:
            documents = _compose(path, data, text)
        except DocumentError as exc:
            _unreadable(plan, path, text, exc.line, exc.detail)
            continue
        except YamlParseError as exc:
            _unreadable(plan, path, text, exc.line, exc.message)
            continue
        strip = path == LINT_CONFIG and identity is not None
        scan = scan_documents(text, path, documents, identity, strip_template=strip)
        plan.found.extend(scan.found)
        plan.problems.extend(scan.problems)
        for option, wheres in scan.needs.items():
            plan.needs.setdefault(option, []).extend(wheres)
        if identity is None or not scan.changes or scan.problems:
            continue
        new_text = splice_text(text, [change.edit for change in scan.changes])
        new_documents = verify_edit(path, documents, new_text, scan.expected, scan.removed)
        # Read back as a reader of the file would: nothing is left to set but what an option not given sets.
        again = scan_documents(new_text, path, new_documents, identity, strip_template=strip)
        left = sum(len(wheres) for wheres in scan.needs.values())
        if again.changes or again.problems or len(again.found) != left:
            raise SpliceVerificationError(
                f"{path}: after the edit {len(again.found)} placeholder(s) and {len(again.changes)} change(s) "
                "are still found; refusing to write"
            )
        plan.files.append(FilePlan(path, data, decoded.bom + new_text.encode("utf-8"), scan.changes))
    return plan


def _write_all(root: Path, files: list[FilePlan]) -> None:
    """Write every planned file atomically; on any failure put back those already written."""
    for plan in files:
        parent = (root / plan.path).parent
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(
                f"{plan.path}: cannot write: directory {parent} is not writable; nothing was written"
            )
    for plan in files:
        if (root / plan.path).read_bytes() != plan.before:
            raise ConflictError(
                f"{plan.path}: changed while configure ran; nothing was written: run it again"
            )
    written: list[FilePlan] = []
    try:
        for plan in files:
            atomic_write(root / plan.path, plan.after)
            written.append(plan)
    except BaseException:
        for plan in reversed(written):
            try:
                atomic_write(root / plan.path, plan.before)
            except OSError as exc:  # the original failure is what the user must see; this one is logged
                log.error("%s: could not be put back after the failed write: %s", plan.path, exc)
        raise


def configure(root: Path, identity: Identity, *, dry_run: bool = False) -> ConfigureResult:
    """Set the fork's identity in every file (`dry_run`: plan and prove only). Raises InputError naming every
    placeholder that cannot be edited exactly, and then writes nothing."""
    plan = make_plan(root, identity)
    if plan.problems:
        raise InputError(
            f"cannot configure, nothing was written: {len(plan.problems)} place(s) cannot be edited exactly: "
            + "; ".join(plan.problems)
        )
    for option, wheres in plan.needs.items():
        # Not an error: an environment without GCP (kind) needs no project; --check --env names what is left.
        shown = ", ".join(wheres[:3]) + (f" and {len(wheres) - 3} more" if len(wheres) > 3 else "")
        log.warning(
            "configure: %s not given: %d placeholder(s) of the GCP project are left (%s)",
            option,
            len(wheres),
            shown,
        )
    if not dry_run and plan.files:
        _write_all(root, plan.files)
    result = ConfigureResult(
        root=str(root),
        dry_run=dry_run,
        unchanged=not plan.files,
        repo_url=identity.repo_url,
        revision=identity.revision,
        project_id=identity.project_id,
        region=identity.region,
        registry=identity.modelcar_registry,
        files=[
            FileEdits(
                path=file.path,
                edits=[
                    Edit(where=f"{c.path}:{c.line}", field=c.field, kind=c.kind, old=c.old, new=c.new)
                    for c in sorted(file.changes, key=lambda c: (c.line, c.edit.start))
                ],
            )
            for file in plan.files
        ],
        left=[
            Placeholder(path=f.path, line=f.line, kind=f.kind, placeholder=f.placeholder, field=f.field)
            for f in plan.found
            if any(f"{f.path}:{f.line}" in wheres for wheres in plan.needs.values())
        ],
    )
    if result.unchanged:
        log.info(
            "configure: nothing to change (no placeholder left, revision %s already set)", identity.revision
        )
    else:
        verb = "would change" if dry_run else "changed"
        log.info("configure: %s %d value(s) in %d file(s)", verb, result.edit_count, len(result.files))
    return result


# -- --check --env ------------------------------------------------------------------------------------


def environments(paths: Iterable[str]) -> list[str]:
    """The environments of the tree: one per gitops/bootstrap/root-<env>.yaml."""
    found = []
    for path in paths:
        pure = PurePosixPath(path)
        if str(pure.parent) == BOOTSTRAP and pure.name.startswith("root-") and pure.suffix == ".yaml":
            found.append(pure.name.removeprefix("root-").removesuffix(".yaml"))
    return sorted(found)


def _kustomization_in(root: Path, directory: str) -> str | None:
    for name in _KUSTOMIZATION_NAMES:
        if (root / directory / name).is_file():
            return posixpath.join(directory, name)
    return None


def _reached_apps(root: Path, env: str) -> set[str]:
    """Every file the app-of-apps of `env` includes: gitops/apps/<env>'s kustomization, followed through
    its resources, components and patch files (the shared base, the features it turns on)."""
    reached: set[str] = set()
    stack = [f"{APPS}/{env}"]
    seen: set[str] = set()
    while stack:
        directory = stack.pop()
        if directory in seen:
            continue
        seen.add(directory)
        kustomization = _kustomization_in(root, directory)
        if kustomization is None:
            continue
        reached.add(kustomization)
        try:
            docs = list(
                iter_yaml(
                    read_bytes(root / kustomization, MANIFEST_LIMITS, source=kustomization),
                    source=kustomization,
                )
            )
        except DocumentError as exc:
            log.warning(
                "%s: not read (%s); --check --env counts only what it could follow", kustomization, exc.detail
            )
            continue
        data = docs[0].data if docs and isinstance(docs[0].data, dict) else {}
        entries: list[str] = []
        for key in ("resources", "components"):
            entries += [str(e) for e in data.get(key) or [] if isinstance(e, str)]
        entries += [
            str(p["path"])
            for p in data.get("patches") or []
            if isinstance(p, dict) and isinstance(p.get("path"), str)
        ]
        for entry in entries:
            if "://" in entry or entry.startswith(("github.com/", "/")):
                continue  # a remote base or an absolute path: not a file of this checkout
            target = posixpath.normpath(posixpath.join(directory, entry))
            if target.startswith("../") or target == "..":
                continue
            if (root / target).is_dir():
                stack.append(target)
            else:
                reached.add(target)
    return reached


def installed_by(root: Path, env: str, paths: list[str]) -> set[str]:
    """The files of `paths` that environment `env` installs: its root Application, the Applications its
    app-of-apps reaches, everything shared, but no overlay of another environment; and modelcars/."""
    others = set(environments(paths)) - {env}
    apps = _reached_apps(root, env)
    kept: set[str] = set()
    for path in paths:
        parts = path.split("/")
        if path.startswith(f"{BOOTSTRAP}/") and PurePosixPath(path).name.startswith("root-"):
            if path != f"{BOOTSTRAP}/root-{env}.yaml":
                continue
        elif path.startswith(f"{APPS}/") and path not in apps:
            continue
        if any(a == "overlays" and b in others for a, b in pairwise(parts)):
            continue
        kept.add(path)
    return kept


def check(root: Path, env: str | None = None) -> CheckResult:
    """The placeholders left (in what `env` installs, when given); raises PlaceholdersLeftError after the
    caller has printed them (see `check_lines`)."""
    only: set[str] | None = None
    if env is not None:
        paths = _collect(root)
        known = environments(paths)
        if env not in known:
            raise InputError(
                f"--env: {env!r} is not an environment of this tree (no {BOOTSTRAP}/root-{env}.yaml); "
                f"known: {', '.join(known) or 'none'}"
            )
        only = installed_by(root, env, paths)
    plan = make_plan(root, None, only)
    found = sorted(set(plan.found), key=lambda f: (f.path, f.line, f.kind))
    return CheckResult(
        env=env,
        files_checked=plan.checked,
        placeholders=[
            Placeholder(path=f.path, line=f.line, kind=f.kind, placeholder=f.placeholder, field=f.field)
            for f in found
        ],
    )


def check_line(placeholder: Placeholder) -> str:
    found = Found(
        placeholder.path, placeholder.line, placeholder.kind, placeholder.placeholder, placeholder.field
    )
    return found.text()
