"""Flags shared by plan, apply and output, checked before any tool runs."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from llm_platform.errors import InputError

# Backend settings that are credentials: they belong in the environment (GOOGLE_CREDENTIALS,
# GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_ENCRYPTION_KEY), never on a command line or in a log.
SECRET_BACKEND_KEYS = frozenset(
    {"credentials", "access_token", "encryption_key", "password", "token", "secret_key"}
)
# A root's own backend settings (bucket, prefix): always passed first, so flags can override them.
DEFAULT_BACKEND_CONFIG = "backend.hcl"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOCK_TIMEOUT = re.compile(r"^[0-9]+(ms|s|m|h)$")


class TofuOptions(BaseModel):
    """How to run the binary against a root. Paths are resolved against the caller's working directory."""

    binary: str | None = Field(
        default=None, description="tofu/terraform name or path; default: tofu, else terraform"
    )
    var_files: list[Path] = Field(default_factory=list)
    backend_config: list[str] = Field(default_factory=list, description="K=V pairs or backend config files")
    plugin_dir: Path | None = Field(
        default=None, description="Provider plugins for air-gapped runners (no download)"
    )
    lock_timeout: str = Field(default="0s", description="How long to wait for a held state lock")


def backend_config_args(entries: list[str], root: Path | None = None) -> list[str]:
    args = []
    if root is not None and (root / DEFAULT_BACKEND_CONFIG).is_file():
        args.append(f"-backend-config={(root / DEFAULT_BACKEND_CONFIG).resolve()}")
    for entry in entries:
        path = Path(entry)
        if "=" not in entry or path.is_file():
            if not path.is_file():
                raise InputError(f"--backend-config {entry!r}: neither KEY=VALUE nor an existing file")
            args.append(f"-backend-config={path.resolve()}")
            continue
        key, _, _value = entry.partition("=")
        key = key.strip()
        if not _KEY.match(key):
            raise InputError(
                f"--backend-config {key!r}: not a valid backend setting name (expected KEY=VALUE)"
            )
        if key.lower() in SECRET_BACKEND_KEYS:
            raise InputError(
                f"--backend-config {key}=...: credentials are not accepted on the command line; "
                "set them in the environment (e.g. GOOGLE_CREDENTIALS, GOOGLE_OAUTH_ACCESS_TOKEN)"
            )
        args.append(f"-backend-config={entry}")
    return args


def var_file_args(var_files: list[Path]) -> list[str]:
    args = []
    for var_file in var_files:
        if not var_file.is_file():
            raise InputError(f"--var-file {var_file}: no such file")
        args.append(f"-var-file={var_file.resolve()}")
    return args


def plugin_dir_args(plugin_dir: Path | None) -> list[str]:
    if plugin_dir is None:
        return []
    if not plugin_dir.is_dir():
        raise InputError(f"--plugin-dir {plugin_dir}: no such directory")
    return [f"-plugin-dir={plugin_dir.resolve()}"]


def lock_timeout_arg(value: str) -> str:
    if not _LOCK_TIMEOUT.match(value):
        raise InputError(f"--lock-timeout {value!r}: expected a duration such as 0s, 30s or 5m")
    return f"-lock-timeout={value}"


def check_root(root: Path) -> Path:
    if not root.is_dir():
        raise InputError(f"{root}: no such directory (expected an OpenTofu root such as infra/envs/dev)")
    if not any(root.glob("*.tf")) and not any(root.glob("*.tofu")):
        raise InputError(f"{root}: no *.tf files: not an OpenTofu root")
    return root.resolve()
