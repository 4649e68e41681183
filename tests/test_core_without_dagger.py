"""The core never needs dagger: every module of the package except the Dagger adapter imports with
`import dagger` made impossible, so the CLI runs on machines (and in containers) without dagger-io."""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # pure: no registry, podman, git remote or heavy tools

# The Dagger adapter: the only modules allowed to import dagger (the entry point and the parts of the
# Dagger module that build containers or declare objects).
DAGGER_ADAPTERS = {
    "llm_platform.main",
    "llm_platform.dagger_module.modelcar",
    "llm_platform.dagger_module.containers",
}

# Runs in a fresh interpreter: a meta-path finder refuses `dagger` and `dagger.*`, then each module is
# imported; the result is one JSON line {module: null | "ExceptionType: message"}.
_PROBE = r"""
import importlib, importlib.abc, json, sys, traceback

class BlockDagger(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "dagger" or fullname.startswith("dagger."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked: the core must not import dagger)")
        return None

sys.meta_path.insert(0, BlockDagger())
results = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        results[name] = None
    except BaseException as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
results["__dagger_loaded__"] = sorted(m for m in sys.modules if m == "dagger" or m.startswith("dagger."))
print(json.dumps(results))
"""


def _package_dir(repo_root: Path) -> Path:
    return repo_root / "ci" / "src" / "llm_platform"


def _all_modules(repo_root: Path) -> list[str]:
    package = _package_dir(repo_root)
    names = ["llm_platform"]
    for info in pkgutil.walk_packages([str(package)], prefix="llm_platform."):
        names.append(info.name)
    return sorted(names)


def _probe(repo_root: Path, modules: list[str]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=repo_root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo_root / "ci" / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_package_walk_finds_the_core_and_the_adapter(repo_root: Path) -> None:
    modules = _all_modules(repo_root)
    # The walk is what the next test relies on: it must see sub-packages, the CLI and the adapter.
    assert "llm_platform.cli" in modules
    assert "llm_platform.errors" in modules
    assert set(modules) >= DAGGER_ADAPTERS
    assert len(modules) > 10, modules


def test_every_core_module_imports_without_dagger(repo_root: Path) -> None:
    core = [name for name in _all_modules(repo_root) if name not in DAGGER_ADAPTERS]
    results = _probe(repo_root, core)
    failures = {name: error for name, error in results.items() if name != "__dagger_loaded__" and error}
    assert failures == {}, "core modules that need dagger (or fail to import):\n" + "\n".join(
        f"  {name}: {error}" for name, error in sorted(failures.items())
    )
    assert results["__dagger_loaded__"] == []


@pytest.mark.parametrize("adapter", sorted(DAGGER_ADAPTERS))
def test_the_blocker_really_blocks_dagger(repo_root: Path, adapter: str) -> None:
    # Proves the probe can fail: the Dagger adapter itself cannot be imported under it.
    results = _probe(repo_root, [adapter])
    error = results[adapter]
    assert isinstance(error, str) and "blocked: the core must not import dagger" in error


def test_package_init_does_not_reexport_the_dagger_object(repo_root: Path) -> None:
    # The module description is the package docstring; the entry point names main.py explicitly,
    # so __init__ must stay free of `from .main import ...` (that would drag dagger into the CLI).
    init = (_package_dir(repo_root) / "__init__.py").read_text()
    assert init.lstrip().startswith('"""'), "the package docstring is the Dagger module description"
    pattern = r"^\s*(from|import)\s+(\.main|llm_platform\.main|dagger)\b"
    assert not re.search(pattern, init, re.MULTILINE)
