"""Run `llm-platform` in-process (its real entry point, `llm_platform.cli.main`) with a given environment.

Starting the CLI as a subprocess costs seconds of imports on a busy machine; the concurrency tests
still use subprocesses, the rest call main() with exactly the environment a subprocess would get.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import pytest

from llm_platform.cli import main
from llm_platform.logs import LOGGER_NAME


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> CliRun:
    with monkeypatch.context() as patch:
        for key in list(os.environ):
            if key not in env:
                patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        # logs.configure() binds its handler to the sys.stderr of the first call; rebind to this capture.
        logger = logging.getLogger(LOGGER_NAME)
        for handler in list(logger.handlers):
            if getattr(handler, "_llm_platform", False):
                logger.removeHandler(handler)
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
    return CliRun(code, out, err)


def bump_argv(repo: object, model: str, ref: str, hf_commit: str, *args: str) -> list[str]:
    """`bump --repo REPO --model MODEL --ref REF --hf-commit SHA ARGS...`."""
    return ["bump", "--repo", str(repo), "--model", model, "--ref", ref, "--hf-commit", hf_commit, *args]
