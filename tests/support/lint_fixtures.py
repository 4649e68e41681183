"""Fixture trees for the lint tests: the clean tree copied into tmp_path, with one variant overlaid.

What git cannot hold is made when the tree is built, from `special:` in a variant's expect.yaml:
`{fifo: PATH}` makes a FIFO, `{symlink: PATH, target: TARGET}` a symlink (TARGET as written)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lint"
CLEAN = FIXTURES / "_clean"


@dataclass(frozen=True)
class Expected:
    rule: str
    file: str
    line: int


def variants() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith("_"))


def expected(variant: str) -> list[Expected]:
    doc = yaml.safe_load((FIXTURES / variant / "expect.yaml").read_text())
    return [Expected(e["rule"], e["file"], int(e["line"])) for e in doc["findings"]]


def build_tree(dest: Path, variant: str | None = None) -> Path:
    """A repository at `dest` holding gitops/ (the clean tree, or a variant of it). Returns dest."""
    shutil.copytree(CLEAN, dest)
    if variant is not None:
        doc = yaml.safe_load((FIXTURES / variant / "expect.yaml").read_text())
        for rel in doc.get("delete", []):
            (dest / rel).unlink()
        files = FIXTURES / variant / "files"
        if files.is_dir():
            shutil.copytree(files, dest, dirs_exist_ok=True)
        for entry in doc.get("special", []):
            path = dest / (entry.get("fifo") or entry["symlink"])
            path.parent.mkdir(parents=True, exist_ok=True)
            if "fifo" in entry:
                os.mkfifo(path)
            else:
                path.symlink_to(entry["target"])
    return dest
