"""`llm-platform crds sync`, never against the internet: from a local HTTP server serving the locked CRD
files (files land verified in the cache, a second run downloads nothing, a tampered file is refused), and
from a mirror directory (`--mirror DIR` / $LLM_PLATFORM_CRDS_MIRROR) verified exactly like a download."""

from __future__ import annotations

import hashlib
import json
import os
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
from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV, tree_chart_sources
from llm_platform.lint.crds_lock import (
    CACHE_MANIFEST,
    CRDS_MIRROR_ENV,
    CrdLock,
    load_lock,
    prune_crd_cache,
    sync_chart_crds,
    sync_crds,
)
from tests.support.loopback import LoopbackHTTPServer

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools

_CLI = str(Path(sys.executable).with_name("llm-platform"))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without a CRD mirror (.ci/run sets one), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != CRDS_MIRROR_ENV}
    return {**env, **extra}


def _copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


@pytest.fixture
def served(tmp_path: Path, crds_dir: Path) -> Iterator[tuple[Path, str]]:
    """A copy of the synced CRDs served on 127.0.0.1 (a copy, so a test may tamper with it)."""
    root = _copy_tree(crds_dir, tmp_path / "served")
    server = LoopbackHTTPServer(partial(_Quiet, directory=str(root))).start()
    yield root, f"{server.url}/"
    server.stop()


@pytest.fixture
def mirror(tmp_path: Path, crds_dir: Path) -> Path:
    """A mirror directory laid out like ../shared/crds (<project>/<tag>/<file>), a copy a test may tamper with."""
    return _copy_tree(crds_dir, tmp_path / "mirror")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _local_lock(repo_root: Path, tmp_path: Path, base: str, entries: slice = slice(None)) -> Path:
    """The real gitops/crds.lock.yaml (or a slice of it) with each URL pointed at `base`."""
    data = yaml.safe_load((repo_root / "gitops" / "crds.lock.yaml").read_text())
    data["crds"] = data["crds"][entries]
    data.pop("charts", None)  # the upstream files only: chart-rendered CRDs have their own tests
    for entry in data["crds"]:
        entry["url"] = base + entry["file"]
    path = tmp_path / "crds.lock.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _nowhere_lock(repo_root: Path, tmp_path: Path, entries: slice = slice(None)) -> Path:
    """The lock with every URL on a closed local port: any attempt to download fails."""
    return _local_lock(repo_root, tmp_path, f"http://127.0.0.1:{_closed_port()}/", entries)


def _no_temporaries(cache: Path) -> bool:
    return not [
        p
        for p in cache.rglob("*")
        if (p.name.startswith(".") and p.name != CACHE_MANIFEST) or p.suffix == ".tmp"
    ]


def test_lock_entries_are_pinned_upstream_files_with_their_real_kinds(
    repo_root: Path, crds_dir: Path
) -> None:
    lock = load_lock(repo_root / "gitops" / "crds.lock.yaml")
    files = [e.file for e in lock.crds]
    assert len(files) == len(set(files)) >= 8
    for e in lock.crds:
        # The cache path is <project>/<tag>/<upstream file name>, the URL is that tag's raw file.
        assert e.file == f"{e.project}/{e.version}/{e.url.rsplit('/', 1)[1]}", e.file
        assert e.url.startswith("https://raw.githubusercontent.com/") and f"/{e.version}/" in e.url, e.url
        # The kinds the lock claims are the ones the synced file really defines.
        docs = [d for d in yaml.load_all((crds_dir / e.file).read_bytes(), Loader=yaml.CSafeLoader) if d]
        defined = sorted(
            f"{d['spec']['group']}/{d['spec']['names']['kind']}"
            for d in docs
            if d.get("kind") == "CustomResourceDefinition"
        )
        assert defined == sorted(e.kinds), e.file


def test_the_session_crds_hold_every_locked_file_verified(repo_root: Path, crds_dir: Path) -> None:
    """The cache is the user's (it may also hold files of other lock versions): every locked file is there
    with its locked bytes, and nothing half-written (no temporary file) is left."""
    lock = load_lock(repo_root / "gitops" / "crds.lock.yaml")
    present = {p.relative_to(crds_dir).as_posix() for p in crds_dir.rglob("*") if p.is_file()}
    assert {e.file for e in lock.crds} <= present
    assert not [p for p in present if p.rsplit("/", 1)[-1].startswith(".") and p != CACHE_MANIFEST]
    for entry in lock.crds:
        assert hashlib.sha256((crds_dir / entry.file).read_bytes()).hexdigest() == entry.sha256


def test_sync_downloads_verifies_and_then_reuses_the_cache(
    repo_root: Path, tmp_path: Path, served: tuple[Path, str]
) -> None:
    lock = load_lock(_local_lock(repo_root, tmp_path, served[1]))
    cache = tmp_path / "cache"
    assert sync_crds(lock, cache) == (len(lock.crds), 0)
    for entry in lock.crds:
        assert hashlib.sha256((cache / entry.file).read_bytes()).hexdigest() == entry.sha256
    assert sync_crds(lock, cache) == (0, len(lock.crds))
    # A corrupted cache entry is fetched again rather than trusted.
    victim = cache / lock.crds[0].file
    victim.write_text("corrupted")
    assert sync_crds(lock, cache) == (1, len(lock.crds) - 1)
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == lock.crds[0].sha256


def test_tampered_file_is_refused_and_not_written(
    repo_root: Path, tmp_path: Path, served: tuple[Path, str]
) -> None:
    root, base = served
    lock = load_lock(_local_lock(repo_root, tmp_path, base))
    tampered = lock.crds[7]
    path = root / tampered.file
    path.write_bytes(path.read_bytes().replace(b"maximum: 65535", b"maximum: 65536", 1) + b"\n# x\n")
    cache = tmp_path / "cache"
    with pytest.raises(PinnedFileError) as err:
        sync_crds(lock, cache)
    assert tampered.url in str(err.value) and "does not match the lock" in str(err.value)
    assert not (cache / tampered.file).exists()
    assert _no_temporaries(cache)
    others = [e for e in lock.crds if e is not tampered]
    assert all((cache / e.file).is_file() for e in others)


def test_cli_sync_prints_cache_and_fails_on_mismatch(
    repo_root: Path, tmp_path: Path, served: tuple[Path, str]
) -> None:
    root, base = served
    lock_path = _local_lock(repo_root, tmp_path, base, slice(5, 7))  # InferencePool + InferenceObjective
    small = yaml.safe_load(lock_path.read_text())
    cache = tmp_path / "cli-cache"
    argv = [_CLI, "crds", "sync", "--lock", str(lock_path), "--cache", str(cache)]
    ok = subprocess.run(argv, capture_output=True, text=True, check=False, env=_env())
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(cache)
    assert len(list(cache.rglob("*.yaml"))) == 2
    CrdLock.model_validate(small)
    (root / small["crds"][1]["file"]).write_text("tampered: true\n")
    shutil.rmtree(cache)
    bad = subprocess.run(argv, capture_output=True, text=True, check=False, env=_env())
    assert bad.returncode == 1
    assert "llm-platform: error: crds sync refused 1 file(s)" in bad.stderr
    assert not (cache / small["crds"][1]["file"]).exists()


def test_unreachable_upstream_is_one_line_that_says_how_to_give_a_mirror(
    repo_root: Path, tmp_path: Path
) -> None:
    lock_path = _nowhere_lock(repo_root, tmp_path)
    proc = subprocess.run(
        [_CLI, "crds", "sync", "--lock", str(lock_path), "--cache", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("llm-platform: error: crds sync: cannot reach 127.0.0.1:"), line
    assert "--mirror DIR" in line and f"{CRDS_MIRROR_ENV}=DIR" in line
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*"))


def test_mirror_syncs_every_file_without_the_network_then_reuses_the_cache(
    repo_root: Path, tmp_path: Path, mirror: Path
) -> None:
    lock = load_lock(_nowhere_lock(repo_root, tmp_path))  # a download would fail: only the mirror can work
    cache = tmp_path / "cache"
    assert sync_crds(lock, cache, mirror=mirror) == (len(lock.crds), 0)
    for entry in lock.crds:
        assert hashlib.sha256((cache / entry.file).read_bytes()).hexdigest() == entry.sha256
    assert _no_temporaries(cache)
    shutil.rmtree(mirror)  # verified cache entries are not read from the mirror again
    mirror.mkdir()
    assert sync_crds(lock, cache, mirror=mirror) == (0, len(lock.crds))


def test_mirror_with_a_tampered_file_is_refused_naming_it(
    repo_root: Path, tmp_path: Path, mirror: Path
) -> None:
    lock = load_lock(_nowhere_lock(repo_root, tmp_path))
    tampered = lock.crds[5]  # InferencePool
    path = mirror / tampered.file
    assert b"maximum: 65535" in path.read_bytes()
    path.write_bytes(path.read_bytes().replace(b"maximum: 65535", b"maximum: 65536", 1))
    cache = tmp_path / "cache"
    (cache / tampered.file).parent.mkdir(parents=True)
    (cache / tampered.file).write_text("stale: true\n")  # a wrong cached copy goes too
    with pytest.raises(PinnedFileError) as err:
        sync_crds(lock, cache, mirror=mirror)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("crds sync refused 1 file(s): ")
    assert f"{path}: sha256 " in message and f"does not match the lock ({tampered.sha256})" in message
    assert f"replace it with the file from {tampered.url}" in message
    assert not (cache / tampered.file).exists()
    assert _no_temporaries(cache)
    assert all((cache / e.file).is_file() for e in lock.crds if e is not tampered)


def test_mirror_with_a_missing_file_is_refused_naming_it(
    repo_root: Path, tmp_path: Path, mirror: Path
) -> None:
    lock = load_lock(_nowhere_lock(repo_root, tmp_path))
    missing = lock.crds[0]
    (mirror / missing.file).unlink()
    cache = tmp_path / "cache"
    with pytest.raises(PinnedFileError) as err:
        sync_crds(lock, cache, mirror=mirror)
    message = str(err.value)
    assert "\n" not in message
    assert (
        f"{mirror / missing.file}: missing from the mirror; put the file from {missing.url} there" in message
    )
    assert not (cache / missing.file).exists()
    assert _no_temporaries(cache)
    assert all((cache / e.file).is_file() for e in lock.crds if e is not missing)


def test_mirror_that_is_not_a_directory_is_bad_input(repo_root: Path, tmp_path: Path) -> None:
    lock = load_lock(_nowhere_lock(repo_root, tmp_path))
    with pytest.raises(
        InputError,
        match=r"crds sync: mirror .*/nope is not a directory .*--mirror DIR or "
        r"LLM_PLATFORM_CRDS_MIRROR=DIR",
    ):
        sync_crds(lock, tmp_path / "cache", mirror=tmp_path / "nope")
    assert not (tmp_path / "cache").exists()


def test_cli_mirror_from_the_flag_and_from_the_environment(
    repo_root: Path, tmp_path: Path, mirror: Path
) -> None:
    lock_path = _nowhere_lock(repo_root, tmp_path, slice(5, 7))
    small = load_lock(lock_path)
    by_flag = tmp_path / "by-flag"
    proc = subprocess.run(
        [_CLI, "crds", "sync", "--lock", str(lock_path), "--cache", str(by_flag), "--mirror", str(mirror)],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert (proc.returncode, proc.stdout) == (0, f"{by_flag}\n"), proc.stderr
    assert sorted(p.relative_to(by_flag).as_posix() for p in by_flag.rglob("*.yaml")) == sorted(
        e.file for e in small.crds
    )

    by_env = tmp_path / "by-env"
    argv = [_CLI, "crds", "sync", "--lock", str(lock_path), "--cache", str(by_env)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=_env(**{CRDS_MIRROR_ENV: str(mirror)})
    )
    assert (proc.returncode, proc.stdout) == (0, f"{by_env}\n"), proc.stderr
    assert len(list(by_env.rglob("*.yaml"))) == 2

    shutil.rmtree(by_env)
    (mirror / small.crds[1].file).write_text("tampered: true\n")
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=_env(**{CRDS_MIRROR_ENV: str(mirror)})
    )
    assert proc.returncode == 1 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith("llm-platform: error: crds sync refused 1 file(s): ")
    assert str(mirror / small.crds[1].file) in line
    assert not (by_env / small.crds[1].file).exists() and (by_env / small.crds[0].file).is_file()


def test_bad_lock_file_names_the_field(tmp_path: Path) -> None:
    lock = tmp_path / "crds.lock.yaml"
    lock.write_text(
        "crds:\n  - project: x\n    version: v1\n    url: ftp://nope\n    sha256: abc\n    file: a.yaml\n"
    )
    proc = subprocess.run(
        [_CLI, "crds", "sync", "--lock", str(lock), "--cache", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "crds.0.url" in proc.stderr


def _charts_mirror() -> Path:
    value = os.environ.get(CHARTS_MIRROR_ENV)
    if not value:
        pytest.fail(
            f"${CHARTS_MIRROR_ENV} is not set (scripts/test.sh sets it from ../shared/charts)", pytrace=False
        )
    return Path(value)


def test_chart_entries_render_exactly_the_crds_the_pinned_charts_install(
    repo_root: Path, crds_dir: Path
) -> None:
    """Each `charts` entry names a chart version the tree deploys, and its cache file holds the CRDs
    rendered from that verified package: every kind the entry lists, at the chart's own schema."""
    lock = load_lock(repo_root / "gitops" / "crds.lock.yaml")
    pinned = {
        (chart, version)
        for _, _, chart, version in tree_chart_sources((repo_root / "gitops").rglob("*.yaml"))
    }
    assert lock.charts
    for entry in lock.charts:
        assert (entry.chart, entry.version) in pinned, (
            f"{entry.chart} {entry.version} is not what the tree deploys"
        )
        docs = [d for d in yaml.load_all((crds_dir / entry.file).read_bytes(), Loader=yaml.CSafeLoader) if d]
        defined = {f"{d['spec']['group']}/{d['spec']['names']['kind']}" for d in docs}
        assert set(entry.kinds) <= defined, entry.file
    # The kinds of the upstream-file entries are installed by no chart of the tree (else they would drift).
    chart_kinds = {k for e in lock.charts for k in e.kinds}
    assert not chart_kinds & {k for e in lock.crds for k in e.kinds}


def test_chart_crds_are_rendered_once_then_reused_and_a_stale_entry_fails(
    repo_root: Path, tmp_path: Path
) -> None:
    lock = load_lock(repo_root / "gitops" / "crds.lock.yaml")
    small = CrdLock(crds=[], charts=[e for e in lock.charts if e.chart == "keda"])
    cache = tmp_path / "cache"
    charts_lock = repo_root / "gitops" / "charts.lock.yaml"
    kw = {"charts_lock": charts_lock, "chart_cache": tmp_path / "charts", "charts_mirror": _charts_mirror()}
    assert sync_chart_crds(small, cache, **kw) == (1, 0)
    first = (cache / small.charts[0].file).read_bytes()
    assert b"kind: ScaledObject" in first and first.startswith(b"# CRDs of chart keda 2.20.2")
    assert sync_chart_crds(small, cache, **kw) == (0, 1)
    stale = small.charts[0].model_copy(update={"kinds": [*small.charts[0].kinds, "keda.sh/ScaledWidget"]})
    with pytest.raises(PinnedFileError, match=r"chart keda 2\.20\.2 does not install keda\.sh/ScaledWidget"):
        sync_chart_crds(CrdLock(crds=[], charts=[stale]), tmp_path / "other", **kw)
    assert not (tmp_path / "other" / stale.file).exists()


def test_prune_removes_files_an_earlier_lock_put_there_and_nothing_else(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old = cache / "argo-cd" / "v3.5.1" / "application-crd.yaml"
    kept = cache / "lws" / "v0.10.0" / "lws.yaml"
    mine = cache / "notes.txt"
    for p in (old, kept, mine):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x: 1\n")
    (cache / CACHE_MANIFEST).write_text(
        json.dumps(["argo-cd/v3.5.1/application-crd.yaml", "lws/v0.10.0/lws.yaml"])
    )
    lock = CrdLock.model_validate(
        {
            "crds": [
                {
                    "project": "lws",
                    "version": "v0.10.0",
                    "url": "https://example.invalid/lws.yaml",
                    "sha256": "0" * 64,
                    "file": "lws/v0.10.0/lws.yaml",
                    "kinds": ["leaderworkerset.x-k8s.io/LeaderWorkerSet"],
                }
            ]
        }
    )
    assert prune_crd_cache(lock, cache) == ["argo-cd/v3.5.1/application-crd.yaml"]
    assert not old.exists() and not old.parent.exists() and kept.is_file() and mine.is_file()
    assert json.loads((cache / CACHE_MANIFEST).read_text()) == ["lws/v0.10.0/lws.yaml"]
