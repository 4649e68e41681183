"""Running the binary: credentials reach it only through the environment, and never come back out in text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

from llm_platform.errors import ToolError
from llm_platform.logs import get_logger
from llm_platform.tofu.binary import TofuBinary

log = get_logger("tofu")

# Environment variables whose values are credentials (GCP provider/backend, tokens, TF_VAR_ secrets).
_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|API_KEY|AUTH)", re.IGNORECASE
)
# Keys inside a JSON credentials file (service-account key, authorized-user) that are themselves secret.
_SECRET_JSON_KEYS = {"private_key", "private_key_id", "client_secret", "refresh_token", "access_token"}
# Shorter values would scrub ordinary words out of diagnostics; real credentials are longer.
_MIN_SECRET_LEN = 6
REDACTED = "***"

# Each run is non-interactive and quiet: no prompts, no upgrade check phoning home.
_AUTOMATION_ENV = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}


class ToolRun(BaseModel):
    """The scrubbed result of one invocation."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values in `env` that must never appear in anything we print, longest first."""
    found: set[str] = set()
    for name, value in env.items():
        if not _SECRET_NAME.search(name) or len(value) < _MIN_SECRET_LEN:
            continue
        found.add(value)
        found.update(_json_secret_leaves(value))
    return sorted(found, key=len, reverse=True)


def _json_secret_leaves(value: str) -> set[str]:
    if not value.lstrip().startswith("{"):
        return set()
    try:
        data = json.loads(value)
    except ValueError:
        return set()
    if not isinstance(data, dict):
        return set()
    leaves: set[str] = set()
    for key, leaf in data.items():
        if key in _SECRET_JSON_KEYS and isinstance(leaf, str) and len(leaf) >= _MIN_SECRET_LEN:
            leaves.add(leaf)
            # Tools re-render PEM keys with escaped newlines; cover both spellings.
            leaves.add(leaf.replace("\n", "\\n"))
    return leaves


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class Runner:
    """Runs one binary in one root directory with the caller's environment plus automation settings."""

    def __init__(self, binary: TofuBinary, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.env = {**(os.environ if env is None else env), **_AUTOMATION_ENV}
        self.secrets = secret_values(self.env)

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def run(self, args: Sequence[str], timeout: float | None = None) -> ToolRun:
        argv = [self.binary.path, *args]
        log.debug("$ %s (in %s)", self.scrub(" ".join(argv)), self.workdir)
        try:
            proc = subprocess.run(
                argv,
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except OSError as exc:
            raise ToolError(f"{self.binary.path}: cannot run: {exc.strerror or exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ToolError(
                f"{self.binary.product} {args[0]} timed out after {timeout:.0f}s in {self.workdir}"
            ) from exc
        return ToolRun(
            args=[self.scrub(a) for a in args],
            returncode=proc.returncode,
            stdout=self.scrub(proc.stdout),
            stderr=self.scrub(proc.stderr),
        )

    def stream(self, args: Sequence[str], on_line: Callable[[str], None]) -> ToolRun:
        """Like `run`, but hands each scrubbed stdout line to `on_line` as it arrives (long applies)."""
        argv = [self.binary.path, *args]
        log.debug("$ %s (in %s)", self.scrub(" ".join(argv)), self.workdir)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            raise ToolError(f"{self.binary.path}: cannot run: {exc.strerror or exc}") from exc
        stdout, stderr = proc.stdout, proc.stderr
        assert stdout is not None and stderr is not None
        stderr_chunks: list[str] = []
        # Drain stderr concurrently so a chatty tool cannot block on a full pipe.
        reader = threading.Thread(target=lambda: stderr_chunks.append(stderr.read()), daemon=True)
        reader.start()
        stdout_lines = []
        for line in stdout:
            clean = self.scrub(line)
            stdout_lines.append(clean)
            on_line(clean)
        returncode = proc.wait()
        reader.join()
        stdout.close()
        stderr.close()
        return ToolRun(
            args=[self.scrub(a) for a in args],
            returncode=returncode,
            stdout="".join(stdout_lines),
            stderr=self.scrub("".join(stderr_chunks)),
        )
