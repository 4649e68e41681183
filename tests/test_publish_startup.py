"""`llm-platform` starts without the heavy stacks: a warm re-push is mostly interpreter start-up, so what the
CLI imports before a command runs is part of the publish performance budget."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Imported only by the commands that need them (httpx/oras/requests: registry access; the bump and
# publish cores: their commands; the package llm_platform.bump itself only holds a default).
LAZY = [
    "httpx",
    "oras",
    "requests",
    "pydantic",
    "llm_platform.bump.service",
    "llm_platform.bump.push",
    "llm_platform.modelcar.publish",
    "llm_platform.registry.client",
    "llm_platform.registry.auth",
    "llm_platform.tofu",
    "typer",
]


def loaded_after(statement: str, modules: list[str]) -> list[str]:
    """Which of `modules` a fresh interpreter holds after running `statement`."""
    code = f"import json, sys; {statement}; print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(proc.stdout))


@pytest.mark.parametrize(
    ("statement", "lazy"),
    [
        # The entry point: not even typer until a command runs.
        ("import llm_platform.cli", LAZY),
        # The typer app with every command registered: still none of the cores.
        ("import llm_platform.cli.commands", [m for m in LAZY if m != "typer"]),
    ],
)
def test_cli_import_leaves_heavy_modules_unloaded(statement: str, lazy: list[str]) -> None:
    assert loaded_after(statement, lazy) == []


def test_plain_http_client_builds_no_tls_context_until_needed() -> None:
    code = (
        "import ssl, json\n"
        "calls = []\n"
        "real = ssl.SSLContext.load_verify_locations\n"
        "ssl.SSLContext.load_verify_locations = lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1]\n"
        "from llm_platform.registry.client import RegistryClient\n"
        "RegistryClient('127.0.0.1:5000').close()\n"
        "plain = len(calls)\n"
        "RegistryClient('registry.example:5000').close()\n"
        "print(json.dumps([plain, len(calls)]))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    plain, total = json.loads(proc.stdout)
    assert plain == 0  # loopback registry: plain HTTP, CA bundle not loaded
    assert total > 0  # an HTTPS registry does load it


def test_registry_client_loads_httpx_without_its_command_line_stack() -> None:
    statement = (
        "from llm_platform.registry.client import RegistryClient; import httpx; httpx.Client().close()"
    )
    assert loaded_after(statement, ["httpx._main", "rich", "pygments", "click"]) == []
