"""One cache root for every cache: digest cache, CRDs and CRD schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_platform.cache_root import cache_root
from llm_platform.lint.crds_lock import default_crd_cache
from llm_platform.lint.engine import default_cache_dir as crd_schema_cache
from llm_platform.modelcar.digest_cache import default_cache_dir as digest_cache_dir

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools


def test_precedence() -> None:
    assert cache_root({"LLM_PLATFORM_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}) == "/c"
    assert cache_root({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == "/x/llm-platform"
    assert cache_root({"HOME": "/h"}) == "/h/.cache/llm-platform"


def test_every_cache_lives_under_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PLATFORM_CACHE_DIR", str(tmp_path / "root"))
    assert digest_cache_dir() == tmp_path / "root"
    assert default_crd_cache() == tmp_path / "root" / "crds"
    assert crd_schema_cache() == tmp_path / "root" / "crd-schemas"
