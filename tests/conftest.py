from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.bump_fixture import git_env
from tests.support.registry import Registry

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


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
def shared_dir() -> Path:
    if not (SHARED / "crds" / "INDEX.json").is_file():
        pytest.fail(f"shared test data not found at {SHARED} (expected ../shared beside the checkout)")
    return SHARED


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
