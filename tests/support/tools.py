"""Finding the real tools the tests drive. A missing tool fails the test: nothing skips (CI=true or not)."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def require_tool(name: str, *alternatives: str) -> str:
    """Absolute path of the first of `name`/`alternatives` on PATH, or fail the test naming the package."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path:
            return path
    pytest.fail(f"required tool {name!r} is not on PATH: run .ci/run (it installs every tool the tests use)")


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; raise with its stderr when it fails."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise AssertionError(
            f"{args!r} exited {proc.returncode}:\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc
