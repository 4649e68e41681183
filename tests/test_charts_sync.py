"""`llm-platform charts sync` and gitops/charts.lock.yaml, never against the internet:

- the lock covers every Helm chart source of gitops/apps/** and the validated versions;
- the mirror path, from a copy of the directory in $LLM_PLATFORM_CHARTS_MIRROR (scripts/test.sh points it at
  ../shared/charts; no test reads that directory itself): every package verified against INDEX.json; a
  tampered INDEX.json record, a tampered or missing package, a foreign source commit, no INDEX.json at all
  are each refused naming chart and version, with nothing unverified in the cache;
- the download path, `helm pull` from a real chart repository on 127.0.0.1 (an index.yaml and a package
  made with the pinned helm, served over loopback HTTP) and from a real OCI registry (docker-registry):
  verified against the lock's published digest; a tampered package, an unknown version, a missing digest
  and an unreachable repository are refused;
- the pinned helm and kubectl (scripts/tools.lock) are the ones on the tests' PATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from llm_platform.errors import InputError, PinnedFileError
from llm_platform.lint.charts_lock import (
    CHARTS_MIRROR_ENV,
    ChartLock,
    ensure_chart,
    load_lock,
    lock_repository_of,
    record_published_digests,
    sync_charts,
    tree_chart_sources,
)
from tests.support.loopback import LoopbackHTTPServer
from tests.support.registry import Registry
from tests.support.tools import require_tool, run

_CLI = str(Path(sys.executable).with_name("llm-platform"))

# The validated versions (the platform's component table) the tree moves to; opencost 2.5.23 cannot be
# obtained, so 2.5.17 stands in for it.
VALIDATED = {
    ("argo-cd", "9.5.21"),
    ("kueue", "0.18.1"),
    ("agentgateway", "v1.2.1"),
    ("agentgateway-crds", "v1.2.1"),
    ("kube-prometheus-stack", "86.2.3"),
    ("external-secrets", "2.6.0"),
    ("cert-manager", "v1.20.2"),
    ("kserve-crd", "v0.19.0"),
    ("kserve-resources", "v0.19.0"),
    ("kserve-runtime-configs", "v0.19.0"),
    ("opencost", "2.5.17"),
    ("keda", "2.20.2"),
    ("dex", "0.24.0"),
    ("oauth2-proxy", "7.7.1"),
    ("open-webui", "14.6.0"),
    ("dcgm-exporter", "3.4.2"),
    ("gpu-operator", "v25.3.4"),
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without a chart mirror (scripts/test.sh sets one), plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if k != CHARTS_MIRROR_ENV}, **extra}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_temporaries(cache: Path) -> bool:
    return not [p for p in cache.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def _write_lock(path: Path, charts: list[dict[str, object]]) -> Path:
    path.write_text(yaml.safe_dump({"charts": charts}, sort_keys=False))
    return path


@pytest.fixture
def lock(repo_root: Path) -> ChartLock:
    return load_lock(repo_root / "gitops" / "charts.lock.yaml")


# An `unavailable` entry (the tree has none today): no source tag to rebuild it from, no known digest.
_UNAVAILABLE = {
    "chart": "gone",
    "version": "1.0.0",
    "repository": "oci://registry.example/charts",
    "published_sha256": None,
    "source": None,
    "unavailable": "its chart versions are not recorded in its repository, so it cannot be rebuilt",
}


@pytest.fixture
def lock_with_unavailable(repo_root: Path, tmp_path: Path) -> ChartLock:
    """A copy of the tree's lock plus `_UNAVAILABLE`."""
    charts = yaml.safe_load((repo_root / "gitops" / "charts.lock.yaml").read_text())["charts"]
    return load_lock(_write_lock(tmp_path / "charts.lock.yaml", [*charts, _UNAVAILABLE]))


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A copy of the chart mirror named by $LLM_PLATFORM_CHARTS_MIRROR (a test may tamper with it)."""
    given = os.environ.get(CHARTS_MIRROR_ENV)
    if not given or not Path(given, "INDEX.json").is_file():
        pytest.fail(  # nothing may skip: without a mirror these tests cannot run, say how to give one
            f"{CHARTS_MIRROR_ENV} names no chart mirror (a directory of packages with INDEX.json; "
            "scripts/test.sh sets it from ../shared/charts when that is beside the checkout)",
            pytrace=False,
        )
    dest = tmp_path / "mirror"
    shutil.copytree(given, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def _index(mirror: Path) -> list[dict[str, object]]:
    records: list[dict[str, object]] = json.loads((mirror / "INDEX.json").read_text())
    return records


def _rewrite_index(mirror: Path, chart: str, version: str, **changes: object) -> None:
    records = _index(mirror)
    [record] = [r for r in records if (r["chart"], r["version"]) == (chart, version)]
    record.update(changes)
    (mirror / "INDEX.json").write_text(json.dumps(records, indent=1))


# --- the lock ---


@pytest.mark.unit
def test_the_lock_pins_every_chart_source_of_the_tree(repo_root: Path, lock: ChartLock) -> None:
    sources = tree_chart_sources(sorted((repo_root / "gitops" / "apps").rglob("*.yaml")))
    assert len(sources) >= 17
    for path, repo_url, chart, version in sources:
        entry = lock.find(chart, version)
        assert entry is not None, f"{path}: {chart} {version} is not in gitops/charts.lock.yaml"
        assert entry.repository == lock_repository_of(repo_url), f"{path}: {chart} {version}"


@pytest.mark.unit
def test_the_lock_pins_the_validated_versions_with_their_provenance(lock: ChartLock) -> None:
    pinned = {(e.chart, e.version) for e in lock.charts}
    assert pinned >= VALIDATED
    for entry in lock.charts:
        if entry.unavailable:  # no source tag to rebuild it from, no known digest (else it could sync)
            assert (entry.source, entry.published_sha256) == (None, None), entry.label
            continue
        assert entry.source is not None, entry.label
        # A published digest always says where it was read.
        assert (entry.published_sha256 is None) == (entry.published_sha256_source is None), entry.label


@pytest.mark.unit
def test_the_mirror_holds_exactly_the_lock_with_the_same_sources(lock: ChartLock, mirror: Path) -> None:
    records = {(r["chart"], r["version"]): r for r in _index(mirror)}
    wanted = {(e.chart, e.version): e for e in lock.charts if not e.unavailable}
    assert set(records) == set(wanted)
    for key, entry in wanted.items():
        record = records[key]
        assert entry.source is not None
        assert (record["repo"], record["tag"], record["commit"]) == (
            entry.source.repo,
            entry.source.tag,
            entry.source.commit,
        )
        assert record["file"] == entry.file


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "charts:\n  - {chart: a, version: 1.0.0, repository: https://x.example}\n"
            "  - {chart: a, version: 1.0.0, repository: https://x.example}\n",
            "listed twice",
        ),
        ("charts:\n  - {chart: a, version: '1.0', repository: https://x.example}\n", "charts.0.version"),
        ("charts:\n  - {chart: a, version: 1.0.0, repository: ftp://x}\n", "charts.0.repository"),
        (
            "charts:\n  - {chart: a, version: 1.0.0, repository: https://x.example, published_sha256: abc}\n",
            "charts.0.published_sha256",
        ),
    ],
)
def test_a_bad_lock_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "charts.lock.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=field):
        load_lock(path)


# --- the mirror path ---


@pytest.mark.unit
def test_mirror_sync_verifies_every_package_then_reuses_the_cache(
    lock_with_unavailable: ChartLock, mirror: Path
) -> None:
    lock = lock_with_unavailable
    cache = mirror.parent / "cache"
    result = sync_charts(lock, cache, mirror=mirror)
    wanted = [e for e in lock.charts if not e.unavailable]
    assert (result.fetched, result.cached) == (len(wanted), 0)
    # Skipped with its reason, not refused.
    assert [(e.label, e.unavailable) for e in result.skipped] == [("gone 1.0.0", _UNAVAILABLE["unavailable"])]
    sha = {(r["chart"], r["version"]): r["sha256"] for r in _index(mirror)}
    for entry in wanted:
        assert _sha256(cache / entry.file) == sha[(entry.chart, entry.version)]
    packages = sorted(p.name for p in cache.iterdir() if p.suffix == ".tgz")
    assert packages == sorted(e.file for e in wanted)
    # Beside each package: what the mirror vouched for, so the cache serves later runs without the mirror.
    assert sorted(p.name for p in cache.iterdir() if p.suffix != ".tgz") == [
        f"{f}.mirror-sha256" for f in packages
    ]
    for package in mirror.glob("*.tgz"):  # verified cache entries are not read from the mirror again
        package.unlink()
    again = sync_charts(lock, cache, mirror=mirror)
    assert (again.fetched, again.cached) == (0, len(wanted))
    # The renderer's API: a verified package path for (chart, version).
    path = ensure_chart(lock, "cert-manager", "v1.20.2", cache, mirror=mirror)
    assert path == cache / "cert-manager-v1.20.2.tgz" and _sha256(path) == sha[("cert-manager", "v1.20.2")]


def test_a_mirror_verified_package_serves_later_runs_without_the_mirror_while_its_bytes_hold(
    lock: ChartLock, mirror: Path
) -> None:
    """`charts sync --mirror` then `lint` without it: the packages the mirror vouched for are used from the
    cache (no chart repository is contacted); one whose bytes changed since is not, and with no network
    it cannot be had at all, so the run says so instead of using it."""
    cache = mirror.parent / "cache"
    chart = next(e for e in lock.charts if e.published_sha256 is None and not e.unavailable)
    sync_charts(lock, cache, mirror=mirror, only=[f"{chart.chart}@{chart.version}"])
    assert ensure_chart(lock, chart.chart, chart.version, cache) == cache / chart.file  # no mirror given
    (cache / chart.file).write_bytes((cache / chart.file).read_bytes() + b"\0")
    with pytest.raises(PinnedFileError, match=rf"{re.escape(chart.label)}: the lock has no published digest"):
        ensure_chart(lock, chart.chart, chart.version, cache)


@pytest.mark.unit
def test_a_tampered_index_record_is_refused_naming_chart_and_version(lock: ChartLock, mirror: Path) -> None:
    _rewrite_index(mirror, "cert-manager", "v1.20.2", sha256="0" * 64)
    cache = mirror.parent / "cache"
    (cache).mkdir()
    (cache / "cert-manager-v1.20.2.tgz").write_bytes(b"stale")  # a wrong cached copy goes too
    with pytest.raises(PinnedFileError) as err:
        sync_charts(lock, cache, mirror=mirror)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("charts sync refused 1 file(s): cert-manager v1.20.2 (")
    assert f"does not match {mirror / 'INDEX.json'} ({'0' * 64})" in message
    assert not (cache / "cert-manager-v1.20.2.tgz").exists()
    assert (cache / "cert-manager-v1.21.1.tgz").is_file() and _no_temporaries(cache)


@pytest.mark.unit
def test_a_tampered_package_is_refused(lock: ChartLock, mirror: Path) -> None:
    package = mirror / "keda-2.20.2.tgz"
    package.write_bytes(package.read_bytes() + b"\0")
    cache = mirror.parent / "cache"
    with pytest.raises(PinnedFileError, match=r"refused 1 file\(s\): keda 2\.20\.2 \(.*keda-2\.20\.2\.tgz\)"):
        sync_charts(lock, cache, mirror=mirror, only=["keda"])
    assert not cache.exists() or not any(cache.iterdir())


@pytest.mark.unit
def test_a_package_missing_from_the_mirror_is_refused(lock: ChartLock, mirror: Path) -> None:
    (mirror / "dex-0.24.0.tgz").unlink()
    records = [r for r in _index(mirror) if r["chart"] != "oauth2-proxy"]  # and one not even indexed
    (mirror / "INDEX.json").write_text(json.dumps(records))
    cache = mirror.parent / "cache"
    with pytest.raises(PinnedFileError) as err:
        sync_charts(lock, cache, mirror=mirror)
    message = str(err.value)
    assert message.startswith("charts sync refused 2 file(s): ")
    assert f"dex 0.24.0: {mirror / 'dex-0.24.0.tgz'} is missing from the mirror" in message
    assert f"oauth2-proxy 7.7.1: missing from the mirror (not in {mirror / 'INDEX.json'})" in message
    assert not (cache / "dex-0.24.0.tgz").exists() and not (cache / "oauth2-proxy-7.7.1.tgz").exists()
    assert (cache / "open-webui-14.6.0.tgz").is_file()


@pytest.mark.unit
def test_a_package_built_from_another_commit_is_refused(lock: ChartLock, mirror: Path) -> None:
    _rewrite_index(mirror, "kueue", "0.18.6", commit="1" * 40)
    with pytest.raises(PinnedFileError, match=r"kueue 0\.18\.6: the mirror's package was built from "):
        sync_charts(lock, mirror.parent / "cache", mirror=mirror, only=["kueue@0.18.6"])


@pytest.mark.unit
def test_a_mirror_without_its_index_or_not_a_directory_is_bad_input(lock: ChartLock, mirror: Path) -> None:
    (mirror / "INDEX.json").unlink()
    with pytest.raises(InputError, match=r"charts sync: mirror .*/mirror has no INDEX\.json"):
        sync_charts(lock, mirror.parent / "cache", mirror=mirror)
    with pytest.raises(InputError, match=r"is not a directory .*LLM_PLATFORM_CHARTS_MIRROR=DIR"):
        sync_charts(lock, mirror.parent / "cache", mirror=mirror / "nope")
    assert not (mirror.parent / "cache").exists()


@pytest.mark.unit
def test_only_selects_and_unavailable_or_unknown_charts_are_refused(
    lock_with_unavailable: ChartLock, mirror: Path
) -> None:
    lock = lock_with_unavailable
    cache = mirror.parent / "cache"
    result = sync_charts(lock, cache, mirror=mirror, only=["argo-cd", "kserve-crd@v0.19.0"])
    assert (result.fetched, result.skipped) == (3, ())
    assert sorted(p.name for p in cache.glob("*.tgz")) == [
        "argo-cd-10.1.1.tgz",
        "argo-cd-9.5.21.tgz",
        "kserve-crd-v0.19.0.tgz",
    ]
    with pytest.raises(PinnedFileError, match=r"gone 1\.0\.0 cannot be synced: its chart versions are not"):
        ensure_chart(lock, "gone", "1.0.0", cache, mirror=mirror)
    with pytest.raises(InputError, match=r"chart keda 9\.9\.9 is not in the chart lock"):
        ensure_chart(lock, "keda", "9.9.9", cache, mirror=mirror)
    with pytest.raises(InputError, match=r"--only nginx: the lock has no nginx \(it has: agentgateway, "):
        sync_charts(lock, cache, mirror=mirror, only=["nginx"])


@pytest.mark.unit
def test_cli_mirror_from_the_flag_and_from_the_environment(repo_root: Path, mirror: Path) -> None:
    lock_path = str(repo_root / "gitops" / "charts.lock.yaml")
    by_flag = mirror.parent / "by-flag"
    argv = [_CLI, "charts", "sync", "--lock", lock_path, "--only", "dex", "--only", "keda@2.20.2"]
    proc = subprocess.run(
        [*argv, "--cache", str(by_flag), "--mirror", str(mirror)],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert (proc.returncode, proc.stdout) == (0, f"{by_flag}\n"), proc.stderr
    assert sorted(p.name for p in by_flag.glob("*.tgz")) == ["dex-0.24.0.tgz", "keda-2.20.2.tgz"]

    by_env = mirror.parent / "by-env"
    _rewrite_index(mirror, "dex", "0.24.0", sha256="f" * 64)
    proc = subprocess.run(
        [*argv, "--cache", str(by_env)],
        capture_output=True,
        text=True,
        check=False,
        env=_env(**{CHARTS_MIRROR_ENV: str(mirror)}),
    )
    assert proc.returncode == 1 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("llm-platform: error: charts sync refused 1 file(s): dex 0.24.0 ("), line
    assert not (by_env / "dex-0.24.0.tgz").exists() and (by_env / "keda-2.20.2.tgz").is_file()

    proc = subprocess.run(
        [_CLI, "charts", "sync", "--lock", lock_path, "--only", "nope", "--mirror", str(mirror)],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("llm-platform: error: charts sync: --only nope: the lock has no nope")


# --- the download path: helm pull from a chart repository ---


@pytest.fixture
def packaged(tmp_path: Path) -> Path:
    """A chart `demo` 1.2.3 made and packaged with the pinned helm."""
    helm = require_tool("helm")
    work = tmp_path / "build"
    work.mkdir()
    run([helm, "create", "demo"], cwd=work)
    out = tmp_path / "packages"
    run([helm, "package", str(work / "demo"), "--version", "1.2.3", "--destination", str(out)])
    return out / "demo-1.2.3.tgz"


@pytest.fixture
def chart_repo(tmp_path: Path, packaged: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP chart repository on 127.0.0.1: index.yaml made by `helm repo index` and the package."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy2(packaged, root / packaged.name)
    server = LoopbackHTTPServer(partial(_Quiet, directory=str(root)))
    run([require_tool("helm"), "repo", "index", str(root), "--url", server.url])
    server.start()
    yield root, server.url
    server.stop()


def _demo(repository: str, version: str = "1.2.3", digest: str | None = None) -> dict[str, object]:
    return {"chart": "demo", "version": version, "repository": repository, "published_sha256": digest}


def test_download_verifies_against_the_published_digest_then_reuses_the_cache(
    tmp_path: Path, packaged: Path, chart_repo: tuple[Path, str]
) -> None:
    root, url = chart_repo
    digest = _sha256(packaged)
    assert f"digest: {digest}" in (root / "index.yaml").read_text()  # what index.yaml publishes
    lock = load_lock(_write_lock(tmp_path / "charts.lock.yaml", [_demo(url, digest=digest)]))
    cache = tmp_path / "cache"
    result = sync_charts(lock, cache)
    assert (result.fetched, result.cached) == (1, 0)
    assert _sha256(cache / "demo-1.2.3.tgz") == digest and _no_temporaries(cache)
    (root / "demo-1.2.3.tgz").unlink()  # a verified cached package is not downloaded again
    assert (sync_charts(lock, cache).fetched, sync_charts(lock, cache).cached) == (0, 1)
    assert ensure_chart(lock, "demo", "1.2.3", cache) == cache / "demo-1.2.3.tgz"


def test_a_tampered_download_is_refused_and_nothing_is_cached(
    tmp_path: Path, packaged: Path, chart_repo: tuple[Path, str]
) -> None:
    root, url = chart_repo
    lock = load_lock(_write_lock(tmp_path / "charts.lock.yaml", [_demo(url, digest=_sha256(packaged))]))
    served = root / "demo-1.2.3.tgz"
    served.write_bytes(served.read_bytes() + b"\0")  # the repository now serves other bytes
    cache = tmp_path / "cache"
    with pytest.raises(PinnedFileError) as err:
        sync_charts(lock, cache)
    message = str(err.value)
    assert message.startswith(f"charts sync refused 1 file(s): demo 1.2.3 from {url}: sha256 ")
    assert f"does not match the lock's published_sha256 ({_sha256(packaged)})" in message
    assert not cache.exists() or not any(cache.iterdir())


def test_an_unknown_version_a_missing_digest_and_an_unreachable_repository_are_refused(
    tmp_path: Path, packaged: Path, chart_repo: tuple[Path, str]
) -> None:
    _, url = chart_repo
    cache = tmp_path / "cache"
    unknown = load_lock(_write_lock(tmp_path / "a.yaml", [_demo(url, "9.9.9", _sha256(packaged))]))
    with pytest.raises(PinnedFileError, match=r"demo 9\.9\.9 from .*: helm pull failed: .*9\.9\.9"):
        sync_charts(unknown, cache)

    nowhere = f"http://127.0.0.1:{_closed_port()}"
    no_digest = load_lock(_write_lock(tmp_path / "b.yaml", [_demo(nowhere)]))
    with pytest.raises(PinnedFileError) as err:  # refused before any download (the port is closed)
        sync_charts(no_digest, cache)
    assert str(err.value) == (
        f"charts sync refused 1 file(s): demo 1.2.3: the lock has no published digest (published_sha256) "
        f"to verify a download from {nowhere} against; add the sha256 of the published package to the lock "
        f"(sha256sum of what `helm pull` gives), or sync from a mirror "
        f"(--mirror DIR or {CHARTS_MIRROR_ENV}=DIR)"
    )

    unreachable = load_lock(_write_lock(tmp_path / "c.yaml", [_demo(nowhere, digest=_sha256(packaged))]))
    with pytest.raises(PinnedFileError) as err:
        sync_charts(unreachable, cache)
    message = str(err.value)
    assert message.startswith(f"charts sync: cannot reach {nowhere.removeprefix('http://')} for demo 1.2.3: ")
    assert message.endswith(
        f"give a mirror (a directory of <chart>-<version>.tgz packages and their INDEX.json): "
        f"--mirror DIR or {CHARTS_MIRROR_ENV}=DIR"
    )
    assert not cache.exists() or not any(cache.iterdir())


def test_download_from_an_oci_registry(tmp_path: Path, packaged: Path, registry: Registry) -> None:
    helm = require_tool("helm")
    run(
        [helm, "push", str(packaged), f"oci://{registry.host}/charts", "--plain-http"],
        env=_env(
            HELM_REGISTRY_CONFIG=str(tmp_path / "registry.json"), HELM_CACHE_HOME=str(tmp_path / "helm-cache")
        ),
    )
    digest = _sha256(packaged)
    # The chart layer of the pushed artifact is the package itself: its digest is the published sha256.
    assert registry.blob_path(f"sha256:{digest}").is_file()
    lock = load_lock(
        _write_lock(tmp_path / "charts.lock.yaml", [_demo(f"oci://{registry.host}/charts", digest=digest)])
    )
    cache = tmp_path / "cache"
    assert sync_charts(lock, cache).fetched == 1
    assert _sha256(cache / "demo-1.2.3.tgz") == digest


# --- the pinned tools ---


@pytest.mark.unit
def test_the_pinned_helm_and_kubectl_are_first_on_path(repo_root: Path) -> None:
    pin = dict(
        line.split("=", 1)
        for line in (repo_root / "scripts" / "tools.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    helm, kubectl = require_tool("helm"), require_tool("kubectl")
    assert _sha256(Path(helm)) == pin["HELM_SHA256"], (
        f"{helm} is not the pinned helm: run scripts/setup.sh --tests"
    )
    assert _sha256(Path(kubectl)) == pin["KUBECTL_SHA256"], f"{kubectl} is not the pinned kubectl"
    assert f'Version:"{pin["HELM_VERSION"]}"' in run([helm, "version"]).stdout
    client = run([kubectl, "version", "--client"]).stdout
    assert f"Client Version: {pin['KUBECTL_VERSION']}" in client and pin["KUBECTL_VERSION"].startswith(
        "v1.35."
    )
    assert f"Kustomize Version: {pin['KUSTOMIZE_VERSION']}" in client
    assert pin["HELM_VERSION"] == "v4.1.4"


# --- charts lock: recording the published digest once ---


def test_charts_lock_records_the_published_digest_then_sync_verifies_against_it(
    tmp_path: Path, packaged: Path, chart_repo: tuple[Path, str]
) -> None:
    _, url = chart_repo
    lock_path = _write_lock(tmp_path / "charts.lock.yaml", [_demo(url), _demo(url, "9.9.9", "a" * 64)])
    before = lock_path.read_text()
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [_CLI, "charts", "lock", "--lock", str(lock_path), "--cache", str(cache)],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    digest = _sha256(packaged)
    assert json.loads(proc.stdout) == [
        {"chart": "demo", "version": "1.2.3", "repository": url, "published_sha256": digest}
    ]
    after = lock_path.read_text()
    # Only the digest line of that entry changed (plus where it came from); the other entry is untouched.
    removed = [ln for ln in before.splitlines() if ln not in after.splitlines()]
    added = [ln for ln in after.splitlines() if ln not in before.splitlines()]
    assert [ln.strip() for ln in removed] == ["published_sha256: null"]
    assert added[0].strip() == f"published_sha256: {digest}" and "charts lock" in added[-1]
    assert load_lock(lock_path).find("demo", "9.9.9").published_sha256 == "a" * 64
    # The package is in the cache, verified against the recorded digest from now on.
    assert sync_charts(load_lock(lock_path), cache, only=["demo@1.2.3"]).cached == 1
    # A second run has nothing to record.
    again = subprocess.run(
        [_CLI, "charts", "lock", "--lock", str(lock_path)],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert (again.returncode, json.loads(again.stdout)) == (0, []) and lock_path.read_text() == after


def test_charts_lock_refuses_a_package_that_is_another_chart_and_writes_nothing(
    tmp_path: Path, packaged: Path, chart_repo: tuple[Path, str]
) -> None:
    root, url = chart_repo
    # The repository serves demo-1.2.3.tgz under the name `other`: a different chart than the lock says.
    shutil.copy2(packaged, root / "other-1.2.3.tgz")
    index = root / "index.yaml"
    data = yaml.safe_load(index.read_text())
    data["entries"]["other"] = [
        {**data["entries"]["demo"][0], "name": "other", "urls": [f"{url}/other-1.2.3.tgz"]}
    ]
    index.write_text(yaml.safe_dump(data))
    lock_path = _write_lock(tmp_path / "charts.lock.yaml", [_demo(url), {**_demo(url), "chart": "other"}])
    before = lock_path.read_bytes()
    with pytest.raises(
        PinnedFileError,
        match=r"charts lock recorded nothing: other 1\.2\.3 from .*: the package is demo 1\.2\.3",
    ):
        record_published_digests(lock_path, cache=tmp_path / "cache")
    assert lock_path.read_bytes() == before and not (tmp_path / "cache").exists()
