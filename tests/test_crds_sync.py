"""`llm-platform crds sync` against a local HTTP server serving the upstream CRD files (never the internet):
files land verified in the cache, a second run downloads nothing, a tampered file is refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from tests.support.loopback import LoopbackHTTPServer

from llm_platform.errors import RegistryError
from llm_platform.lint.crds_lock import CrdLock, load_lock, sync_crds

_CLI = str(Path(sys.executable).with_name("llm-platform"))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, shared_dir: Path) -> Iterator[tuple[Path, str]]:
    """A copy of shared/crds served on 127.0.0.1 (a copy, so a test may tamper with it)."""
    root = tmp_path / "served"
    shutil.copytree(shared_dir / "crds", root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    server = LoopbackHTTPServer(partial(_Quiet, directory=str(root))).start()
    yield root, f"{server.url}/"
    server.stop()


def _local_lock(repo_root: Path, tmp_path: Path, base: str) -> Path:
    """The real gitops/crds.lock.yaml with each URL pointed at the local server."""
    data = yaml.safe_load((repo_root / "gitops" / "crds.lock.yaml").read_text())
    for entry in data["crds"]:
        entry["url"] = base + entry["file"]
    path = tmp_path / "crds.lock.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_lock_matches_the_crd_index(repo_root: Path, shared_dir: Path) -> None:
    lock = load_lock(repo_root / "gitops" / "crds.lock.yaml")
    index = json.loads((shared_dir / "crds" / "INDEX.json").read_text())
    assert [(e.url, e.sha256, e.file) for e in lock.crds] == [(i["raw_url"], i["sha256"], i["file"]) for i in index]


def test_sync_downloads_verifies_and_then_reuses_the_cache(repo_root: Path, tmp_path: Path,
                                                           served: tuple[Path, str]) -> None:
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


def test_tampered_file_is_refused_and_not_written(repo_root: Path, tmp_path: Path,
                                                  served: tuple[Path, str]) -> None:
    root, base = served
    lock = load_lock(_local_lock(repo_root, tmp_path, base))
    tampered = lock.crds[7]
    path = root / tampered.file
    path.write_bytes(path.read_bytes().replace(b"maximum: 65535", b"maximum: 65536", 1) + b"\n# x\n")
    cache = tmp_path / "cache"
    with pytest.raises(RegistryError) as err:
        sync_crds(lock, cache)
    assert tampered.url in str(err.value) and "does not match the lock" in str(err.value)
    assert not (cache / tampered.file).exists()
    assert not list(cache.rglob("*.tmp"))
    others = [e for e in lock.crds if e is not tampered]
    assert all((cache / e.file).is_file() for e in others)


def test_cli_sync_prints_cache_and_fails_on_mismatch(repo_root: Path, tmp_path: Path,
                                                     served: tuple[Path, str]) -> None:
    root, base = served
    lock_path = _local_lock(repo_root, tmp_path, base)
    small = yaml.safe_load(lock_path.read_text())
    small["crds"] = small["crds"][7:9]  # InferencePool + InferenceObjective: keep the CLI test quick
    lock_path.write_text(yaml.safe_dump(small))
    cache = tmp_path / "cli-cache"
    cli = [_CLI]
    ok = subprocess.run([*cli, "crds", "sync", "--lock", str(lock_path), "--cache", str(cache)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(cache)
    assert len(list(cache.rglob("*.yaml"))) == 2
    CrdLock.model_validate(small)
    (root / small["crds"][1]["file"]).write_text("tampered: true\n")
    shutil.rmtree(cache)
    bad = subprocess.run([*cli, "crds", "sync", "--lock", str(lock_path), "--cache", str(cache)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "llm-platform: error: crds sync refused 1 file(s)" in bad.stderr
    assert not (cache / small["crds"][1]["file"]).exists()


def test_bad_lock_file_names_the_field(tmp_path: Path) -> None:
    lock = tmp_path / "crds.lock.yaml"
    lock.write_text("crds:\n  - project: x\n    version: v1\n    url: ftp://nope\n    sha256: abc\n    file: a.yaml\n")
    proc = subprocess.run([_CLI, "crds", "sync", "--lock", str(lock),
                           "--cache", str(tmp_path / "c")], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "crds.0.url" in proc.stderr
