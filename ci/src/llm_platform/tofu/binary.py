"""Which IaC binary runs the step: `tofu` when installed, else `terraform` (a drop-in), or an explicit one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel

from llm_platform.errors import ToolError

# Order matters: the project targets OpenTofu; terraform is the accepted fallback.
PREFERRED_BINARIES = ("tofu", "terraform")
_VERSION_LINE = re.compile(r"^(OpenTofu|Terraform) v(\S+)", re.MULTILINE)


class TofuBinary(BaseModel):
    """A resolved binary: absolute path, its product name and version."""

    path: str
    product: str
    version: str


def find_binary(explicit: str | None = None, search_path: str | None = None) -> TofuBinary:
    """Resolve `explicit` (a name on PATH or a path) or the first of `tofu`, `terraform` on PATH."""
    candidates = (explicit,) if explicit else PREFERRED_BINARIES
    for candidate in candidates:
        found = shutil.which(candidate, path=search_path)
        if found:
            return _describe(Path(found).resolve() if os.sep in candidate else Path(found))
    if explicit:
        raise ToolError(f"--binary {explicit!r}: not found or not executable")
    raise ToolError(
        "neither `tofu` nor `terraform` is on PATH: install OpenTofu (or terraform) or pass --binary"
    )


def _describe(path: Path) -> TofuBinary:
    # CHECKPOINT_DISABLE: terraform would otherwise phone home for an upgrade check.
    env = {**os.environ, "CHECKPOINT_DISABLE": "1"}
    try:
        proc = subprocess.run(
            [str(path), "version"], capture_output=True, text=True, env=env, timeout=60, check=False
        )
    except OSError as exc:
        raise ToolError(f"{path}: cannot run: {exc.strerror or exc}") from exc
    match = _VERSION_LINE.search(proc.stdout)
    if proc.returncode != 0 or not match:
        raise ToolError(
            f"{path}: does not look like tofu/terraform (`version` said: {proc.stdout.strip()[:200]!r})"
        )
    product = "tofu" if match.group(1) == "OpenTofu" else "terraform"
    return TofuBinary(path=str(path), product=product, version=match.group(2))
