"""Which model file paths can be placed under /models safely, and which collide."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from llm_platform.errors import InputError

# A component named .wh.* is an OCI whiteout: a runtime would delete files instead of adding one.
_WHITEOUT_PREFIX = ".wh."


def check_model_path(path: str, *, origin: str) -> str:
    """Return `path` if it is a safe relative posix path; otherwise an InputError naming `origin` and the path."""

    def refuse(why: str) -> InputError:
        return InputError(f"{origin}: refusing model file {path!r}: {why}")

    if not path:
        raise refuse("empty path")
    if path.startswith("/"):
        raise refuse("absolute path")
    if "\\" in path:
        raise refuse("backslash in path (paths are posix, relative to /models)")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in path):
        raise refuse("control character in path")
    parts = path.split("/")
    if ".." in parts:
        raise refuse("'..' would leave /models")
    if any(part in ("", ".") for part in parts):
        raise refuse("empty or '.' path component")
    if any(part.startswith(_WHITEOUT_PREFIX) for part in parts):
        raise refuse("a '.wh.' component is an OCI whiteout marker")
    if any(len(part.encode("utf-8")) > 255 for part in parts):
        raise refuse("a path component is longer than 255 bytes")
    return path


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


def check_no_collisions(paths: Iterable[str], *, origin: str) -> None:
    """Refuse names that land on the same place on some filesystem: case or Unicode-normalisation twins,
    and a file that is also needed as a directory (`a` and `a/b`)."""
    seen: dict[str, str] = {}
    for path in paths:
        folded = _fold(path)
        if folded in seen:
            raise InputError(
                f"{origin}: model files {seen[folded]!r} and {path!r} collide (same name up to case/Unicode form)"
            )
        seen[folded] = path
    for folded, path in seen.items():
        parts = folded.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in seen:
                raise InputError(
                    f"{origin}: model file {seen[parent]!r} collides with directory needed by {path!r}"
                )
