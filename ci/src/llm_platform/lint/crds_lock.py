"""`gitops/crds.lock.yaml`: the CRDs lint validates custom resources against, and `crds sync`, which puts
them into a cache directory.

Two kinds of entry, so that what is checked is what is installed:
- `crds`: upstream CRD files (URL + sha256) for kinds no chart of the tree installs, from upstream or a
  mirror directory, every byte verified before it lands (`llm_platform.pinned_files`, shared with other
  locks);
- `charts`: the CRDs a pinned chart of the tree installs, rendered (`helm template --include-crds`) from
  the chart package the chart lock verifies, at exactly the version the tree deploys."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from llm_platform.cache_root import cache_root
from llm_platform.documents import RENDER_LIMITS, DocumentError, iter_yaml
from llm_platform.errors import InputError, PinnedFileError, ToolError
from llm_platform.http_client import httpx
from llm_platform.pinned_files import Mirror, SyncTarget, Upstream, load_lock_file, sync_pinned

# The default of `crds sync --mirror`: a directory laid out like the cache (<project>/<tag>/<file>).
CRDS_MIRROR_ENV = "LLM_PLATFORM_CRDS_MIRROR"
CRDS_SYNC = SyncTarget(command="crds sync", mirror_hint=f"--mirror DIR or {CRDS_MIRROR_ENV}=DIR")


class LockedCrd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str
    version: str = Field(description="upstream release tag the file is pinned to")
    url: str = Field(pattern=r"^https?://")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    file: str = Field(description="relative path inside the cache: <project>/<tag>/<name>.yaml")
    kinds: list[str] = Field(default_factory=list, description="group/Kind defined by the file")


class ChartCrds(BaseModel):
    """The CRDs a chart of the tree installs, taken from that chart (verified by gitops/charts.lock.yaml)."""

    model_config = ConfigDict(extra="forbid")

    chart: str
    version: str = Field(description="the chart version the tree pins")
    set: dict[str, str] = Field(
        default_factory=dict, description="values that make the chart render its CRDs (helm --set)"
    )
    file: str = Field(description="relative path inside the cache: <chart>/<version>/crds.yaml")
    kinds: list[str] = Field(min_length=1, description="group/Kind the chart installs (checked on sync)")


class CrdLock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crds: list[LockedCrd]
    charts: list[ChartCrds] = Field(default_factory=list)


def load_lock(path: Path) -> CrdLock:
    lock = load_lock_file(path, CrdLock)
    for file in [e.file for e in lock.crds] + [e.file for e in lock.charts]:
        if file.startswith("/") or ".." in Path(file).parts or not re.fullmatch(r"[\w./-]+", file):
            raise InputError(f"{path}: file {file!r} must be a plain relative path")
    return lock


def default_crd_cache() -> Path:
    return Path(cache_root()) / "crds"


def sync_crds(
    lock: CrdLock, cache: Path, *, mirror: Path | None = None, client: httpx.Client | None = None
) -> tuple[int, int]:
    """Fetch every locked CRD not already cached with the right sha256, from its upstream URL or, with
    `mirror`, from `mirror/<entry.file>`. Returns (fetched, cached). A missing or mismatching file is
    refused (nothing written) and fails the sync after the others finish (`pinned_files.sync_pinned`)."""
    source: Upstream | Mirror = Mirror(mirror) if mirror is not None else Upstream(client)
    return sync_pinned(lock.crds, cache, source, CRDS_SYNC)


CHART_CRDS_FORMAT = 1  # bump when what a chart-CRD file holds changes
KUBE_VERSION_FOR_CRDS = "1.35.0"


def sync_chart_crds(
    lock: CrdLock,
    cache: Path,
    *,
    charts_lock: Path,
    chart_cache: Path | None = None,
    charts_mirror: Path | None = None,
    helm: str | None = None,
) -> tuple[int, int]:
    """Render the CRDs of every `charts` entry from its verified package into `cache/<file>` (skipped when
    the file there was made from the same package sha256, values and helm). Returns (rendered, cached).
    A chart that renders none of the kinds its entry names fails the sync: the lock is then stale."""
    if not lock.charts:
        return 0, 0
    from llm_platform.lint.charts_lock import ensure_chart, find_helm
    from llm_platform.lint.charts_lock import load_lock as load_charts_lock
    from llm_platform.pinned_files import file_sha256

    helm = helm or find_helm()
    version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, check=False)
    helm_version = version.stdout.strip() or "unknown"
    charts = load_charts_lock(charts_lock)
    from llm_platform.oci import atomic_write

    todo: list[tuple[ChartCrds, Path, str, str]] = []  # entry, package, package sha256, cache key
    for entry in lock.charts:
        tgz = ensure_chart(charts, entry.chart, entry.version, chart_cache, mirror=charts_mirror, helm=helm)
        package = file_sha256(tgz)
        key = hashlib.sha256(
            json.dumps([CHART_CRDS_FORMAT, package, sorted(entry.set.items()), helm_version]).encode()
        ).hexdigest()
        target = cache / entry.file
        try:
            if _stamp(target).read_text().strip() == key and target.is_file():
                continue
        except OSError:
            pass
        todo.append((entry, tgz, package, key))
    with ThreadPoolExecutor(max_workers=4) as pool:
        renders = list(pool.map(lambda job: _render_crds(helm, job[1], job[0]), todo))
    for (entry, _, package, key), crds in zip(todo, renders, strict=True):
        got = {f"{c['spec']['group']}/{c['spec']['names']['kind']}" for c in crds}
        missing = sorted(set(entry.kinds) - got)
        if missing:
            raise PinnedFileError(
                f"crds sync: chart {entry.chart} {entry.version} does not install {', '.join(missing)} "
                f"(it installs {', '.join(sorted(got)) or 'no CRD'}): update its `charts` entry in the CRD lock"
            )
        header = (
            f"# CRDs of chart {entry.chart} {entry.version} (package sha256 {package}), "
            f"rendered by `llm-platform crds sync` with {helm_version}\n"
        )
        target = cache / entry.file
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, (header + yaml.safe_dump_all(crds, sort_keys=True)).encode())
        atomic_write(_stamp(target), f"{key}\n".encode())
    return len(todo), len(lock.charts) - len(todo)


def _stamp(target: Path) -> Path:
    """Beside each rendered file: the key of what it was rendered from (package, values, helm)."""
    return target.with_name(target.name + ".source")


def _render_crds(helm: str, tgz: Path, entry: ChartCrds) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="llm-platform-chart-crds-") as tmp:
        argv = [helm, "template", "crds", str(tgz), "--include-crds", "--kube-version", KUBE_VERSION_FOR_CRDS]
        for k, v in sorted(entry.set.items()):
            argv += ["--set", f"{k}={v}"]
        env = {**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp}
        try:
            out = subprocess.run(argv, capture_output=True, check=False, timeout=300, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolError(
                f"crds sync: helm template of chart {entry.chart} {entry.version}: {exc}"
            ) from None
    if out.returncode != 0:
        detail = " ".join(out.stderr.decode(errors="replace").split())[:500]
        raise ToolError(f"crds sync: helm template of chart {entry.chart} {entry.version} failed: {detail}")
    try:
        docs = [
            d.data
            for d in iter_yaml(out.stdout, source=f"{entry.chart}-{entry.version}", limits=RENDER_LIMITS)
        ]
    except DocumentError as exc:
        raise ToolError(
            f"crds sync: chart {entry.chart} {entry.version} renders no valid YAML: {exc}"
        ) from None
    crds = [
        d
        for d in docs
        if isinstance(d, dict)
        and d.get("kind") == "CustomResourceDefinition"
        and isinstance(d.get("spec"), dict)
        and isinstance((d["spec"].get("names") or {}).get("kind"), str)
    ]
    return sorted(crds, key=lambda d: str((d.get("metadata") or {}).get("name")))


CACHE_MANIFEST = ".llm-platform-crds.json"  # the files the last sync left in a cache directory


def prune_crd_cache(lock: CrdLock, cache: Path) -> list[str]:
    """Remove from `cache` the CRD files an earlier sync wrote that the lock no longer lists (lint reads
    every file in the directory: a CRD of an older release left there would still be used), then record
    what the cache now holds. Only files of our own layout are touched: those listed in the directory's
    manifest, or, in the default cache before it had one, `<project>/<tag>/<file>.yaml`."""
    wanted = {e.file for e in lock.crds} | {e.file for e in lock.charts}
    wanted |= {f + ".source" for f in (e.file for e in lock.charts)}
    manifest = cache / CACHE_MANIFEST
    try:
        previous = set(json.loads(manifest.read_text()))
    except (OSError, ValueError, TypeError):
        previous = set()
        if cache.resolve() == default_crd_cache().resolve() and cache.is_dir():
            previous = {
                p.relative_to(cache).as_posix()
                for p in cache.glob("*/*/*")
                if p.is_file() and p.suffix in (".yaml", ".yml", ".source")
            }
    removed = []
    for rel in sorted(previous - wanted):
        path = cache / rel
        if ".." in Path(rel).parts or not path.is_file():
            continue
        path.unlink()
        removed.append(rel)
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
    if cache.is_dir():
        from llm_platform.oci import atomic_write

        atomic_write(manifest, json.dumps(sorted(wanted)).encode())
    return removed
