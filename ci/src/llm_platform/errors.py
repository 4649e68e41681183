"""Typed errors. Every failure the pipeline expects ends as one of these: one clear message, one exit code."""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every expected failure; the CLI prints the message and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PlatformError):
    """Bad input from the user: a spec, a flag, a file. The message names the file, line or field."""

    exit_code = 2


class ToolError(PlatformError):
    """An external tool (git, tofu, kubectl, skopeo, ...) is missing or failed."""


class RegistryError(PlatformError):
    """An OCI registry refused, failed or could not be reached."""


class ConflictError(PlatformError):
    """Someone else changed what we were about to change; nothing was overwritten."""

    exit_code = 3
