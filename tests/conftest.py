from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bump_fixture import git_env
from tests.support.registry import Registry

# Fixtures shared by many modules (the busybox base layouts, podman), registered once for the session.
pytest_plugins = ["tests.support.images"]

REPO_ROOT = Path(__file__).resolve().parent.parent
CRDS_LOCK = REPO_ROOT / "gitops" / "crds.lock.yaml"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI nothing may skip: a missing tool is a failure, not a skip.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") == "true" and skipped:
        print(f"\nFAILED: {skipped} test(s) skipped; skips are not allowed in CI")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def crds_dir() -> Path:
    """The CRDs pinned in gitops/crds.lock.yaml (upstream files, and those the tree's pinned charts install,
    rendered from the verified chart packages: $LLM_PLATFORM_CHARTS_MIRROR), through the project's own `crds sync` path into
    the same cache a user's `llm-platform crds sync` fills (scripts/test.sh runs it first, so a failure is
    one line before any test): from $LLM_PLATFORM_CRDS_MIRROR when set (scripts/test.sh sets it to
    ../shared/crds when that exists), else from upstream. Every file is checked against its sha256, also
    when already cached. Laid out <project>/<tag>/<file>."""
    from llm_platform.errors import PlatformError
    from llm_platform.lint.charts_lock import CHARTS_MIRROR_ENV
    from llm_platform.lint.crds_lock import (
        CRDS_MIRROR_ENV,
        default_crd_cache,
        load_lock,
        prune_crd_cache,
        sync_chart_crds,
        sync_crds,
    )

    cache = default_crd_cache()
    mirror = os.environ.get(CRDS_MIRROR_ENV) or None
    charts_mirror = os.environ.get(CHARTS_MIRROR_ENV) or None
    try:
        lock = load_lock(CRDS_LOCK)
        sync_crds(lock, cache, mirror=Path(mirror) if mirror else None)
        sync_chart_crds(
            lock,
            cache,
            charts_lock=CRDS_LOCK.with_name("charts.lock.yaml"),
            charts_mirror=Path(charts_mirror) if charts_mirror else None,
        )
        prune_crd_cache(lock, cache)
    except PlatformError as exc:
        failure = f"the CRDs the tests need could not be synced: {exc}"
    else:
        return cache
    pytest.fail(failure, pytrace=False)  # outside the except: one line, no chained traceback


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A fresh anonymous docker-registry on 127.0.0.1 for one test."""
    reg = Registry(tmp_path / "registry").start()
    yield reg
    reg.stop()


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """A docker-registry with htpasswd basic auth (user `pusher`, password `s3cret-pass`)."""
    reg = Registry(tmp_path / "auth-registry", htpasswd=("pusher", "s3cret-pass")).start()
    yield reg
    reg.stop()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A git environment with a HOME of its own (identity, no global config) under the test's tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    return git_env(home)
