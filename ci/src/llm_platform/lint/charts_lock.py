"""`gitops/charts.lock.yaml`: the Helm charts the GitOps tree uses, one entry per (chart, version), and
`charts sync`, which puts their packages into a cache directory, verified before they land there.

Two sources, each verified against its own record (the sync itself is `llm_platform.pinned_files`):

- `HelmRepository`: `helm pull` from the entry's chart repository (HTTP, or `oci://`), checked against the
  lock's `published_sha256`; an entry without one is refused before any download.
- `ChartMirror`: a directory of packages with an `INDEX.json` (`../shared/charts` is one), checked against
  that index's `sha256` for the chart and version. Its packages are rebuilt from the upstream source at the
  tag, so they are other bytes than the published ones, and neither record vouches for the other.

For a renderer: `ensure_chart(lock, chart, version, cache, mirror=...)` returns the path of a verified
`<chart>-<version>.tgz` in the cache, syncing just that chart if it is not cached yet.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_platform.cache_root import cache_root
from llm_platform.documents import (
    MANIFEST_LIMITS,
    DocumentError,
    iter_yaml,
    load_json_file,
    read_bytes,
)
from llm_platform.errors import InputError, PinnedFileError, ToolError
from llm_platform.logs import get_logger
from llm_platform.oci import atomic_write
from llm_platform.pinned_files import (
    EntryRefusedError,
    SourceUnreachableError,
    SyncTarget,
    file_sha256,
    load_lock_file,
    sync_pinned,
)

log = get_logger("charts")

# The default of `charts sync --mirror`: a directory of <chart>-<version>.tgz packages and INDEX.json.
CHARTS_MIRROR_ENV = "LLM_PLATFORM_CHARTS_MIRROR"
MIRROR_INDEX = "INDEX.json"
CHARTS_SYNC = SyncTarget(
    command="charts sync",
    mirror_hint=f"--mirror DIR or {CHARTS_MIRROR_ENV}=DIR",
    mirror_layout=f"a directory of <chart>-<version>.tgz packages and their {MIRROR_INDEX}",
)

_SHA256 = r"^[0-9a-f]{64}$"
_NAME = r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$"  # a chart name, and so a safe file name part
_VERSION = r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$"  # an exact SemVer version, as Helm pins it
# helm's words for a network that is not there (as opposed to a repository that answered "no").
_UNREACHABLE = re.compile(
    r"dial tcp|no such host|connection refused|network is unreachable|i/o timeout|TLS handshake timeout"
)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
HELM_PULL_TIMEOUT = 300.0


class ChartSource(BaseModel):
    """Where the chart was released from: provenance, and what a mirror's package must be built from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="upstream GitHub repository, owner/name")
    tag: str
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")


class LockedChart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chart: str = Field(pattern=_NAME)
    version: str = Field(pattern=_VERSION, strict=True, description="the exact chart version")
    repository: str = Field(
        pattern=r"^(https?|oci)://[^\s/]+(/[^\s]*)?$", description="chart repository URL or oci:// base"
    )
    published_sha256: str | None = Field(
        default=None, pattern=_SHA256, description="sha256 of the package the repository publishes"
    )
    published_sha256_source: str | None = Field(default=None, description="where that digest was read")
    source: ChartSource | None = None
    unavailable: str | None = Field(default=None, description="why the chart cannot be synced at all")

    @property
    def file(self) -> str:
        """The package's path in the cache (and its usual name in a mirror)."""
        return f"{self.chart}-{self.version}.tgz"

    @property
    def is_oci(self) -> bool:
        return self.repository.startswith("oci://")

    @property
    def label(self) -> str:
        return f"{self.chart} {self.version}"

    def pull_argv(self, helm: str, destination: Path) -> list[str]:
        """`helm pull` of exactly this version into `destination` (no unpacking, no provenance files)."""
        if self.is_oci:
            argv = [helm, "pull", f"{self.repository.rstrip('/')}/{self.chart}", "--version", self.version]
            if urlsplit(self.repository).hostname in _LOOPBACK_HOSTS:
                argv.append("--plain-http")  # a registry on this machine (tests) speaks plain HTTP
        else:
            argv = [helm, "pull", self.chart, "--repo", self.repository, "--version", self.version]
        return [*argv, "--destination", str(destination)]


class ChartLock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    charts: list[LockedChart]

    @model_validator(mode="after")
    def _one_entry_per_chart_version(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for i, entry in enumerate(self.charts):
            key = (entry.chart, entry.version)
            if key in seen:
                raise ValueError(f"charts.{i}: {entry.label} is listed twice")
            seen.add(key)
        return self

    def find(self, chart: str, version: str) -> LockedChart | None:
        return next((e for e in self.charts if (e.chart, e.version) == (chart, version)), None)


def load_lock(path: Path) -> ChartLock:
    return load_lock_file(path, ChartLock)


def default_chart_cache() -> Path:
    return Path(cache_root()) / "charts"


def _no_digest(entry: LockedChart) -> str:
    return (
        f"{entry.label}: the lock has no published digest (published_sha256) to verify a download from "
        f"{entry.repository} against; add the sha256 of the published package to the lock "
        f"(sha256sum of what `helm pull` gives), or sync from a mirror ({CHARTS_SYNC.mirror_hint})"
    )


def find_helm() -> str:
    helm = shutil.which("helm")
    if helm is None:
        raise ToolError(
            "charts sync: helm is not on PATH (scripts/setup.sh --tests installs the pinned one into "
            f".venv/bin); or sync from a mirror, which needs no helm: {CHARTS_SYNC.mirror_hint}"
        )
    return helm


@dataclass
class HelmRepository:
    """Each chart from its own chart repository with `helm pull` (HTTP index or OCI registry), into a
    temporary directory; the bytes are then verified against the lock's `published_sha256`. Helm's cache
    is that temporary directory too, so no stale repository index is ever used; its registry logins are
    the user's. `helm` defaults to the one on PATH."""

    helm: str | None = None
    remote = True
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="llm-platform-helm-pull-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def check(self, target: SyncTarget) -> None:
        pass

    def expected_sha256(self, entry: LockedChart) -> str:
        if entry.published_sha256 is None:
            raise EntryRefusedError(_no_digest(entry))
        return entry.published_sha256

    def verified_against(self, entry: LockedChart) -> str:
        return "the lock's published_sha256"

    def origin(self, entry: LockedChart) -> str:
        return f"{entry.label} from {entry.repository}"

    def mismatch_hint(self, entry: LockedChart) -> str:
        return ""

    def fetch(self, entry: LockedChart) -> bytes:
        assert self._tmp is not None, "use HelmRepository as a context manager"
        if self.helm is None:  # looked up on the first download: verifying a cache needs no helm
            self.helm = find_helm()
        work = Path(tempfile.mkdtemp(dir=self._tmp.name))
        dest = work / "out"
        dest.mkdir()
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(work / "cache"),
            "HELM_REPOSITORY_CACHE": str(work / "cache" / "repository"),
        }
        try:
            proc = subprocess.run(
                entry.pull_argv(self.helm, dest),
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=HELM_PULL_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise SourceUnreachableError(
                f"helm pull of {entry.label} from {entry.repository} timed out after {HELM_PULL_TIMEOUT:.0f} s"
            ) from exc
        except OSError as exc:
            raise ToolError(f"charts sync: cannot run {self.helm}: {exc.strerror}") from exc
        try:
            if proc.returncode != 0:
                said = " ".join(proc.stderr.split()).removeprefix("Error: ") or f"exit {proc.returncode}"
                if _UNREACHABLE.search(said):
                    host = urlsplit(entry.repository).netloc
                    raise SourceUnreachableError(f"cannot reach {host} for {entry.label}: {said}")
                raise EntryRefusedError(f"{entry.label} from {entry.repository}: helm pull failed: {said}")
            packages = sorted(dest.glob("*.tgz"))
            if len(packages) != 1:
                raise EntryRefusedError(
                    f"{entry.label} from {entry.repository}: helm pull left {len(packages)} packages, not one"
                )
            return packages[0].read_bytes()
        finally:
            shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class MirroredPackage:
    """One INDEX.json record: the package file in the mirror, its sha256, what it was built from."""

    file: str
    sha256: str
    source: ChartSource


@dataclass
class ChartMirror:
    """A directory of chart packages and their `INDEX.json` (laid out like `../shared/charts`): each
    package is verified against INDEX.json's sha256 for its chart and version, and must be built from the
    source commit the lock records. A package missing from the index or the directory is refused."""

    root: Path
    remote = False
    packages: dict[tuple[str, str], MirroredPackage] = field(default_factory=dict, init=False, repr=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @property
    def index_path(self) -> Path:
        return self.root / MIRROR_INDEX

    def check(self, target: SyncTarget) -> None:
        """Read INDEX.json: a mirror without one cannot vouch for any package."""
        layout = target.mirror_layout
        if not self.root.is_dir():
            raise InputError(
                f"{target.command}: mirror {self.root} is not a directory (give {layout} with "
                f"{target.mirror_hint})"
            )
        try:
            records = load_json_file(self.index_path, MANIFEST_LIMITS)
        except DocumentError as exc:
            if exc.kind != "missing":
                raise InputError(f"{target.command}: {exc}") from None
            raise InputError(
                f"{target.command}: mirror {self.root} has no {MIRROR_INDEX}, so none of its packages can "
                f"be verified (give {layout})"
            ) from exc
        self.packages = _index_records(records, self.index_path, target)

    def _record(self, entry: LockedChart) -> MirroredPackage:
        record = self.packages.get((entry.chart, entry.version))
        if record is None:
            raise EntryRefusedError(
                f"{entry.label}: missing from the mirror (not in {self.index_path}); add its package and "
                f"its INDEX.json record, or sync it from {entry.repository}"
            )
        return record

    def expected_sha256(self, entry: LockedChart) -> str:
        record = self._record(entry)
        if entry.source is not None and record.source != entry.source:
            got, want = record.source, entry.source
            raise EntryRefusedError(
                f"{entry.label}: the mirror's package was built from {got.repo}@{got.tag} ({got.commit}), "
                f"the lock pins {want.repo}@{want.tag} ({want.commit})"
            )
        return record.sha256

    def verified_against(self, entry: LockedChart) -> str:
        return f"{self.index_path}"

    def origin(self, entry: LockedChart) -> str:
        return f"{entry.label} ({self.root / self._record(entry).file})"

    def mismatch_hint(self, entry: LockedChart) -> str:
        return (
            "; the package or its INDEX.json record has been changed: restore both from the mirror's source"
        )

    def fetch(self, entry: LockedChart) -> bytes:
        path = self.root / self._record(entry).file
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise EntryRefusedError(
                f"{entry.label}: {path} is missing from the mirror (its {MIRROR_INDEX} lists it)"
            ) from exc
        except OSError as exc:
            raise EntryRefusedError(
                f"{entry.label}: cannot read {path} from the mirror: {exc.strerror}"
            ) from exc


def _index_records(records: object, path: Path, target: SyncTarget) -> dict[tuple[str, str], MirroredPackage]:
    if not isinstance(records, list):
        raise InputError(f"{target.command}: {path}: expected a JSON list of package records")
    packages: dict[tuple[str, str], MirroredPackage] = {}
    for i, rec in enumerate(records):
        try:
            if not isinstance(rec, dict):
                raise TypeError("not an object")
            name, sha256 = str(rec["file"]), str(rec["sha256"])
            key = (str(rec["chart"]), str(rec["version"]))
            source = ChartSource(repo=rec["repo"], tag=rec["tag"], commit=rec["commit"])
        except (KeyError, TypeError, ValidationError) as exc:
            raise InputError(f"{target.command}: {path}: record {i} is not a package record ({exc})") from exc
        if "/" in name or name in ("", ".", "..") or not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise InputError(f"{target.command}: {path}: record {i} ({name!r}) has a bad file name or sha256")
        if key in packages:
            raise InputError(f"{target.command}: {path}: {key[0]} {key[1]} is listed twice")
        packages[key] = MirroredPackage(file=name, sha256=sha256, source=source)
    return packages


@dataclass(frozen=True)
class ChartSyncResult:
    fetched: int
    cached: int
    skipped: tuple[LockedChart, ...]  # `unavailable` entries, left out


def select(lock: ChartLock, only: Sequence[str] = ()) -> list[LockedChart]:
    """The entries `only` names (`CHART` or `CHART@VERSION`), in lock order; all of them when empty."""
    if not only:
        return list(lock.charts)
    chosen: list[LockedChart] = []
    for selector in only:
        chart, _, version = selector.partition("@")
        matches = [e for e in lock.charts if e.chart == chart and (not version or e.version == version)]
        if not matches:
            known = sorted({e.chart for e in lock.charts})
            what = f"{chart} {version}" if version else chart
            hint = "" if chart in known else f" (it has: {', '.join(known)})"
            raise InputError(f"charts sync: --only {selector}: the lock has no {what}{hint}")
        chosen.extend(e for e in matches if e not in chosen)
    return [e for e in lock.charts if e in chosen]


def sync_charts(
    lock: ChartLock,
    cache: Path,
    *,
    mirror: Path | None = None,
    only: Sequence[str] = (),
    helm: str | None = None,
) -> ChartSyncResult:
    """Put every locked chart (or those `only` names) not already cached and verified into
    `cache/<chart>-<version>.tgz`: from its chart repository, verified against `published_sha256`, or
    from `mirror`, verified against the mirror's INDEX.json. A missing or mismatching package is refused
    (nothing written) and fails the sync after the others, naming chart and version. An `unavailable`
    entry is skipped with a warning, or refused when `only` names it."""
    entries = select(lock, only)
    skipped = tuple(e for e in entries if e.unavailable)
    if skipped and only:
        raise PinnedFileError(
            "charts sync: "
            + "; ".join(
                f"{e.label} cannot be synced: {' '.join((e.unavailable or '').split())}" for e in skipped
            )
        )
    for entry in skipped:
        log.warning("charts sync: skipped %s: the lock marks it unavailable (see its entry)", entry.label)
    wanted = [e for e in entries if not e.unavailable]
    if mirror is not None:
        source = ChartMirror(mirror)
        fetched, cached = sync_pinned(wanted, cache, source, CHARTS_SYNC)
        for entry in wanted:  # what each package was verified against, for use without the mirror
            atomic_write(_mirror_stamp(cache, entry), f"{source.expected_sha256(entry)}\n".encode())
    else:
        remote = [e for e in wanted if not _verified_from_mirror(cache, e)]
        fetched, cached = sync_pinned(remote, cache, HelmRepository(helm), CHARTS_SYNC)
        cached += len(wanted) - len(remote)
    return ChartSyncResult(fetched=fetched, cached=cached, skipped=skipped)


def _mirror_stamp(cache: Path, entry: LockedChart) -> Path:
    return cache / f"{entry.file}.mirror-sha256"


def _verified_from_mirror(cache: Path, entry: LockedChart) -> bool:
    """A package a mirror sync verified (against that mirror's INDEX.json) and put in the cache is used
    without the mirror, as long as its bytes are still the ones verified then; one that also has a
    published digest is always checked against that instead."""
    if entry.published_sha256 is not None:
        return False
    try:
        want = _mirror_stamp(cache, entry).read_text().strip()
    except OSError:
        return False
    package = cache / entry.file
    return bool(re.fullmatch(r"[0-9a-f]{64}", want)) and package.is_file() and file_sha256(package) == want


def ensure_chart(
    lock: ChartLock,
    chart: str,
    version: str,
    cache: Path | None = None,
    *,
    mirror: Path | None = None,
    helm: str | None = None,
) -> Path:
    """The path of `<chart>-<version>.tgz` in the cache, verified (synced first if it is not cached with the
    sha256 its source vouches for): what a renderer calls for each chart source of the tree."""
    entry = lock.find(chart, version)
    if entry is None:
        raise InputError(
            f"chart {chart} {version} is not in the chart lock; add it to gitops/charts.lock.yaml "
            "(repository, published_sha256, source)"
        )
    cache = cache or default_chart_cache()
    sync_charts(lock, cache, mirror=mirror, only=[f"{chart}@{version}"], helm=helm)
    return cache / entry.file


def tree_chart_sources(paths: Iterable[Path]) -> list[tuple[Path, str, str, str]]:
    """Every Helm chart source (`chart:` + `targetRevision:` + `repoURL:`) of the Argo CD Applications in
    `paths`, as (file, repoURL, chart, version): what the lock must cover."""
    found: list[tuple[Path, str, str, str]] = []
    for path in paths:
        for document in iter_yaml(
            read_bytes(path, MANIFEST_LIMITS), source=str(path), limits=MANIFEST_LIMITS
        ):
            doc = document.data
            if not isinstance(doc, dict) or doc.get("kind") != "Application":
                continue
            spec = doc.get("spec") or {}
            sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
            for src in sources:
                if isinstance(src, dict) and src.get("chart"):
                    found.append((path, str(src["repoURL"]), str(src["chart"]), str(src["targetRevision"])))
    return found


def lock_repository_of(repo_url: str) -> str:
    """An Application's `repoURL` as the lock spells it: Argo CD writes an OCI chart repository without
    its scheme (`ghcr.io/kserve/charts`), the lock with it (`oci://ghcr.io/kserve/charts`)."""
    url = repo_url.rstrip("/")
    return url if re.match(r"^(https?|oci)://", url) else f"oci://{url}"


@dataclass(frozen=True)
class RecordedDigest:
    chart: str
    version: str
    repository: str
    published_sha256: str


def record_published_digests(
    lock_path: Path, *, only: Sequence[str] = (), cache: Path | None = None, helm: str | None = None
) -> list[RecordedDigest]:
    """`charts lock`: download each selected chart that has no `published_sha256` from its repository
    (`helm pull`), check the package is that chart and version, and write its sha256 into the lock, with
    a `published_sha256_source` that says it was recorded, not read from a second source (trust on first
    use: the lock change is reviewed like any other). The lock is rewritten once, only those lines
    changing, and only when every download succeeded; the packages land in the cache, so a later sync
    verifies them without downloading again."""
    lock = load_lock(lock_path)
    wanted = [e for e in select(lock, only) if e.published_sha256 is None and not e.unavailable]
    if not wanted:
        return []
    text = lock_path.read_text(encoding="utf-8")
    recorded: list[tuple[LockedChart, bytes]] = []
    failures: list[str] = []
    with HelmRepository(helm) as repo:
        for entry in wanted:
            try:
                package = repo.fetch(entry)
                _check_package_is(entry, package)
            except SourceUnreachableError as exc:
                raise PinnedFileError(f"charts lock: {exc}") from None
            except EntryRefusedError as exc:
                failures.append(str(exc))
                continue
            recorded.append((entry, package))
    if failures:
        raise PinnedFileError(f"charts lock recorded nothing: {'; '.join(failures)}")
    today = datetime.now(UTC).date().isoformat()
    for entry, package in recorded:
        text = _splice_digest(text, entry, hashlib.sha256(package).hexdigest(), today, lock_path)
    check = ChartLock.model_validate(yaml.safe_load(text))
    for entry, package in recorded:
        found = check.find(entry.chart, entry.version)
        if found is None or found.published_sha256 != hashlib.sha256(package).hexdigest():
            raise PinnedFileError(
                f"charts lock: {lock_path}: the edit of {entry.label} did not take; nothing written"
            )
    cache = cache or default_chart_cache()
    cache.mkdir(parents=True, exist_ok=True)
    for entry, package in recorded:
        atomic_write(cache / entry.file, package)
    atomic_write(lock_path, text.encode("utf-8"))
    return [
        RecordedDigest(e.chart, e.version, e.repository, hashlib.sha256(p).hexdigest()) for e, p in recorded
    ]


def _check_package_is(entry: LockedChart, package: bytes) -> None:
    """The package's Chart.yaml names this chart and version (a repository could serve another)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
            tops = [m for m in tar.getmembers() if m.isfile() and re.fullmatch(r"[^/]+/Chart\.yaml", m.name)]
            if len(tops) != 1:
                raise KeyError(f"{len(tops)} top-level Chart.yaml files")
            member = tops[0]
            if member.size > 1024 * 1024:
                raise EntryRefusedError(f"{entry.label}: its Chart.yaml is over 1 MiB")
            handle = tar.extractfile(member)
            meta = yaml.safe_load(handle.read()) if handle is not None else None
    except (tarfile.TarError, KeyError, OSError, yaml.YAMLError) as exc:
        raise EntryRefusedError(
            f"{entry.label} from {entry.repository}: not a chart package ({exc})"
        ) from None
    if not isinstance(meta, dict) or (str(meta.get("name")), str(meta.get("version"))) != (
        entry.chart,
        entry.version,
    ):
        got = f"{meta.get('name')} {meta.get('version')}" if isinstance(meta, dict) else "no Chart.yaml"
        raise EntryRefusedError(f"{entry.label} from {entry.repository}: the package is {got}")


def _splice_digest(text: str, entry: LockedChart, digest: str, today: str, path: Path) -> str:
    """`text` with the entry's `published_sha256: null` line replaced (whatever the list's indentation)."""
    head = re.compile(
        rf"^(?P<indent>[ ]*)- chart: ['\"]?{re.escape(entry.chart)}['\"]?\n"
        rf"(?P=indent)  version: ['\"]?{re.escape(entry.version)}['\"]?\n",
        re.M,
    )
    match = head.search(text)
    if match is None:
        raise PinnedFileError(f"charts lock: {path}: cannot find the entry of {entry.label} to edit")
    field_indent = match.group("indent") + "  "
    end = match.end()
    for line in text[match.end() :].splitlines(keepends=True):
        if not line.startswith(field_indent):
            break
        end += len(line)
    block = text[match.end() : end]
    line_re = re.compile(rf"^{field_indent}published_sha256: (null|~)?[ \t]*$", re.M)
    if len(line_re.findall(block)) != 1:
        raise PinnedFileError(
            f"charts lock: {path}: the entry of {entry.label} has no single `published_sha256: null` line"
        )
    source = (
        f"{field_indent}published_sha256: {digest}\n{field_indent}published_sha256_source: >-\n"
        f"{field_indent}  recorded by `llm-platform charts lock` from {entry.repository} on {today} (downloaded "
        "once and trusted on first use: review it)"
    )
    return text[: match.end()] + line_re.sub(lambda _: source, block, count=1) + text[end:]
