"""`llm-platform` starts without the heavy stacks: a warm re-push is mostly interpreter start-up, so what the
CLI imports before a command runs is part of the publish performance budget."""

from __future__ import annotations

import json
import subprocess
import sys

# Imported only by the commands that need them (httpx/oras/requests: registry access; the bump and
# publish cores: their commands; the package llm_platform.bump itself only holds a default).
LAZY = ["httpx", "oras", "requests", "pydantic", "llm_platform.bump.service", "llm_platform.bump.push",
        "llm_platform.modelcar.publish", "llm_platform.registry.client", "llm_platform.registry.auth",
        "llm_platform.tofu", "typer"]


def test_cli_import_leaves_heavy_modules_unloaded() -> None:
    # `llm_platform.cli` is the entry point: typer itself waits until a command other than a receipt-backed
    # re-publish runs (test_publish_receipt.py checks that path end to end).
    code = ("import json, sys; import llm_platform.cli; "
            f"print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []


def test_plain_http_client_builds_no_tls_context_until_needed() -> None:
    code = ("import ssl, json\n"
            "calls = []\n"
            "real = ssl.SSLContext.load_verify_locations\n"
            "ssl.SSLContext.load_verify_locations = lambda self, *a, **k: (calls.append(1), real(self, *a, **k))[1]\n"
            "from llm_platform.registry.client import RegistryClient\n"
            "RegistryClient('127.0.0.1:5000').close()\n"
            "plain = len(calls)\n"
            "RegistryClient('registry.example:5000').close()\n"
            "print(json.dumps([plain, len(calls)]))\n")
    env = {k: v for k, v in __import__("os").environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    plain, total = json.loads(proc.stdout)
    assert plain == 0  # loopback registry: plain HTTP, CA bundle not loaded
    assert total > 0  # an HTTPS registry does load it


def test_command_modules_leave_the_cores_unloaded() -> None:
    code = ("import json, sys; import llm_platform.cli.commands; "
            f"print(json.dumps([m for m in {LAZY[:-1]!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []


def test_registry_client_loads_httpx_without_its_command_line_stack() -> None:
    code = ("import json, sys; from llm_platform.registry.client import RegistryClient; import httpx; "
            "httpx.Client().close(); "
            "print(json.dumps([m for m in ['httpx._main', 'rich', 'pygments', 'click'] if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []
